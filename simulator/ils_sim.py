"""The emulated ILS: a SIP2 2.00 server (ACS side) over :class:`~simulator.ils_library.Library`.

Why: the central server forwards the cabinets' circulation to a library system over SIP2
(issue 7); the demo and the tests need one that runs anywhere, speaks any of the
``sip2proto.PROFILES`` and can be told to misbehave at a chosen request. It is a test double,
not the interoperability proof (that is ``lendbox/sip2_peer.py`` on pysip2).

Theory of operation. One listening socket; one thread and one ``sip2proto.Parser`` per
connection. Each decoded request is answered in order:

- a frame the codec rejects (bad checksum, garbled, unknown code) → ``96`` (request SC resend);
- ``97`` → the previous answer's bytes again (``96`` if there was none);
- ``96`` from the SC is ignored (asking for a resend is the ACS's message);
- ``93`` login with the configured user/password → ``941`` (``940`` otherwise, or while the
  ``refuse_login`` fault is set; the connection stays open for another try);
- any other request before a successful login, except ``99``, closes the connection (Koha's
  behaviour) — nothing is applied;
- ``99``→98, ``63``→64, ``23``→24, ``17``→18, ``11``→12, ``09``→10, ``29``→30, ``65``→66,
  ``35``→36, ``37``→38, ``19``→20, ``01``→24 (SIP2 has no block response; the ACS answers with
  a patron status), ``15``→16.

Circulation uses the request's own dates: the transaction date is when it happened (a
checkout forwarded days later keeps its day), a no-block checkout or renewal keeps the
cabinet's ``nb_due_date``, a checkin is applied at its ``return_date``. Every applied change is
appended to ``library.journal`` (and, with ``state_path``, saved before the answer is sent, so a
killed emulator restarts with what it applied).

Faults (:class:`IlsFaults`, changed with :meth:`IlsSim.set_faults` or the HTTP control port)
count down one per request they hit, so a test knows which request each one takes:
``drop_before`` (the request was read, nothing applied, the socket closed), ``drop_after``
(applied and journalled, the socket closed before the answer), ``garbage`` (bytes that are no
SIP2 frame instead of the answer; the real answer stays the one ``97`` resends), ``delay``
(``delay_s`` seconds before the answer) and ``refuse_login``. They hit every request except
93, 99 and 97 unless ``codes`` names the message codes they apply to.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sip2proto import (
    PROFILES,
    EncodeError,
    FieldError,
    Message,
    Parser,
    Profile,
    SIP2Error,
    acs_status,
    checkin_response,
    checkout_response,
    encode,
    end_session_response,
    fee_paid_response,
    hold_response,
    item_information_response,
    item_status_update_response,
    login_response,
    parse_date,
    patron_information_response,
    patron_status_response,
    renew_all_response,
    renew_response,
    request_sc_resend,
)

from .control import json_handler
from .ils_library import Copy, Library, Outcome, Reader, demo_library

__all__ = ["GARBAGE", "IlsFaults", "IlsSim", "library_from_json", "library_to_json"]

#: What the ``garbage`` fault sends instead of an answer (then the profile's terminator):
#: no message code, invalid UTF-8 and GB18030, no checksum — every profile's decoder refuses it.
GARBAGE = b"\xff\xfe#GARBAGE#\x00"
#: BX (supported messages), in the spec's order: patron status, checkout, checkin, block,
#: SC/ACS status, resend, login, patron information, end session, fee paid, item information,
#: item status update, patron enable (not supported), hold, renew, renew all.
SUPPORTED = "YYYYYYYYYYYYNYYY"
_UNCOUNTED = frozenset({"93", "99", "97"})
_POLL_S = 0.2
_MAX_BODY = 64 * 1024


@dataclasses.dataclass
class IlsFaults:
    """The fault switches. Counts are requests still to hit; ``delay`` None = every answer
    while ``delay_s`` > 0. ``codes`` None = every request but 93/99/97."""

    drop_before: int = 0
    drop_after: int = 0
    garbage: int = 0
    delay_s: float = 0.0
    delay: int | None = None
    refuse_login: bool = False
    codes: frozenset[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["codes"] = None if self.codes is None else sorted(self.codes)
        return d


_FAULT_KEYS = {f.name for f in dataclasses.fields(IlsFaults)}


def _check_faults(changes: dict[str, Any]) -> dict[str, Any]:
    """Validate fault settings (ValueError naming the key)."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in _FAULT_KEYS:
            raise ValueError(f"unknown fault {key!r} (known: {', '.join(sorted(_FAULT_KEYS))})")
        if key in ("drop_before", "drop_after", "garbage") or (key == "delay" and value is not None):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{key} must be a count >= 0")
        elif key == "delay_s":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError("delay_s must be a number of seconds >= 0")
            value = float(value)
        elif key == "refuse_login":
            if not isinstance(value, bool):
                raise ValueError("refuse_login must be true or false")
        elif key == "codes" and value is not None:
            if isinstance(value, str) or not all(isinstance(c, str) and len(c) == 2 for c in value):
                raise ValueError("codes must be a list of two-digit message codes, or null")
            value = frozenset(value)
        out[key] = value
    return out


