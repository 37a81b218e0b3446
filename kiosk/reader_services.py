"""The identified reader's services at the cabinet: loans and renew, holds here, 荐购.

Why through the cabinet and not the reader's phone: at the touchscreen the reader has shown
a card or a QR code, not a phone token. The cabinet asks the server with its own signed
requests (``/v1/readers/loans|renew|recommend``, see ``server/routes_cabinet_readers.py``)
on behalf of the reader of its live session — only that reader, only while the session
runs (:func:`current_reader`).

Offline (no ``[server]``, or the server does not answer):

- **loans**: what this cabinet's own ledger knows — loans made here and not returned here.
  Loans from other cabinets and renewals made elsewhere are missing, and the screen says so.
- **renew**: refused with "the network is down": only the server knows the other readers'
  holds, so a cabinet cannot decide a renewal alone.
- **荐购**: not kept. A recommendation is never urgent, and keeping it for later would make
  the cabinet vouch for a reader whose session has ended; the screen says plainly that
  nothing was sent and to try again later (or in the library's app).

Holds come from the ledger (``HoldInfo``, pushed by the server's sync): which book waits in
which door. The machine itself opens those doors when the reader identifies.

The ISBN parser (:func:`parse_isbn`) checks what the reader typed before anything is sent:
hyphens and spaces are fine, the check digit must match.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from drivers.camera.ean import ean13_check_digit
from drivers.errors import DriverError
from syncproto.grants import log_id

from .runtime import KioskRuntime

__all__ = [
    "IsbnError",
    "Loan",
    "LoansView",
    "Outcome",
    "ReaderServices",
    "Waiting",
    "current_reader",
    "isbn10_check_digit",
    "parse_isbn",
]

_SEPARATORS = re.compile(r"[\s\-\u2010\u2011\u2012\u2013]")
_log = logging.getLogger(__name__)

#: How long the 荐购 page watches the camera for a barcode after the reader taps "scan".
SCAN_S = 6.0


# ----------------------------------------------------------------------------- ISBN


class IsbnError(ValueError):
    """Not a valid ISBN; ``reason`` is a stable code (``empty``, ``characters``, ``length``,
    ``x_position``, ``check_digit``) the screen turns into a sentence."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def isbn10_check_digit(first9: str) -> str:
    """The check character ("0".."9" or "X") of an ISBN-10 whose first 9 digits are given."""
    if len(first9) != 9 or not (first9.isascii() and first9.isdigit()):
        raise ValueError(f"expected 9 digits, got {first9!r}")
    check = (11 - sum(int(d) * (10 - i) for i, d in enumerate(first9)) % 11) % 11
    return "X" if check == 10 else str(check)


def parse_isbn(text: str) -> str:
    """The ISBN in ``text`` as 13 digits or 10 characters (a final ``X`` upper-case), hyphens,
    spaces and a leading "ISBN" removed. Raises :class:`IsbnError` saying what is wrong."""
    compact = _SEPARATORS.sub("", text).upper()
    compact = compact.removeprefix("ISBN").lstrip(":：")  # as printed above the barcode
    if not compact:
        raise IsbnError("empty", "no ISBN given")
    if any(ch not in "0123456789X" for ch in compact):
        raise IsbnError("characters", "an ISBN has only digits, hyphens and a final X")
    if "X" in compact[:-1] or (len(compact) == 13 and compact.endswith("X")):
        raise IsbnError("x_position", "only the last character of an ISBN-10 may be X")
    if len(compact) not in (10, 13):
        raise IsbnError("length", f"an ISBN has 10 or 13 digits, not {len(compact)}")
    if len(compact) == 13:
        if ean13_check_digit(compact[:12]) != int(compact[12]):
            raise IsbnError("check_digit", "the ISBN-13 check digit does not match")
    elif isbn10_check_digit(compact[:9]) != compact[9]:
        raise IsbnError("check_digit", "the ISBN-10 check digit does not match")
    return compact


# ----------------------------------------------------------------------------- the reader


