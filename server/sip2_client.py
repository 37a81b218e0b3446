"""The SIP2 client: TCP or TLS connections to a library system (the ACS), and a small pool.

Why it works this way (issue [5/6], requirement 2):

- **Blocking sockets, one request in flight per connection.** SIP2 is strictly
  request/answer; a connection is owned by one thread at a time (the pool hands it out) and
  the bytes go through :mod:`sip2proto` (``encode`` out, ``Parser`` in), so split and merged
  TCP reads are the parser's business, not ours.
- **Session on connect.** ``93`` login, then ``99`` SC status; a refused login is
  :class:`LoginRefused`. A connection idle for ``heartbeat_s`` is pinged with ``99`` before it is
  used again (and by the pool's optional heartbeat thread), so a dead connection is found by
  an idempotent message, not by a checkout.
- **Lost means lost.** Once a circulation request's bytes may have left, a timeout, a dropped
  connection or an answer that stays garbled raises :class:`AnswerLost` and the connection is
  closed (a late answer must never be read as the answer to the next request). The client
  never sends a circulation request twice; the caller resolves the uncertainty by asking the
  ILS (item information), see :mod:`server.ils_port`. Only idempotent requests (login, status,
  patron/item information) are retried, on a fresh connection.
- **Resend rule.** A garbled answer (bad checksum, bad framing, undecodable) is answered with
  ``97`` (request ACS resend) at most ``resend_limit`` times. A ``96`` from the ACS says it did
  not take our request: the same bytes are sent again (it was not applied), also bounded.
- **Sequence numbers.** Under a checksumming profile each request carries ``AY`` 0–9, cycling
  per connection; an answer carrying another number is a stale one and is skipped.
- **Nothing sent ⇒ :class:`NotSent`.** Connect and login failures (after the reconnect
  back-off) raise :class:`ConnectFailed`/:class:`LoginRefused`; the forwarder reads them as
  "the ILS cannot be reached", and can safely try again later.

Patron names are never logged; ids in logs go through ``syncproto.grants.log_id``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import sip2proto
from sip2proto import Message, Parser, Profile, SIP2Error

__all__ = [
    "RESPONSE_CODES",
    "AnswerLost",
    "ClientConfig",
    "ConnectFailed",
    "ConnectionDropped",
    "GarbledAnswer",
    "LoginRefused",
    "NotSent",
    "RequestTimeout",
    "SIP2ClientError",
    "SIP2Client",
    "SIP2Connection",
    "UnexpectedAnswer",
]

_log = logging.getLogger(__name__)

#: request code → the code of its answer (01 Block Patron is answered by 24).
RESPONSE_CODES: dict[str, str] = {
    "93": "94", "99": "98", "63": "64", "23": "24", "17": "18", "11": "12", "09": "10",
    "29": "30", "65": "66", "35": "36", "37": "38", "19": "20", "01": "24", "15": "16",
}
#: requests that change the ILS: never sent twice by the client.
CIRCULATION_CODES = frozenset({"11", "09", "29", "65", "37", "19", "01", "15"})


# ----------------------------------------------------------------------------- errors


class SIP2ClientError(Exception):
    """Base of the client's errors."""


class NotSent(SIP2ClientError):  # noqa: N818 - a state of the request, not a program error
    """The request did not leave: the ILS could not be reached or refused the session."""


class ConnectFailed(NotSent):
    """TCP/TLS connect failed (after the reconnect back-off)."""


class LoginRefused(NotSent):
    """The ACS answered ``940`` to our login."""


class AnswerLost(SIP2ClientError):  # noqa: N818
    """The request may have reached the ILS, but its answer did not reach us."""


class RequestTimeout(AnswerLost):
    """No answer within the request timeout."""


class ConnectionDropped(AnswerLost):
    """The connection closed or failed after the request was (maybe) sent."""


class GarbledAnswer(AnswerLost):
    """The answer stayed unreadable after ``resend_limit`` ``97`` requests."""