# --------------------------------------------------------------------------- persistence

def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def library_to_json(lib: Library) -> dict[str, Any]:
    """The library as JSON-ready data (readers, copies, policy, journal)."""
    copies = []
    for c in lib.copies.values():
        d = dataclasses.asdict(c)
        d["due"] = _iso(c.due)
        copies.append(d)
    return {"readers": [dataclasses.asdict(r) for r in lib.readers.values()], "copies": copies,
            "loan_days": lib.loan_days, "max_renewals": lib.max_renewals,
            "journal": [[op, item, patron, when.isoformat()] for op, item, patron, when in lib.journal]}


def library_from_json(data: dict[str, Any]) -> Library:
    """The inverse of :func:`library_to_json`."""
    lib = Library(loan_days=int(data.get("loan_days", 30)),
                  max_renewals=int(data.get("max_renewals", 2)))
    for r in data["readers"]:
        reader = Reader(**r)
        lib.readers[reader.patron_id] = reader
    for c in data["copies"]:
        c = dict(c)
        c["due"] = None if c.get("due") is None else date.fromisoformat(c["due"])
        copy = Copy(**c)
        lib.copies[copy.item_id] = copy
    lib.journal = [(op, item, patron, datetime.fromisoformat(when))
                   for op, item, patron, when in data.get("journal", [])]
    return lib


# --------------------------------------------------------------------------- the server

class _Conn:
    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.logged_in = False
        self.last: bytes | None = None


class _Drop(Exception):
    """Close this connection now (a fault, or a request before login)."""


def _due_text(due: date | None) -> datetime | None:
    return None if due is None else datetime.combine(due, time(23, 59, 59))