def current_reader(runtime: KioskRuntime) -> str | None:
    """The reader id of the cabinet's live, identified borrow session, else None (no
    session, still resolving, a return without login, staff restocking)."""
    machine = runtime.machine
    session = machine.session if machine is not None else None
    if session is None or session.phase != "active" or session.kind != "borrow":
        return None
    patron = session.patron
    if patron is None or patron.role != "reader":
        return None
    return patron.reader_id


# ----------------------------------------------------------------------------- server messages


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _LoansQuery(_Message):
    cabinet_id: str
    reader_id: str


class _RenewQuery(_LoansQuery):
    item_id: str


class _RecommendQuery(_LoansQuery):
    isbn: str | None = None
    title: str = ""


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _LoanRow(_Reply):
    item_id: str
    title: str | None = ""
    author: str | None = ""
    due: str | None = None
    overdue: bool = False
    renewals: int = 0
    wanted_by_others: bool = False


class _LoansReply(_Reply):
    loans: list[_LoanRow]
    max_renewals: int


class _RenewReply(_Reply):
    item_id: str
    due: str
    renewals: int
    max_renewals: int


class _RecommendReply(_Reply):
    id: int
    isbn: str | None = None
    title: str = ""
    status: str


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Loan:
    item_id: str
    title: str
    author: str
    due: str  # ISO date, "" when unknown
    overdue: bool = False
    renewals: int = 0
    wanted_by_others: bool = False


@dataclass(frozen=True, slots=True)
class LoansView:
    """``online`` False: the ledger's partial view (this cabinet's loans only)."""

    loans: list[Loan]
    online: bool
    max_renewals: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """A renewal's or a 荐购's answer: ``ok``; else ``code`` is the server's refusal
    (``held_for_another``, ``overdue``, ``renewal_limit``, ``invalid_isbn`` …) or
    ``offline`` / ``busy``. ``data``: the server's reply when ok."""

    ok: bool
    code: str = ""
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Waiting:
    """A hold for the reader at this cabinet: ``door`` holds it (None: not loaded yet, or
    taken); ``open`` the door is open now; ``taken`` the reader borrowed it here."""

    item_id: str
    title: str
    author: str
    door: int | None
    expires_at: datetime
    open: bool = False
    taken: bool = False


