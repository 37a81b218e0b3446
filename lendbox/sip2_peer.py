"""An independent SIP2 server to test our client against: pysip2 0.1.0 over a seeded library.

Why this exists (issue 7, requirement 5): our SIP2 client must be proven against a server
nobody here wrote. pysip2 (PyPI, MIT, pinned ``pysip2==0.1.0`` in the test extras) ships the
wire codec, framing, checksum/resend logic and an AnyIO TCP server (the ACS side), but no
library: it dispatches each decoded request to a registered handler. This module is only our
glue around it — a small in-memory library (readers with Chinese names, a blocked reader,
items of two branches with Chinese titles, a loan with a waiting hold) and the handlers that
answer from it. Every byte on the wire is written and read by pysip2's own code; the quirks
that shows are recorded in ``docs/sip2-peers.md``.

Two faces:

- ``python -m lendbox.sip2_peer --port 0 --encoding utf-8|gb18030|cp850 [--seed-file F]
  [--journal F] [--no-login-required] [--error-detection auto|required]`` serves until
  SIGTERM/SIGINT and prints ``sip2 peer ready HOST:PORT`` once it listens.
- :class:`PeerServer` starts exactly that as a child process on a free port, waits for the
  ready line and stops it by its pid (SIGTERM, then SIGKILL), like ``lendbox/child.py``.

The journal (``--journal F``, JSON lines) records every circulation change the peer
*applied* — what an exactly-once test counts.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .child import ReadyChild

__all__ = [
    "DEFAULT_SEED",
    "ENCODINGS",
    "PeerLibrary",
    "PeerServer",
    "build_server",
    "main",
    "sip_date",
]

READY = "sip2 peer ready "
ENCODINGS = ("utf-8", "gb18030", "cp850")
LOAN_DAYS = 28
RENEW_DAYS = 28

# The built-in library. Ids are ASCII (barcodes); names and titles are not.
DEFAULT_SEED: dict[str, Any] = {
    "institution_id": "LENDBOX",
    "library_name": "示范图书馆",
    "accounts": {"lendbox": "secret"},
    "readers": [
        {"id": "R0001", "name": "张三", "password": "1234", "email": "zhangsan@example.cn"},
        {"id": "R0002", "name": "李四", "password": "1234"},
        {"id": "R0003", "name": "欧阳娜娜", "password": "1234"},
        {"id": "R0004", "name": "王五", "password": "1234", "blocked": True,
         "message": "借阅证已挂失"},
        {"id": "R0005", "name": "Zoë Martin", "password": "1234"},
    ],
    "items": [
        {"id": "B0001", "title": "红楼梦", "branch": "MAIN"},
        {"id": "B0002", "title": "西游记", "branch": "MAIN"},
        {"id": "B0003", "title": "三国演义", "branch": "EAST"},
        {"id": "B0004", "title": "水浒传", "branch": "EAST"},
        {"id": "B0005", "title": "围城", "branch": "MAIN",
         "charged_to": "R0002", "due": "20261201    235959"},
        {"id": "B0006", "title": "活着", "branch": "MAIN",
         "charged_to": "R0001", "due": "20261210    235959", "holds": ["R0003"]},
        {"id": "B0007", "title": "平凡的世界", "branch": "EAST",
         "charged_to": "R0003", "due": "20261115    235959"},
        {"id": "B0008", "title": "边城", "branch": "MAIN"},
        {"id": "B0009", "title": "骆驼祥子", "branch": "EAST"},
        {"id": "B0010", "title": "家", "branch": "MAIN"},
        {"id": "B0011", "title": "茶馆", "branch": "EAST"},
        {"id": "B0012", "title": "Les Misérables", "branch": "MAIN"},
    ],
}


def sip_date(dt: datetime) -> str:
    """``dt`` as an 18-character SIP2 date ``YYYYMMDDZZZZHHMMSS`` (zone blank: local time)."""
    return dt.strftime("%Y%m%d") + "    " + dt.strftime("%H%M%S")


def _parse_sip_date(text: str) -> datetime:
    return datetime.strptime(text[:8] + text[12:18], "%Y%m%d%H%M%S")


@dataclass
class Reader:
    id: str
    name: str
    password: str = ""
    blocked: bool = False
    message: str = ""
    email: str | None = None


@dataclass
class Item:
    id: str
    title: str
    branch: str
    charged_to: str | None = None
    due: str | None = None
    holds: list[str] = field(default_factory=list)
    in_transit_to: str | None = None


class PeerLibrary:
    """The seeded in-memory library behind the pysip2 handlers.

    Rules (a plausible ILS, stated so tests can rely on them): a checkout of an item charged
    to *another* reader is refused even with no-block; to the *same* reader it succeeds again
    as a renewal (``renewal_ok=Y``, journalled — that is what a blind retry costs); a blocked
    reader is refused unless no-block is Y; with no-block Y and a real ``nb_due_date`` that
    date becomes the due date, else transaction date + 28 days; a checkin of an item that is
    not charged answers ``ok=0``; a checkin at another branch sets ``alert=Y`` and the sort
    bin to the home branch; a renewal of an item another reader holds is refused.
    """

    def __init__(self, seed: Mapping[str, Any], journal: Path | None = None) -> None:
        self.institution_id: str = seed.get("institution_id", "LENDBOX")
        self.library_name: str = seed.get("library_name", "")
        self.accounts: dict[str, str] = dict(seed.get("accounts", {}))
        self.readers = {r["id"]: Reader(**r) for r in seed.get("readers", [])}
        self.items = {i["id"]: Item(**i) for i in seed.get("items", [])}
        self.journal = journal
        self._txn = 0

    # -- bookkeeping -----------------------------------------------------------------------

    def _record(self, op: str, **fields: Any) -> str:
        self._txn += 1
        txn = f"T{self._txn:06d}"
        if self.journal is not None:
            with open(self.journal, "a", encoding="utf-8") as f:
                f.write(json.dumps({"txn": txn, "op": op, **fields}, ensure_ascii=False) + "\n")
        return txn

    def charged(self, reader_id: str) -> list[Item]:
        return [i for i in self.items.values() if i.charged_to == reader_id]

    def holds(self, reader_id: str) -> list[Item]:
        return [i for i in self.items.values() if reader_id in i.holds]

    @staticmethod
    def patron_status(reader: Reader | None) -> str:
        # positions: 0 charge denied, 1 renewal denied, 2 recall denied, 3 hold denied,
        # 4 card reported lost
        return "YY YY" + " " * 9 if reader is not None and reader.blocked else " " * 14

    # -- answers (pysip2 models in, pysip2 models out) ---------------------------------------

    def login(self, req: Any) -> Any:
        from pysip2 import LoginResponse

        ok = self.accounts.get(req.login_user_id) == req.login_password
        return LoginResponse(ok="1" if ok else "0")

    def patron_status_response(self, req: Any, now: str) -> Any:
        from pysip2 import PatronStatusResponse

        reader = self.readers.get(req.patron_identifier)
        return PatronStatusResponse(
            patron_status=self.patron_status(reader), language=req.language,
            transaction_date=now, institution_id=self.institution_id,
            patron_identifier=req.patron_identifier,
            personal_name=reader.name if reader else "",
            valid_patron="Y" if reader else "N",
            valid_patron_password=self._password_flag(reader, req.patron_password),
            currency_type="CNY", fee_amount="0.00",
            screen_message=self._patron_messages(reader))

    def patron_information(self, req: Any, now: str) -> Any:
        from pysip2 import PatronInformationResponse

        reader = self.readers.get(req.patron_identifier)
        charged = self.charged(req.patron_identifier) if reader else []
        overdue = [i for i in charged if i.due and _parse_sip_date(i.due) < _parse_sip_date(now)]
        holds = self.holds(req.patron_identifier) if reader else []
        summary = req.summary

        def window(items: list[Item]) -> tuple[str, ...]:
            start = int(req.start_item or 1)
            end = int(req.end_item or len(items))
            return tuple(i.id for i in items[start - 1:end])

        return PatronInformationResponse(
            patron_status=self.patron_status(reader), language=req.language,
            transaction_date=now,
            hold_items_count=f"{len(holds):04d}", overdue_items_count=f"{len(overdue):04d}",
            charged_items_count=f"{len(charged):04d}", fine_items_count="0000",
            recall_items_count="0000", unavailable_holds_count="0000",
            institution_id=self.institution_id, patron_identifier=req.patron_identifier,
            personal_name=reader.name if reader else "",
            charged_items_limit="0010" if reader else None,
            valid_patron="Y" if reader else "N",
            valid_patron_password=self._password_flag(reader, req.patron_password),
            currency_type="CNY" if reader else None, fee_amount="0.00" if reader else None,
            hold_items=window(holds) if summary[0] == "Y" else (),
            overdue_items=window(overdue) if summary[1] == "Y" else (),
            charged_items=window(charged) if summary[2] == "Y" else (),
            email_address=reader.email if reader else None,
            screen_message=self._patron_messages(reader))

    def item_information(self, req: Any, now: str) -> Any:
        from pysip2 import ItemInformationResponse

        item = self.items.get(req.item_identifier)
        if item is None:
            return ItemInformationResponse(
                circulation_status="01", security_marker="00", fee_type="01",
                transaction_date=now, item_identifier=req.item_identifier, title_identifier="",
                screen_message=("ITEM NOT FOUND",))
        if item.charged_to:
            status = "04"  # charged
        elif item.in_transit_to:
            status = "10"  # in transit
        else:
            status = "03"  # available
        return ItemInformationResponse(
            circulation_status=status, security_marker="02", fee_type="01",
            transaction_date=now, hold_queue_length=str(len(item.holds)),
            due_date=item.due if item.charged_to else None,
            item_identifier=item.id, title_identifier=item.title, owner=self.institution_id,
            media_type="001", permanent_location=item.branch,
            current_location=item.in_transit_to or item.branch)

    def checkout(self, req: Any, now: str) -> Any:
        from pysip2 import CheckoutResponse

        reader = self.readers.get(req.patron_identifier)
        item = self.items.get(req.item_identifier)
        no_block = req.no_block == "Y"

        def refuse(message: str) -> Any:
            return CheckoutResponse(
                ok="0", renewal_ok="N", magnetic_media="N", desensitize="N",
                transaction_date=now, institution_id=self.institution_id,
                patron_identifier=req.patron_identifier, item_identifier=req.item_identifier,
                title_identifier=item.title if item else "", due_date="",
                screen_message=(message,))

        if reader is None:
            return refuse("PATRON NOT FOUND")
        if item is None:
            return refuse("ITEM NOT FOUND")
        if item.charged_to not in (None, reader.id):
            return refuse("ITEM CHARGED TO ANOTHER PATRON")
        if reader.blocked and not no_block:
            return refuse(reader.message or "PATRON BLOCKED")
        renewal = item.charged_to == reader.id
        item.due = self._due(req.transaction_date, req.nb_due_date if no_block else None,
                             LOAN_DAYS)
        item.charged_to = reader.id
        item.in_transit_to = None
        txn = self._record("checkout", patron=reader.id, item=item.id,
                           transaction_date=req.transaction_date, no_block=req.no_block,
                           nb_due_date=req.nb_due_date, due=item.due, renewal=renewal)
        return CheckoutResponse(
            ok="1", renewal_ok="Y" if renewal else "N", magnetic_media="N", desensitize="Y",
            transaction_date=now, institution_id=self.institution_id,
            patron_identifier=reader.id, item_identifier=item.id, title_identifier=item.title,
            due_date=item.due, media_type="001", transaction_id=txn,
            screen_message=("RENEWED: ALREADY CHARGED TO THIS PATRON",) if renewal else ())

    def checkin(self, req: Any, now: str) -> Any:
        from pysip2 import CheckinResponse

        item = self.items.get(req.item_identifier)
        if item is None or item.charged_to is None:
            return CheckinResponse(
                ok="0", resensitize="N", magnetic_media="N", alert="N", transaction_date=now,
                institution_id=self.institution_id, item_identifier=req.item_identifier,
                permanent_location=item.branch if item else "",
                title_identifier=item.title if item else None,
                screen_message=("ITEM NOT FOUND" if item is None else "ITEM NOT CHECKED OUT",))
        patron = item.charged_to
        item.charged_to = None
        item.due = None
        elsewhere = req.current_location != item.branch
        item.in_transit_to = item.branch if elsewhere else None
        self._record("checkin", patron=patron, item=item.id, return_date=req.return_date,
                     transaction_date=req.transaction_date, no_block=req.no_block,
                     location=req.current_location)
        return CheckinResponse(
            ok="1", resensitize="Y", magnetic_media="N", alert="Y" if elsewhere else "N",
            transaction_date=now, institution_id=self.institution_id, item_identifier=item.id,
            permanent_location=item.branch, title_identifier=item.title,
            sort_bin=item.branch if elsewhere else None, patron_identifier=patron,
            media_type="001",
            screen_message=(f"RETURN TO {item.branch}",) if elsewhere else ())

    def renew(self, req: Any, now: str) -> Any:
        from pysip2 import RenewResponse

        reader = self.readers.get(req.patron_identifier)
        item = self.items.get(req.item_identifier or "")
        no_block = req.no_block == "Y"

        def refuse(message: str) -> Any:
            return RenewResponse(
                ok="0", renewal_ok="N", magnetic_media="N", desensitize="N",
                transaction_date=now, institution_id=self.institution_id,
                patron_identifier=req.patron_identifier,
                item_identifier=req.item_identifier or "",
                title_identifier=item.title if item else "",
                due_date=(item.due or "") if item else "", screen_message=(message,))

        if reader is None:
            return refuse("PATRON NOT FOUND")
        if item is None:
            return refuse("ITEM NOT FOUND")
        if item.charged_to != reader.id:
            return refuse("ITEM NOT CHARGED TO THIS PATRON")
        if reader.blocked and not no_block:
            return refuse(reader.message or "PATRON BLOCKED")
        if any(h != reader.id for h in item.holds):
            return refuse("ITEM ON HOLD FOR ANOTHER PATRON")
        base = max(_parse_sip_date(item.due or now), _parse_sip_date(req.transaction_date))
        item.due = self._due(sip_date(base), req.nb_due_date if no_block else None, RENEW_DAYS)
        txn = self._record("renew", patron=reader.id, item=item.id,
                           transaction_date=req.transaction_date, no_block=req.no_block,
                           nb_due_date=req.nb_due_date, due=item.due)
        return RenewResponse(
            ok="1", renewal_ok="Y", magnetic_media="N", desensitize="Y", transaction_date=now,
            institution_id=self.institution_id, patron_identifier=reader.id,
            item_identifier=item.id, title_identifier=item.title, due_date=item.due,
            media_type="001", transaction_id=txn)

    def end_session(self, req: Any, now: str) -> Any:
        from pysip2 import EndSessionResponse

        return EndSessionResponse(end_session="Y", transaction_date=now,
                                  institution_id=self.institution_id,
                                  patron_identifier=req.patron_identifier)

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _due(from_date: str, nb_due_date: str | None, days: int) -> str:
        if nb_due_date and nb_due_date.strip():
            return nb_due_date
        due = _parse_sip_date(from_date) + timedelta(days=days)
        return sip_date(due.replace(hour=23, minute=59, second=59))

    @staticmethod
    def _password_flag(reader: Reader | None, password: str | None) -> str | None:
        if reader is None or password is None:
            return None
        return "Y" if password == reader.password else "N"

    @staticmethod
    def _patron_messages(reader: Reader | None) -> tuple[str, ...]:
        if reader is None:
            return ("PATRON NOT FOUND",)
        if reader.blocked:
            return (reader.message or "PATRON BLOCKED",)
        return ()


def build_server(library: PeerLibrary, *, encoding: str = "utf-8",
                 login_required: bool = True, error_detection: str = "auto") -> Any:
    """A ``pysip2.SIP2Server`` whose handlers answer from ``library``.

    Registered: 93 login, 23 patron status, 63 patron information, 17 item information,
    11 checkout, 09 checkin, 29 renew, 35 end session. 99 SC status is pysip2's own answer
    (built from its config and the registered routes). Everything else gets pysip2's
    "COMMAND NOT SUPPORTED" fallback response.
    """
    import pysip2

    name: str | None = library.library_name or None
    try:
        (name or "").encode(encoding)
    except UnicodeEncodeError:  # pysip2 would drop the connection on every 99 (see docs)
        name = "LENDBOX DEMO LIBRARY"
    server = pysip2.SIP2Server(
        encoding=encoding, login_required=login_required, error_detection=error_detection,
        institution_id=library.institution_id, library_name=name,
        terminal_location="MAIN")

    def now() -> str:
        return sip_date(datetime.now())

    @server.route(pysip2.LOGIN)
    async def _login(req: Any, ctx: Any) -> Any:
        return library.login(req)

    @server.route(pysip2.PATRON_STATUS)
    async def _patron_status(req: Any, ctx: Any) -> Any:
        return library.patron_status_response(req, now())

    @server.route(pysip2.PATRON_INFORMATION)
    async def _patron_information(req: Any, ctx: Any) -> Any:
        return library.patron_information(req, now())

    @server.route(pysip2.ITEM_INFORMATION)
    async def _item_information(req: Any, ctx: Any) -> Any:
        return library.item_information(req, now())

    @server.route(pysip2.CHECKOUT)
    async def _checkout(req: Any, ctx: Any) -> Any:
        return library.checkout(req, now())

    @server.route(pysip2.CHECKIN)
    async def _checkin(req: Any, ctx: Any) -> Any:
        return library.checkin(req, now())

    @server.route(pysip2.RENEW)
    async def _renew(req: Any, ctx: Any) -> Any:
        return library.renew(req, now())

    @server.route(pysip2.END_PATRON_SESSION)
    async def _end_session(req: Any, ctx: Any) -> Any:
        return library.end_session(req, now())

    return server


# -- the child process ---------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lendbox.sip2_peer",
                                description="pysip2 0.1.0 ACS over a seeded in-memory library.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: a free port chosen now")
    p.add_argument("--encoding", choices=ENCODINGS, default="utf-8")
    p.add_argument("--seed-file", type=Path, help="JSON shaped like DEFAULT_SEED")
    p.add_argument("--journal", type=Path, help="append applied circulation as JSON lines")
    p.add_argument("--no-login-required", dest="login_required", action="store_false",
                   help="accept requests before a successful 93 login")
    p.add_argument("--error-detection", choices=("auto", "required"), default="auto",
                   help="required: answer 96 to frames without AY/AZ")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    import anyio

    seed = json.loads(args.seed_file.read_text(encoding="utf-8")) if args.seed_file \
        else DEFAULT_SEED
    library = PeerLibrary(seed, journal=args.journal)
    server = build_server(library, encoding=args.encoding, login_required=args.login_required,
                          error_detection=args.error_detection)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with server.start(args.host, args.port) as port:
            print(f"{READY}{args.host}:{port}", flush=True)
            async for _ in signals:
                break


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; exit 0."""
    args = _parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import anyio

    anyio.run(_serve, args)
    return 0