def _fen_text(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


class IlsSim:
    """A SIP2 server over an in-memory library.

    Args:
        library: what it serves (default :func:`demo_library`; ignored when ``state_path``
            holds a saved library).
        profile: a ``sip2proto.Profile`` or a name in ``PROFILES``.
        host, port: where to listen (port 0 = a free one, see :attr:`port` after start).
        user, password: the login (93 CN/CO) it accepts.
        institution: AO in answers that have no AO of the request to echo.
        control_port: also serve the HTTP control API there (0 = a free port; None = none).
        state_path: save the library (JSON) after each applied change, load it at start.
        clock: the ACS's "now" (naive local time).
    """

    def __init__(self, library: Library | None = None, *, profile: Profile | str = "generic",
                 host: str = "127.0.0.1", port: int = 0, user: str = "lendbox",
                 password: str = "lendbox", institution: str = "LENDBOX",
                 library_name: str = "lendbox emulated ILS", control_port: int | None = None,
                 state_path: str | Path | None = None,
                 clock: Callable[[], datetime] = datetime.now) -> None:
        self.profile = PROFILES[profile] if isinstance(profile, str) else profile
        self.state_path = Path(state_path) if state_path is not None else None
        if self.state_path is not None and self.state_path.exists():
            library = library_from_json(json.loads(self.state_path.read_text(encoding="utf-8")))
        self.library = library if library is not None else demo_library()
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.institution = institution
        self.library_name = library_name
        self.clock = clock
        self.lock = threading.RLock()  # around every library call
        self.requests: dict[str, int] = {}
        self.fired: dict[str, int] = {}
        self.connections = 0
        self._faults = IlsFaults()
        self._fault_lock = threading.Lock()
        self._control_port = control_port
        self._control: ThreadingHTTPServer | None = None
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._clients: dict[socket.socket, threading.Thread] = {}
        self._clients_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ life cycle
    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def control_url(self) -> str | None:
        if self._control is None:
            return None
        return f"http://{self.host}:{self._control.server_address[1]}"

    def start(self) -> IlsSim:
        """Bind, listen and serve from threads; returns self."""
        self._stop.clear()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(16)
        listener.settimeout(_POLL_S)
        self._listener = listener
        self.port = listener.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name=f"ils-sim:{self.port}", daemon=True)
        t.start()
        self._threads.append(t)
        if self._control_port is not None:
            self._control = _ControlHTTP((self.host, self._control_port), _control_handler(self))
            c = threading.Thread(target=self._control.serve_forever, kwargs={"poll_interval": 0.05},
                                 name="ils-sim-control", daemon=True)
            c.start()
            self._threads.append(c)
        return self

    def stop(self) -> None:
        """Stop listening, close every connection, join the threads."""
        self._stop.set()
        if self._control is not None:
            self._control.shutdown()
            self._control.server_close()
            self._control = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._clients_lock:
            clients = list(self._clients.items())
        for sock, _ in clients:
            _close(sock)
        for _, thread in clients:
            thread.join(5)
        for t in self._threads:
            t.join(5)
        self._threads.clear()

    def __enter__(self) -> IlsSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults and state
    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change the given fault switches (ValueError for an unknown key or bad value);
        returns them all."""
        checked = _check_faults(changes)
        with self._fault_lock:
            for key, value in checked.items():
                setattr(self._faults, key, value)
            return self._faults.as_dict()

    def clear_faults(self) -> dict[str, Any]:
        with self._fault_lock:
            self._faults = IlsFaults()
            return self._faults.as_dict()

    def faults(self) -> dict[str, Any]:
        """The switches now, and how often each fault has fired."""
        with self._fault_lock:
            return {**self._faults.as_dict(), "fired": dict(self.fired)}

    def add_reader(self, patron_id: str = "", name: str = "", password: str = "",
                   blocked: bool = False) -> dict[str, Any]:
        """Register a reader (what the library's own registration does: 秒办证 readers
        reach the ILS too); ValueError without an id. Kept in the state file."""
        if not isinstance(patron_id, str) or not patron_id or not isinstance(name, str):
            raise ValueError("a reader needs a patron_id and a name")
        with self.lock:
            self.library.readers[patron_id] = Reader(patron_id, name, password,
                                                     blocked=bool(blocked))
            self._save()
        return {"patron_id": patron_id, "name": name}

    def add_item(self, item_id: str = "", title: str = "", branch: str = "") -> dict[str, Any]:
        """Catalogue a copy (the ILS's own catalogue); ValueError without an id."""
        if not isinstance(item_id, str) or not item_id or not isinstance(title, str):
            raise ValueError("an item needs an item_id and a title")
        with self.lock:
            if item_id not in self.library.copies:
                self.library.copies[item_id] = Copy(item_id, title, str(branch))
            self._save()
        return {"item_id": item_id}

    def journal(self) -> list[dict[str, Any]]:
        """What the library applied: [{"op", "item_id", "patron_id", "when"}] in order."""
        with self.lock:
            return [{"op": op, "item_id": item, "patron_id": patron, "when": when.isoformat()}
                    for op, item, patron, when in self.library.journal]

    def state(self) -> dict[str, Any]:
        with self.lock:
            loans = {c.item_id: {"patron_id": c.patron_id, "due": _iso(c.due)}
                     for c in self.library.copies.values() if c.patron_id is not None}
            journal_len = len(self.library.journal)
        return {"address": f"{self.host}:{self.port}", "profile": self.profile.name,
                "connections": self.connections, "requests": self._requests(),
                "journal_length": journal_len, "loans": loans, "faults": self.faults()}

    def _requests(self) -> dict[str, int]:
        with self._fault_lock:
            return dict(self.requests)

    def _counted(self, code: str) -> bool:
        codes = self._faults.codes
        return code not in _UNCOUNTED if codes is None else code in codes

    def _take(self, kind: str, code: str) -> bool:
        """Whether fault ``kind`` hits this request (counting it down)."""
        with self._fault_lock:
            if not self._counted(code):
                return False
            left = getattr(self._faults, kind)
            if not left:
                return False
            setattr(self._faults, kind, left - 1)
            self.fired[kind] = self.fired.get(kind, 0) + 1
            return True

    def _take_delay(self, code: str) -> float:
        with self._fault_lock:
            f = self._faults
            if f.delay_s <= 0 or not self._counted(code) or f.delay == 0:
                return 0.0
            if f.delay is not None:
                f.delay -= 1
            self.fired["delay"] = self.fired.get("delay", 0) + 1
            return f.delay_s

    def _save(self) -> None:
        if self.state_path is None:
            return
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps(library_to_json(self.library), ensure_ascii=False),
                       encoding="utf-8")
        os.replace(tmp, self.state_path)

    # ------------------------------------------------------------------ connections
    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stop.is_set():
            try:
                sock, addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(_POLL_S)
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(sock, f"{addr[0]}:{addr[1]}"),
                                 name=f"ils-sim-conn:{addr[1]}", daemon=True)
            with self._clients_lock:
                self._clients[sock] = t
            t.start()

    def _serve(self, sock: socket.socket, peer: str) -> None:
        conn = _Conn(sock, peer)
        parser = Parser(self.profile)
        try:
            while not self._stop.is_set():
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                for item in parser.feed(data):
                    self._one(conn, item)
        except _Drop:
            pass
        finally:
            _close(sock)
            with self._clients_lock:
                self._clients.pop(sock, None)

    def _send(self, conn: _Conn, data: bytes) -> None:
        try:
            conn.sock.sendall(data)
        except OSError as exc:
            raise _Drop from exc

    def _one(self, conn: _Conn, item: Message | SIP2Error) -> None:
        code = "bad" if isinstance(item, SIP2Error) else item.code
        with self._fault_lock:
            self.requests[code] = self.requests.get(code, 0) + 1
        if isinstance(item, SIP2Error):
            self._send(conn, encode(request_sc_resend(), self.profile))
            return
        msg = item
        if msg.code == "96":
            return  # "resend your request" is the ACS's to send; an SC's 96 is ignored
        if msg.code == "97":
            self._send(conn, conn.last or encode(request_sc_resend(), self.profile))
            return
        if msg.code not in ("93", "99") and not conn.logged_in:
            raise _Drop  # Koha closes a session that skips the login
        if self._take("drop_before", msg.code):
            raise _Drop
        answer = self._apply(conn, msg)
        data = self._encode(answer.with_seq(msg.seq if msg.seq is not None else 0))
        conn.last = data
        if self._take("drop_after", msg.code):
            raise _Drop
        delay = self._take_delay(msg.code)
        if delay and self._stop.wait(delay):
            raise _Drop
        if self._take("garbage", msg.code):
            self._send(conn, GARBAGE + self.profile.terminator)
            return
        self._send(conn, data)

    def _encode(self, message: Message) -> bytes:
        try:
            return encode(message, self.profile)
        except EncodeError:  # e.g. a Chinese title under cp850: send what the encoding can
            enc = self.profile.encoding
            fields = tuple((c, v.encode(enc, "replace").decode(enc)) for c, v in message.fields)
            return encode(dataclasses.replace(message, fields=fields), self.profile)

    # ------------------------------------------------------------------ the ILS
    def _date(self, msg: Message, name: str) -> datetime | None:
        raw = msg.get_fixed(name)
        if raw is None:
            return None
        try:
            return parse_date(raw, self.profile)
        except FieldError:
            return None

    def _apply(self, conn: _Conn, msg: Message) -> Message:
        handler = _HANDLERS.get(msg.code)
        if handler is None:
            return request_sc_resend()  # a response code or one we do not serve
        now = self.clock()
        with self.lock:
            before = len(self.library.journal)
            answer = handler(self, conn, msg, now)
            if len(self.library.journal) != before:
                self._save()
        return answer

    def _ao(self, msg: Message) -> str:
        return msg.get("AO") or self.institution

    def _login(self, conn: _Conn, msg: Message, now: datetime) -> Message:
        with self._fault_lock:
            refuse = self._faults.refuse_login
            if refuse:
                self.fired["refuse_login"] = self.fired.get("refuse_login", 0) + 1
        ok = not refuse and msg.get("CN") == self.user and msg.get("CO") == self.password
        conn.logged_in = ok
        return login_response(ok)

    def _status(self, conn: _Conn, msg: Message, now: datetime) -> Message:
        return acs_status(institution_id=self.institution, date_time_sync=now, status_update_ok=True,
                          supported_messages=SUPPORTED, library_name=self.library_name)

    def _flags(self, reader: Reader | None) -> str:
        flags = [" "] * 14
        if reader is not None:
            if reader.blocked:
                for i in range(4):  # charge, renewal, recall, hold privileges denied
                    flags[i] = "Y"
            if len(self.library.loans_of(reader.patron_id)) >= reader.max_loans:
                flags[5] = "Y"  # too many items charged
        return "".join(flags)

    def _patron_info(self, conn: _Conn, msg: Message, now: datetime) -> Message:
        lib, pid = self.library, msg.get("AA") or ""
        reader = lib.reader(pid)
        common: dict[str, Any] = {"institution_id": self._ao(msg), "transaction_date": now}
        if reader is None:
            return patron_information_response(pid, personal_name="", valid_patron=False,
                                               screen_messages=["Patron not found"], **common)
        lists = {
            "hold": [c.item_id for c in lib.holds_of(pid)],
            "overdue": [c.item_id for c in lib.overdue_of(pid, now.date())],
            "charged": [c.item_id for c in lib.loans_of(pid)],
            "fine": [f"{_fen_text(reader.fines_fen)} CNY"] if reader.fines_fen else [],
            "recall": [], "unavailable_holds": [],
        }
        counts = (len(lists["hold"]), len(lists["overdue"]), len(lists["charged"]),
                  len(lists["fine"]), 0, 0)
        summary = msg.get_fixed("summary") or ""
        wanted: dict[str, list[str]] = {k: [] for k in lists}
        keys = list(lists)
        if "Y" in summary[:6]:
            key = keys[summary.index("Y")]
            start = int(msg.get("BP") or 1)
            end = int(msg.get("BQ") or 9999)
            wanted[key] = lists[key][max(start, 1) - 1: end]
        password = msg.get("AD")
        return patron_information_response(
            pid, personal_name=reader.name, patron_status=self._flags(reader), valid_patron=True,
            valid_patron_password=None if password is None else password == reader.password,
            hold_items=wanted["hold"], overdue_items=wanted["overdue"],
            charged_items=wanted["charged"], fine_items=wanted["fine"],
            counts=counts,
            charged_items_limit=min(reader.max_loans, 9999), currency_type="CNY",
            fee_amount=_fen_text(reader.fines_fen), email=reader.email or None,
            phone=reader.phone or None,
            screen_messages=["Patron blocked"] if reader.blocked else [], **common)

    def _patron_status(self, conn: _Conn, msg: Message, now: datetime) -> Message:
        pid = msg.get("AA") or ""
        reader = self.library.reader(pid)
        password = msg.get("AD")
        return patron_status_response(
            pid, institution_id=self._ao(msg), transaction_date=now,
            personal_name=reader.name if reader else "", patron_status=self._flags(reader),
            valid_patron=reader is not None,
            valid_patron_password=(None if reader is None or not password
                                   else password == reader.password),
            currency_type="CNY", fee_amount=_fen_text(reader.fines_fen) if reader else None,
            screen_messages=(["Patron not found"] if reader is None
                             else ["Patron blocked"] if reader.blocked else []))

    def _block(self, conn: _Conn, msg: Message, now: datetime) -> Message:
        self.library.block(msg.get("AA") or "")
        return self._patron_status(conn, msg, now)

    def _item_info(self, conn: _Conn, msg: Message, now: datetime) -> Message:
        item_id = msg.get("AB") or ""
        copy = self.library.copy(item_id)
        if copy is None:
            return item_information_response(item_id, transaction_date=now, circulation_status=1,
                                             screen_messages=["Item not found"])
        return item_information_response(
            item_id, transaction_date=now, circulation_status=int(copy.status), title=copy.title,
            due_date=_due_text(copy.due), hold_queue_length=1 if copy.hold_for else 0,
            owner=self.institution, permanent_location=copy.branch, current_location=copy.branch)

    def _circ(self, code: str, msg: Message, out: Outcome, now: datetime) -> Message:
        item_id = msg.get("AB") or ""
        copy = self.library.copy(item_id)
        build = checkout_response if code == "12" else renew_response
        return build(out.ok, msg.get("AA") or "", item_id, institution_id=self._ao(msg),
                     transaction_date=now, renewal_ok=code == "30" and out.ok,
                     desensitize=out.ok, title=copy.title if copy else "",
                     due_date=_due_text(out.due) if out.ok else None,
                     screen_messages=[out.message] if out.message else [])

    def _no_block_due(self, msg: Message) -> date | None:
        if msg.get_fixed("no_block") != "Y":
            return None
        due = self._date(msg, "nb_due_date")
        return None if due is None else due.date()

    def _checkout(self, conn: _Conn, msg: Message, now: datetime) -> Message:
        when = self._date(msg, "transaction_date") or now
        out = self.library.checkout(msg.get("AA") or "", msg.get("AB") or "", when=when,
                                    no_block=msg.get_fixed("no_block") == "Y",
                                    due=self._no_block_due(msg))
        return self._circ("12", msg, out, now)

    def _renew(self, conn: _Conn, msg: Message, now: datetime) -> Message:
        when = self._date(msg, "transaction_date") or now
        out = self.library.renew(msg.get("AA") or "", msg.get("AB") or "", when=when,
                                 due=self._no_block_due(msg))
        return self._circ("30", msg, out, now)

    def _checkin(self, conn: _Conn, msg: Message, now: datetime) -> Message:
        item_id = msg.get("AB") or ""
        when = self._date(msg, "return_date") or self._date(msg, "transaction_date") or now
        copy = self.library.copy(item_id)
        patron = copy.patron_id if copy else None
        out = self.library.checkin(item_id, when=when)
        return checkin_response(out.ok, item_id, institution_id=self._ao(msg), transaction_date=now,
                                resensitize=out.ok, alert=out.alert,
                                permanent_location=copy.branch if copy else "",
                                title=copy.title if copy else None,
                                sort_bin=copy.branch if copy and out.alert else None,
                                patron_id=patron, screen_messages=[out.message] if out.message else [])

    def _renew_all(self, conn: _Conn, msg: Message, now: datetime) -> Message:
        pid = msg.get("AA") or ""
        when = self._date(msg, "transaction_date") or now
        if self.library.reader(pid) is None:
            return renew_all_response(False, institution_id=self._ao(msg), transaction_date=now,
                                      screen_messages=["Patron not found"])
        done, not_done = self.library.renew_all(pid, when=when)
        return renew_all_response(True, institution_id=self._ao(msg), transaction_date=now,
                                  renewed_items=done, unrenewed_items=not_done)

    def _end_session(self, conn: _Conn, msg: Message, now: datetime) -> Message:
        return end_session_response(True, msg.get("AA") or "", institution_id=self._ao(msg),
                                    transaction_date=now)

    def _fee_paid(self, conn: _Conn, msg: Message, now: datetime) -> Message:
        pid = msg.get("AA") or ""
        try:
            fen = int(Decimal(msg.get("BV") or "0") * 100)
        except InvalidOperation:
            fen = 0
        out = self.library.pay(pid, fen)
        return fee_paid_response(out.ok, pid, institution_id=self._ao(msg), transaction_date=now,
                                 transaction_id=msg.get("BK"), screen_messages=[out.message])

    def _item_status_update(self, conn: _Conn, msg: Message, now: datetime) -> Message:
        item_id = msg.get("AB") or ""
        copy = self.library.copy(item_id)
        return item_status_update_response(copy is not None, item_id, transaction_date=now,
                                           title=copy.title if copy else None,
                                           item_properties=msg.get("CH"),
                                           screen_messages=[] if copy else ["Item not found"])

    def _hold(self, conn: _Conn, msg: Message, now: datetime) -> Message:
        pid, item_id = msg.get("AA") or "", msg.get("AB")
        mode = msg.get_fixed("hold_mode")
        copy = self.library.copy(item_id) if item_id else None
        if not item_id:
            out = Outcome(False, "Item id required (title holds are not supported)")
        elif mode == "+":
            out = self.library.place_hold(pid, item_id)
        elif mode == "-":
            out = self.library.cancel_hold(pid, item_id)
        else:  # "*": change — nothing to change but the hold must exist
            exists = copy is not None and copy.hold_for == pid
            out = Outcome(exists, "Hold unchanged" if exists else "No such hold")
        available = copy is not None and copy.patron_id is None
        return hold_response(out.ok, pid, institution_id=self._ao(msg), transaction_date=now,
                             available=available and out.ok and mode != "-",
                             queue_position=1 if out.ok and mode != "-" else None,
                             pickup_location=msg.get("BS"), item_id=item_id,
                             title_id=copy.title if copy else None, screen_messages=[out.message])