class ReaderServices:
    """The services for the identified reader of ``runtime``'s cabinet."""

    def __init__(self, runtime: KioskRuntime) -> None:
        self.runtime = runtime

    @property
    def _cabinet_id(self) -> str:
        return self.runtime.config.cabinet.id

    def _call(self, path: str, message: BaseModel, reply: type[BaseModel]) -> Outcome:
        from .sync import SyncError

        agent = self.runtime.agent
        if agent is None:
            return Outcome(False, "offline")
        try:
            got = agent.call(path, message, reply)
        except SyncError as exc:
            if exc.status is None:
                return Outcome(False, "offline")
            if exc.status >= 500:
                return Outcome(False, "busy")
            # short is "HTTP 409 held_for_another": the code only, never the detail (which
            # may quote the reader's input)
            words = exc.short.split()
            return Outcome(False, words[2] if len(words) > 2 else f"http_{exc.status}")
        return Outcome(True, data=got.model_dump())

    # -------------------------------------------------------------- loans
    def loans(self, reader_id: str) -> LoansView:
        """The server's list when it answers, else this cabinet's ledger's."""
        got = self._call("/v1/readers/loans", _LoansQuery(cabinet_id=self._cabinet_id,
                                                          reader_id=reader_id), _LoansReply)
        if got.ok and got.data is not None:
            reply = _LoansReply.model_validate(got.data)
            return LoansView([Loan(r.item_id, r.title or "", r.author or "", r.due or "",
                                   r.overdue, r.renewals, r.wanted_by_others)
                              for r in reply.loans], True, reply.max_renewals)
        return LoansView(self.ledger_loans(reader_id), False)

    def ledger_loans(self, reader_id: str) -> list[Loan]:
        """Loans made at this cabinet and not returned (nor lent again) here, due first."""
        path = self.runtime.config.data_dir / "ledger.db"
        # A read-only connection of our own: WAL lets it read beside the ledger's writer, and
        # this query belongs to this page, not to the ledger's API.
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
        try:
            rows = conn.execute(
                "SELECT e.item_id, json_extract(e.payload, '$.due') FROM events e "
                "WHERE e.kind = 'loan' AND e.reader_id = ? AND e.item_id IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM events later WHERE later.item_id = e.item_id "
                "AND later.seq > e.seq AND later.kind IN ('loan', 'return'))",
                (reader_id,)).fetchall()
        finally:
            conn.close()
        today = datetime.now(UTC).date()
        out = []
        ledger = self.runtime.ledger
        for item_id, due in rows:
            info = ledger.item(item_id) if ledger is not None else None
            out.append(Loan(item_id, info.title if info else "", info.author if info else "",
                            due or "", _before(due, today)))
        return sorted(out, key=lambda loan: (loan.due, loan.item_id))

    def renew(self, reader_id: str, item_id: str) -> Outcome:
        got = self._call("/v1/readers/renew", _RenewQuery(
            cabinet_id=self._cabinet_id, reader_id=reader_id, item_id=item_id), _RenewReply)
        if got.ok:
            _log.info("reader services: renewal for reader %s", log_id(reader_id))
        return got

    # -------------------------------------------------------------- 荐购
    def recommend(self, reader_id: str, isbn: str | None, title: str) -> Outcome:
        return self._call("/v1/readers/recommend", _RecommendQuery(
            cabinet_id=self._cabinet_id, reader_id=reader_id, isbn=isbn, title=title),
            _RecommendReply)

    def scan_isbn(self, seconds: float = SCAN_S) -> str | None:
        """The first valid ISBN-13 the cabinet's camera sees within ``seconds``; None when
        none was seen or there is no camera.

        The camera is opened afresh first: a stream camera that was not read during the
        session (the QR watcher reads only while the cabinet is idle) holds seconds of old
        frames in its buffers, and the reader's barcode is in front of it *now*. Safe beside
        the watcher for the same reason: this runs inside a session, when it does not read
        (and it reopens a closed camera by itself)."""
        hardware = self.runtime.hardware
        camera = hardware.camera if hardware is not None else None
        if camera is None:
            return None
        deadline = time.monotonic() + seconds
        try:
            camera.close()
            camera.open()
        except DriverError:
            return None
        while time.monotonic() < deadline:
            try:
                found = camera.read_isbns()
            except DriverError:
                return None
            if found:
                return str(found[0])
        return None

    # -------------------------------------------------------------- holds
    def holds(self, reader_id: str) -> list[Waiting]:
        ledger = self.runtime.ledger
        if ledger is None:
            return []
        where = {c.item_id: door for door, contents in ledger.all_contents().items()
                 for c in contents.values() if c.item_id}
        state = self.runtime.state()
        open_holds = {int(n) for n, run in state["doors"].items() if run["purpose"] == "hold"}
        taken = {loan.item_id for loan in self.ledger_loans(reader_id)}
        out = []
        listed = set()
        for hold in ledger.holds_for(reader_id):
            info = ledger.item(hold.item_id)
            door = where.get(hold.item_id)
            listed.add(hold.item_id)
            out.append(Waiting(hold.item_id, info.title if info else "",
                               info.author if info else "", door, hold.expires_at,
                               open=door in open_holds, taken=hold.item_id in taken))
        # A hold picked up in this session is fulfilled: the next sync may already have
        # dropped it from the ledger, but the reader still expects to read "taken" for it.
        machine = self.runtime.machine
        session = machine.session if machine is not None else None
        patron = session.patron if session is not None else None
        if patron is not None and patron.reader_id == reader_id:
            for item_id in sorted((patron.holds & taken) - listed):
                info = ledger.item(item_id)
                out.append(Waiting(item_id, info.title if info else "",
                                   info.author if info else "", None,
                                   datetime.now(UTC), taken=True))
        return out


def _before(due: str | None, today: date) -> bool:
    try:
        return bool(due) and date.fromisoformat(str(due)[:10]) < today
    except ValueError:
        return False