class PeerServer(ReadyChild):
    """``python -m lendbox.sip2_peer …`` as a child process on a free port, stopped by pid.

    Args:
        encoding: the peer's one character encoding for every connection.
        seed: a seed JSON file (default: :data:`DEFAULT_SEED`).
        journal: where the child appends applied circulation (JSON lines).
        login_required: pysip2's ``login_required`` (closes the connection on anything
            but 93 before a successful login, and after a failed login).
        error_detection: ``auto`` (checksum optional) or ``required`` (96 without one).
        log: file for the child's stderr (pysip2 logs its errors there).

    ``start()`` raises RuntimeError if the child exits before its ready line and
    TimeoutError (after stopping it) if the line takes longer than ``timeout``.
    """

    def __init__(self, *, encoding: str = "utf-8", seed: Path | None = None,
                 journal: Path | None = None, login_required: bool = True,
                 error_detection: str = "auto", host: str = "127.0.0.1",
                 log: Path | None = None, log_level: str = "WARNING") -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}")
        self.encoding = encoding
        self.host = host
        self.port = 0
        self.journal = journal
        self.log = log
        args = ["--host", host, "--port", "0", "--encoding", encoding,
                "--error-detection", error_detection, "--log-level", log_level]
        if seed is not None:
            args += ["--seed-file", str(seed)]
        if journal is not None:
            args += ["--journal", str(journal)]
        if not login_required:
            args.append("--no-login-required")
        super().__init__(args, READY, log=log, module="lendbox.sip2_peer")

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def start(self, timeout: float = 30.0) -> PeerServer:
        super().start(timeout)
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def journal_entries(self) -> list[dict[str, Any]]:
        """The applied circulation so far (empty without a journal file)."""
        if self.journal is None or not self.journal.exists():
            return []
        return [json.loads(line) for line in
                self.journal.read_text(encoding="utf-8").splitlines() if line]


if __name__ == "__main__":
    raise SystemExit(main())