_Handler = Callable[[IlsSim, _Conn, Message, datetime], Message]
_HANDLERS: dict[str, _Handler] = {
    "93": IlsSim._login, "99": IlsSim._status, "63": IlsSim._patron_info,
    "23": IlsSim._patron_status, "17": IlsSim._item_info, "11": IlsSim._checkout,
    "09": IlsSim._checkin, "29": IlsSim._renew, "65": IlsSim._renew_all,
    "35": IlsSim._end_session, "37": IlsSim._fee_paid, "19": IlsSim._item_status_update,
    "01": IlsSim._block, "15": IlsSim._hold,
}


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


# --------------------------------------------------------------------------- control (HTTP)

class _ControlHTTP(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _control_dispatch(sim: IlsSim, method: str, path: str, body: bytes) -> tuple[int, Any]:
    """GET /faults, POST /faults {switches}, POST /faults/clear, GET /journal, GET /state,
    GET /items/ID, POST /readers {patron_id, name, password?, blocked?}, POST /items
    {item_id, title, branch}. Never raises."""
    path = path.split("?", 1)[0].rstrip("/") or "/"
    try:
        data: Any = json.loads(body) if body.strip() else {}
        if not isinstance(data, dict):
            return 400, {"error": "the request body must be a JSON object"}
        if method == "GET" and path == "/faults":
            return 200, sim.faults()
        if method == "POST" and path == "/faults":
            return 200, sim.set_faults(**data)
        if method == "POST" and path == "/faults/clear":
            return 200, sim.clear_faults()
        if method == "GET" and path == "/journal":
            return 200, sim.journal()
        if method == "GET" and path == "/state":
            return 200, sim.state()
        if method == "POST" and path == "/readers":
            return 200, sim.add_reader(**data)
        if method == "POST" and path == "/items":
            return 200, sim.add_item(**data)
        if method == "GET" and path.startswith("/items/"):
            with sim.lock:
                copy = sim.library.copy(path[len("/items/"):])
                if copy is None:
                    return 404, {"error": "no such item"}
                d = dataclasses.asdict(copy)
            d["due"] = _iso(copy.due)
            return 200, d
        return 404, {"error": f"no route {method} {path}"}
    except json.JSONDecodeError as exc:
        return 400, {"error": f"body is not valid JSON: {exc.msg}"}
    except (ValueError, TypeError) as exc:
        return 400, {"error": str(exc)}
    except Exception as exc:  # a bug: say so, keep serving
        return 500, {"error": f"internal error: {type(exc).__name__}: {exc}"}


def _control_handler(sim: IlsSim) -> type[BaseHTTPRequestHandler]:
    return json_handler(lambda method, path, body: _control_dispatch(sim, method, path, body))