class UnexpectedAnswer(SIP2ClientError):
    """A readable answer of the wrong message type (e.g. ``96`` beyond the resend limit)."""

    def __init__(self, text: str, message: Message | None = None) -> None:
        super().__init__(text)
        self.message = message


# ----------------------------------------------------------------------------- config


def _local_now() -> datetime:
    return datetime.now()


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """Where the ACS is and how to talk to it.

    Attributes:
        host, port: the ACS's SIP2 listener.
        user, password, location: the 93 login (CN, CO, CP).
        institution_id: AO of every request.
        terminal_password: AC (always sent, empty by default: some servers require the field).
        profile: the ILS's :class:`sip2proto.Profile`.
        timeout_s: how long one answer may take.
        connect_timeout_s: TCP (+TLS) connect.
        heartbeat_s: a connection idle this long is pinged with 99 before use (None: never).
        resend_limit: how many 97 (and 96-triggered resends) per request.
        ssl_context: TLS when set; ``server_hostname`` defaults to ``host``.
        reconnect_attempts, backoff_s, backoff_max_s: connect retries, doubling back-off.
        end_session: send 35 end patron session (for ``session_patron``) before closing.
        clock: the transaction date of lookups and status messages (naive local time).
    """

    host: str
    port: int
    user: str
    password: str
    location: str = ""
    institution_id: str = ""
    terminal_password: str = ""
    profile: Profile = field(default_factory=lambda: sip2proto.PROFILES["generic"])
    timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    heartbeat_s: float | None = 60.0
    resend_limit: int = 2
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    reconnect_attempts: int = 3
    backoff_s: float = 0.2
    backoff_max_s: float = 5.0
    clock: Callable[[], datetime] = _local_now


# ----------------------------------------------------------------------------- one connection


class SIP2Connection:
    """One logged-in SIP2 session. Not thread-safe: one owner at a time (see SIP2Client)."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.profile = config.profile
        self._sock: socket.socket | None = None
        self._parser = Parser(self.profile)
        self._backlog: list[Message | SIP2Error] = []
        self._seq: int | None = None
        self.last_used = 0.0
        self.acs_status: Message | None = None
        self.last_sent: Message | None = None  # the last request as sent (with its seq)
        self.requests = 0

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def open(self) -> SIP2Connection:
        """Connect (with back-off), log in and send SC status.

        Raises:
            ConnectFailed: no TCP/TLS connection after ``reconnect_attempts``.
            LoginRefused: the ACS answered 940.
        """
        cfg = self.config
        delay = cfg.backoff_s
        last: Exception | None = None
        for attempt in range(max(1, cfg.reconnect_attempts)):
            if attempt:
                time.sleep(delay)
                delay = min(delay * 2, cfg.backoff_max_s)
            try:
                self._connect()
                self._start_session()
                return self
            except LoginRefused:
                self.close()
                raise
            except (OSError, ConnectFailed, AnswerLost, UnexpectedAnswer) as exc:
                self.close()
                last = exc
                _log.info("sip2 connect %s:%d attempt %d failed: %s", cfg.host, cfg.port,
                          attempt + 1, exc)
        raise ConnectFailed(f"cannot reach the ILS at {cfg.host}:{cfg.port} after "
                            f"{max(1, cfg.reconnect_attempts)} attempts: {last}") from last

    def _connect(self) -> None:
        cfg = self.config
        try:
            sock = socket.create_connection((cfg.host, cfg.port), timeout=cfg.connect_timeout_s)
        except OSError as exc:
            raise ConnectFailed(f"connect to {cfg.host}:{cfg.port}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if cfg.ssl_context is not None:
            try:
                sock = cfg.ssl_context.wrap_socket(
                    sock, server_hostname=cfg.server_hostname or cfg.host)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise ConnectFailed(f"TLS to {cfg.host}:{cfg.port}: {exc}") from exc
        self._sock = sock
        self._parser = Parser(self.profile)
        self._backlog = []
        self._seq = None

    def _start_session(self) -> None:
        cfg = self.config
        answer = self._exchange(sip2proto.login(cfg.user, cfg.password,
                                                location_code=cfg.location or None))
        if answer.get_fixed("ok") != "1":
            raise LoginRefused(f"the ILS refused login of {cfg.user!r}")
        self.acs_status = self._exchange(sip2proto.sc_status())

    def close(self, *, end_session_patron: str | None = None) -> None:
        """Close the socket (after 35 end patron session for ``end_session_patron`` when
        given; its failure is ignored)."""
        if self._sock is None:
            return
        if end_session_patron is not None:
            with contextlib.suppress(SIP2ClientError, OSError, SIP2Error):
                self._exchange(sip2proto.end_patron_session(
                    end_session_patron, institution_id=self.config.institution_id,
                    transaction_date=self.config.clock(),
                    terminal_password=self.config.terminal_password))
        sock, self._sock = self._sock, None
        with contextlib.suppress(OSError):
            sock.close()

    # -- requests ---------------------------------------------------------------------------

    def heartbeat(self) -> Message:
        """Send 99 SC status; the 98 ACS status."""
        self.acs_status = self.request(sip2proto.sc_status())
        return self.acs_status

    def idle_for(self) -> float:
        return time.monotonic() - self.last_used

    def peer_closed(self) -> bool:
        """Whether the ACS closed the connection while it was idle (reads nothing if not)."""
        sock = self._sock
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            data = sock.recv(65536)
        except (OSError, ValueError):
            return True
        if not data:
            return True
        self._backlog.extend(self._parser.feed(data))  # unsolicited bytes: kept, then skipped
        return False

    def request(self, message: Message) -> Message:
        """Send ``message`` (its seq is assigned here) and return the answer.

        Raises:
            AnswerLost: timeout, drop, or garbled beyond the resend limit (connection closed).
            UnexpectedAnswer: the ACS answered something else (connection closed).
            NotSent: the connection is not open.
        """
        if self._sock is None:
            raise NotSent("connection is not open")
        try:
            return self._exchange(message)
        except (AnswerLost, UnexpectedAnswer):
            self.close()
            raise

    def _next_seq(self) -> int | None:
        if not self.profile.sends_checksum:
            return None
        self._seq = sip2proto.next_seq(self._seq)
        return self._seq

    def _exchange(self, message: Message) -> Message:
        sock = self._sock
        if sock is None:
            raise NotSent("connection is not open")
        seq = self._next_seq()
        self.last_sent = message.with_seq(seq)
        frame = sip2proto.encode(self.last_sent, self.profile)
        want = RESPONSE_CODES.get(message.code)
        self._backlog = []  # anything unsolicited before our request is not its answer
        self._send(frame)
        self.requests += 1
        resends = 0
        deadline = time.monotonic() + self.config.timeout_s
        while True:
            item = self._read_one(deadline)
            if isinstance(item, SIP2Error):
                if resends >= self.config.resend_limit:
                    raise GarbledAnswer(f"answer to {message.code} still garbled after "
                                        f"{resends} resend requests: {item}")
                resends += 1
                _log.info("sip2 garbled answer to %s (%s); asking 97", message.code, item)
                self._send(sip2proto.encode(sip2proto.request_acs_resend(), self.profile))
                deadline = time.monotonic() + self.config.timeout_s
                continue
            if item.code == sip2proto.REQUEST_SC_RESEND:  # 96: the ACS did not take it
                if resends >= self.config.resend_limit:
                    raise UnexpectedAnswer(f"the ACS asked to resend {message.code} "
                                           f"{resends + 1} times", item)
                resends += 1
                self._send(frame)
                deadline = time.monotonic() + self.config.timeout_s
                continue
            if seq is not None and item.seq is not None and item.seq != seq:
                _log.info("sip2 skipped a stale answer %s (seq %s, want %s)", item.code,
                          item.seq, seq)
                continue
            if want is not None and item.code != want:
                raise UnexpectedAnswer(f"expected {want} to {message.code}, got {item.code}",
                                       item)
            self.last_used = time.monotonic()
            return item

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        try:
            self._sock.settimeout(self.config.timeout_s)
            self._sock.sendall(data)
        except TimeoutError as exc:
            raise RequestTimeout(f"send timed out: {exc}") from exc
        except OSError as exc:
            raise ConnectionDropped(f"send failed: {exc}") from exc

    def _read_one(self, deadline: float) -> Message | SIP2Error:
        while not self._backlog:
            sock = self._sock
            assert sock is not None
            left = deadline - time.monotonic()
            if left <= 0:
                raise RequestTimeout(f"no answer within {self.config.timeout_s:g} s")
            try:
                sock.settimeout(left)
                data = sock.recv(65536)
            except TimeoutError as exc:
                raise RequestTimeout(f"no answer within {self.config.timeout_s:g} s") from exc
            except OSError as exc:
                raise ConnectionDropped(f"receive failed: {exc}") from exc
            if not data:
                raise ConnectionDropped("the ILS closed the connection")
            self._backlog.extend(self._parser.feed(data))
        return self._backlog.pop(0)


# ----------------------------------------------------------------------------- the pool


class SIP2Client:
    """Up to ``size`` logged-in connections to one ACS, shared by threads.

    ``with client.connection() as conn: conn.request(msg)`` holds one connection; the
    convenience methods below take one for a single request. Connections are opened lazily
    (so a down ILS costs nothing until used), checked before reuse (peer closed → reopened;
    idle past the heartbeat → 99 first) and discarded after any lost answer.
    """

    def __init__(self, config: ClientConfig, *, size: int = 1) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.config = config
        self.size = size
        self._idle: queue.LifoQueue[SIP2Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._all: list[SIP2Connection] = []
        self._closed = False
        self._stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self.reconnects = 0

    # -- checkout / checkin -----------------------------------------------------------------

    def _acquire(self, timeout: float | None) -> SIP2Connection:
        if self._closed:
            raise NotSent("client is closed")
        if not self._slots.acquire(timeout=timeout):
            raise NotSent(f"no free SIP2 connection within {timeout} s")
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = SIP2Connection(self.config)
                with self._lock:
                    self._all.append(conn)
            try:
                self._make_ready(conn)
            except BaseException:
                with self._lock:
                    self._all.remove(conn)
                raise
            return conn
        except BaseException:
            self._slots.release()
            raise

    def _make_ready(self, conn: SIP2Connection) -> None:
        hb = self.config.heartbeat_s
        if conn.is_open and conn.peer_closed():
            _log.info("sip2 connection closed by the ILS while idle; reconnecting")
            conn.close()
        if conn.is_open and hb is not None and conn.idle_for() >= hb:
            try:
                conn.heartbeat()
            except SIP2ClientError:
                conn.close()
        if not conn.is_open:
            if conn.requests:
                self.reconnects += 1
            conn.open()

    def _release(self, conn: SIP2Connection) -> None:
        if self._closed:
            conn.close()
        else:
            self._idle.put(conn)
        self._slots.release()

    @contextlib.contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[SIP2Connection]:
        """A logged-in connection for the block's exclusive use.

        Raises:
            NotSent: no connection could be opened (ConnectFailed, LoginRefused) or none was
                free within ``timeout``.
        """
        conn = self._acquire(timeout)
        try:
            yield conn
        finally:
            self._release(conn)

    # -- requests ---------------------------------------------------------------------------

    def request(self, message: Message, *, retry: bool | None = None) -> Message:
        """One request on a pooled connection.

        ``retry`` (default: True for idempotent messages, False for circulation) allows one
        more attempt on a fresh connection after a lost answer. Circulation is never retried
        whatever ``retry`` says.
        """
        again = (message.code not in CIRCULATION_CODES) if retry is None else retry
        if message.code in CIRCULATION_CODES:
            again = False
        attempts = 2 if again else 1
        for attempt in range(attempts):
            try:
                with self.connection() as conn:
                    return conn.request(message)
            except (AnswerLost, UnexpectedAnswer):
                if attempt + 1 >= attempts:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _now(self) -> datetime:
        return self.config.clock()

    def item_information(self, item_id: str) -> Message:
        """17 → 18."""
        cfg = self.config
        return self.request(sip2proto.item_information(
            item_id, institution_id=cfg.institution_id, transaction_date=self._now(),
            terminal_password=cfg.terminal_password))

    def patron_information(self, patron_id: str, *, summary: str | None = None,
                           patron_password: str | None = None) -> Message:
        """63 → 64; ``summary`` one of ``sip2proto.SUMMARY_ITEMS`` ("charged" …)."""
        cfg = self.config
        return self.request(sip2proto.patron_information(
            patron_id, institution_id=cfg.institution_id, transaction_date=self._now(),
            summary=summary, terminal_password=cfg.terminal_password,
            patron_password=patron_password))

    def checkout(self, patron_id: str, item_id: str, *, transaction_date: datetime,
                 no_block: bool, nb_due_date: datetime | None) -> Message:
        """11 → 12. Never retried: a lost answer raises :class:`AnswerLost`."""
        cfg = self.config
        return self.request(sip2proto.checkout(
            patron_id, item_id, institution_id=cfg.institution_id,
            transaction_date=transaction_date, no_block=no_block, nb_due_date=nb_due_date,
            terminal_password=cfg.terminal_password))

    def checkin(self, item_id: str, *, transaction_date: datetime, return_date: datetime,
                no_block: bool) -> Message:
        """09 → 10 (AP is the login location). Never retried."""
        cfg = self.config
        return self.request(sip2proto.checkin(
            item_id, institution_id=cfg.institution_id, transaction_date=transaction_date,
            return_date=return_date, current_location=cfg.location, no_block=no_block,
            terminal_password=cfg.terminal_password))

    def renew(self, patron_id: str, item_id: str, *, transaction_date: datetime,
              no_block: bool, nb_due_date: datetime | None) -> Message:
        """29 → 30. Never retried."""
        cfg = self.config
        return self.request(sip2proto.renew(
            patron_id, item_id, institution_id=cfg.institution_id,
            transaction_date=transaction_date, no_block=no_block, nb_due_date=nb_due_date,
            terminal_password=cfg.terminal_password))

    # -- heartbeat and close ----------------------------------------------------------------

    def heartbeat_once(self) -> int:
        """Ping every idle connection idle for ``heartbeat_s``; how many were pinged. A
        failed ping closes that connection (the next user reconnects)."""
        hb = self.config.heartbeat_s
        if hb is None:
            return 0
        held: list[SIP2Connection] = []
        pinged = 0
        while True:
            if not self._slots.acquire(blocking=False):
                break
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                self._slots.release()
                break
            held.append(conn)
            if conn.is_open and conn.idle_for() >= hb:
                pinged += 1
                try:
                    conn.heartbeat()
                except SIP2ClientError:
                    conn.close()
        for conn in held:
            self._release(conn)
        return pinged

    def start_heartbeat(self, interval_s: float = 1.0) -> None:
        """A daemon thread calling :meth:`heartbeat_once` every ``interval_s``."""
        if self._heartbeat_thread is not None:
            return

        def run() -> None:
            while not self._stop.wait(interval_s):
                with contextlib.suppress(Exception):
                    self.heartbeat_once()

        self._heartbeat_thread = threading.Thread(target=run, name="sip2-heartbeat",
                                                  daemon=True)
        self._heartbeat_thread.start()

    def close(self) -> None:
        """Stop the heartbeat and close every connection."""
        self._closed = True
        self._stop.set()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(5)
        with self._lock:
            conns = list(self._all)
        for conn in conns:
            conn.close()

    def __enter__(self) -> SIP2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
