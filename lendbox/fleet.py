"""A simulated fleet of lending cabinets talking to the real central server over HTTP.

Why it exists: the fleet-level tests (two servers on one database, fuzzing), the server
benchmarks and the demo all need many cabinets that behave like real ones — each with its
own Ed25519 key, a gap-free ``seq`` from 1, events whose story adds up across cabinets (a
book is returned only after it was lent, possibly at another cabinet), ``offline`` set on
what was decided during an outage — without running a kiosk per cabinet. It is a *client*:
it speaks only the wire protocol (``syncproto``) and the staff API, never ``server``'s code.

Pieces:

- :class:`Fleet` holds the cabinets and the shared world (which book is out with whom) and
  :meth:`Fleet.simulate` writes a period of activity into every cabinet's outbox, all
  cabinets on one time line: visits (a session event, one or two loans or returns), an
  occasional alarm, returns of books lent by *other* cabinets (通借通还) at a chosen share,
  ``offline=True`` inside a cabinet's outage window. Seeded: the same arguments give the same
  events (uuids included).
- :func:`register` puts the fleet's library, branches, cabinets (with their public keys) and
  readers on a server through the staff API (an operator's bearer token); the readers' ids
  are the ones the server hands out (秒办证).
- :func:`push` sends a cabinet's outbox as signed ``POST /v1/sync`` batches until the
  server's ``applied_through`` reaches the cabinet's last seq, retrying 503s (a database
  hiccup, as the real agent does). Thread-safe per cabinet, so two threads may push one
  cabinet to two servers at once (duplicates racing).
- :class:`ServerRun`: ``lendbox server run`` as a child process on a free port (stopped by
  its pid), :func:`init_db` / :func:`create_admin` / :func:`login` around it.

``client`` is anything with httpx's ``post(path, content=, headers=)`` and ``base_url``:
``httpx.Client(base_url=url)`` or FastAPI's ``TestClient``.
"""

from __future__ import annotations

import heapq
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from syncproto import grants, signing

from .child import ReadyChild
from syncproto.messages import CabinetEvent, SyncBatch, SyncReply

__all__ = [
    "ALARM_SHARE",
    "CROSS_MARGIN",
    "Fleet",
    "HttpClient",
    "PushError",
    "PushResult",
    "ServerRun",
    "SimCabinet",
    "create_admin",
    "id_number",
    "init_db",
    "login",
    "push",
    "register",
]

#: Share of visits that raise an alarm (a door left open; no item, so no item goes missing).
ALARM_SHARE = 0.02
SYNC_PATH = "/v1/sync"
#: A book lent at one cabinet comes back at another at least this much later: the server
#: orders one item's events across cabinets by their corrected times, and a batch measured
#: under load may shift a cabinet's times by seconds.
CROSS_MARGIN = timedelta(minutes=10)
#: Days a loan runs (the ``due`` date of loan events).
LOAN_DAYS = 30
# opening hours of a cabinet's visits (local time is not modelled: UTC hours)
_OPEN_H, _CLOSE_H = 7, 22


#: What :func:`push` and :func:`register` take: anything with httpx's ``post(path,
#: content=, json=, headers=)`` on a base URL (httpx.Client, FastAPI's TestClient).
HttpClient = Any


# ----------------------------------------------------------------------------- cabinets


@dataclass
class _Loan:
    reader_id: str
    cabinet_id: str
    at: datetime


class _Pool:
    """A set with O(1) add, remove and seeded random choice (deterministic order)."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._list: list[str] = []
        self._index: dict[str, int] = {}
        for v in values:
            self.add(v)

    def __len__(self) -> int:
        return len(self._list)

    def __contains__(self, value: object) -> bool:
        return value in self._index

    def __iter__(self) -> Any:
        return iter(list(self._list))

    def add(self, value: str) -> None:
        if value not in self._index:
            self._index[value] = len(self._list)
            self._list.append(value)

    def discard(self, value: str) -> None:
        i = self._index.pop(value, None)
        if i is None:
            return
        last = self._list.pop()
        if i < len(self._list):
            self._list[i] = last
            self._index[last] = i

    def choice(self, rng: random.Random) -> str:
        return self._list[rng.randrange(len(self._list))]


class SimCabinet:
    """One simulated cabinet: its key, its gap-free ledger (the outbox) and its stock.

    ``events`` is the whole ledger, seq 1..n in order; ``acked`` is the highest seq a server
    said it applied (``applied_through``), raised by :meth:`ack` from any thread.
    """

    def __init__(self, cabinet_id: str, branch_id: str, *, rng: random.Random,
                 boot_at: datetime) -> None:
        self.id = cabinet_id
        self.branch_id = branch_id
        self.private_key, self.public_key = grants.generate_keypair()
        self.boot_id = f"boot-{rng.getrandbits(32):08x}"
        self.boot_at = boot_at
        self.events: list[CabinetEvent] = []
        self.stock = _Pool()  # books in the cabinet now
        self.lent = _Pool()  # books this cabinet lent that are still out
        self.outages: list[tuple[datetime, datetime]] = []
        self.acked = 0
        self.deny_version = 0
        self.items_version = 0
        self._rng = rng
        self._lock = threading.Lock()

    # -- the ledger

    @property
    def last_seq(self) -> int:
        return len(self.events)

    def offline_at(self, at: datetime) -> bool:
        return any(start <= at < end for start, end in self.outages)

    def append(self, kind: str, at: datetime, payload: dict[str, Any]) -> CabinetEvent:
        """The next event of the ledger (seq = last + 1)."""
        event = CabinetEvent(
            cabinet_id=self.id, seq=len(self.events) + 1,
            uuid=uuid.UUID(int=self._rng.getrandbits(128), version=4),
            kind=kind, at=at,  # type: ignore[arg-type]
            mono=round((at - self.boot_at).total_seconds(), 3), boot_id=self.boot_id,
            offline=self.offline_at(at), payload=payload)
        self.events.append(event)
        return event

    def after(self, seq: int, limit: int) -> list[CabinetEvent]:
        """Events after ``seq``, at most ``limit`` (the outbox from there)."""
        return self.events[seq:seq + limit]

    def ack(self, applied_through: int, reply: SyncReply | None = None) -> None:
        with self._lock:
            self.acked = max(self.acked, applied_through)
            if reply is not None:
                self.items_version = max(self.items_version, reply.items_version)
                for delta in reply.deny:
                    self.deny_version = max(self.deny_version, delta.to_version)

    # -- the wire

    def batch(self, events: Sequence[CabinetEvent], now: datetime) -> SyncBatch:
        return SyncBatch(cabinet_id=self.id, sent_at=now, events=list(events),
                         deny_version=self.deny_version, items_version=self.items_version)

    def signed(self, path: str, body: bytes, now: datetime) -> dict[str, str]:
        headers = signing.sign_request("POST", path, body, cabinet_id=self.id,
                                       private_key=self.private_key, now=now)
        headers["Content-Type"] = "application/json"
        return headers


# ----------------------------------------------------------------------------- the fleet


class Fleet:
    """Cabinets of one library, spread over branches, sharing one world of books and readers.

    ``library`` is the ISIL the books carry (``owner_library`` of returns); branch ids are
    ``{prefix}-B{k}``, cabinet ids ``{prefix}-C{n:04d}``, item ids ``{cabinet}-{k:04d}``
    (a book starts in the cabinet whose id it carries).
    """

    def __init__(self, cabinets: int, *, branches: int = 4, items_per_cabinet: int = 60,
                 seed: int = 0, prefix: str = "fleet", library: str = "CN-FLT",
                 start: datetime | None = None) -> None:
        if cabinets < 1 or branches < 1 or items_per_cabinet < 1:
            raise ValueError("a fleet needs at least one cabinet, branch and item per cabinet")
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.library = library
        self.start = start or (datetime.now(UTC) - timedelta(days=8)).replace(microsecond=0)
        self.branches = [f"{prefix}-B{k}" for k in range(1, min(branches, cabinets) + 1)]
        self.cabinets: list[SimCabinet] = []
        for n in range(1, cabinets + 1):
            cab = SimCabinet(f"{prefix}-C{n:04d}", self.branches[(n - 1) % len(self.branches)],
                             rng=self.rng, boot_at=self.start - timedelta(hours=1))
            cab.stock = _Pool(f"{cab.id}-{k:04d}" for k in range(1, items_per_cabinet + 1))
            self.cabinets.append(cab)
        self.by_id = {c.id: c for c in self.cabinets}
        #: reader ids the server knows (filled by :func:`register`); before that, made-up ids
        self.readers: list[str] = []
        #: books out on loan: item → who has it, lent where and when
        self.loaned: dict[str, _Loan] = {}
        self._out = _Pool()  # the keys of ``loaned``, for a seeded random choice
        self.clock = self.start

    @property
    def total_events(self) -> int:
        return sum(c.last_seq for c in self.cabinets)

    def _reader(self) -> str:
        if not self.readers:
            self.readers = [f"{self.prefix}-R{k:03d}" for k in range(1, 21)]
        return self.rng.choice(self.readers)

    def simulate(self, days: float = 1.0, *, events_per_day: tuple[int, int] = (20, 40),
                 cross_returns: float = 0.1, outage: tuple[float, float] | None = None,
                 outage_cabinets: Iterable[str] | None = None,
                 start: datetime | None = None) -> int:
        """Write ``days`` of activity (from ``start``, default where the last call ended)
        into every cabinet's outbox; returns the number of events written.

        Each cabinet gets about ``events_per_day`` events a day (uniform in the range),
        grouped in visits between 07:00 and 22:00: a ``session`` event, then one or two
        loans (books of its stock, to a random reader, due in 30 days) or returns (books out
        on loan: lent by this cabinet, or with probability ``cross_returns`` by another
        one). About 2% of visits end with an ``alarm`` (door left open). ``outage`` =
        (from_day, to_day) relative to ``start``: the listed cabinets (default: all) mark
        events in that window ``offline``. All cabinets share one time line, so every
        return comes after its loan whatever cabinet made it.
        """
        rng = self.rng
        t0 = start or self.clock
        t_end = t0 + timedelta(days=days)
        if outage is not None:
            window = (t0 + timedelta(days=outage[0]), t0 + timedelta(days=outage[1]))
            chosen = set(outage_cabinets) if outage_cabinets is not None else None
            for cab in self.cabinets:
                if chosen is None or cab.id in chosen:
                    cab.outages.append(window)
        # Each cabinet's visit times; one heap merges them into the fleet's time line.
        lo, hi = events_per_day
        heap: list[tuple[datetime, int, int]] = []
        day = t0.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < t_end:
            open_at = day + timedelta(hours=_OPEN_H)
            span = (_CLOSE_H - _OPEN_H) * 3600
            for idx, _cab in enumerate(self.cabinets):
                target = rng.randint(lo, hi)
                visits = max(1, round(target / 2.3))  # a visit writes ~2.3 events on average
                for _ in range(visits):
                    at = open_at + timedelta(seconds=rng.uniform(0, span))
                    if t0 <= at < t_end:
                        heap.append((at.replace(microsecond=at.microsecond // 1000 * 1000),
                                     rng.getrandbits(30), idx))
            day += timedelta(days=1)
        heapq.heapify(heap)
        written = 0
        while heap:
            at, _, idx = heapq.heappop(heap)
            written += self._visit(self.cabinets[idx], at, cross_returns)
        self.clock = max(self.clock, t_end)
        return written

    def _visit(self, cab: SimCabinet, at: datetime, cross_returns: float) -> int:
        rng = self.rng
        if cab.events and at <= cab.events[-1].at:  # one cabinet's clock only moves forward
            at = cab.events[-1].at + timedelta(seconds=1)
        session = f"s{rng.getrandbits(40):010x}"
        returning = len(self._out) > 0 and (rng.random() < 0.45 or not len(cab.stock))
        n = 1 if rng.random() < 0.7 else 2
        cab.append("session", at, {"session": session,
                                   "kind": "return" if returning else "loan", "outcome": "ok"})
        written = 1
        step = timedelta(seconds=20)
        for k in range(n):
            t = at + step * (k + 1)
            if returning:
                item = self._returnable(cab, t, cross_returns)
                if item is None:
                    break
                loan = self.loaned.pop(item)
                self._out.discard(item)
                self.by_id[loan.cabinet_id].lent.discard(item)
                cab.append("return", t, {"item_id": item, "owner_library": self.library,
                                         "door": 1 + rng.randrange(8), "session": session,
                                         "reader_id": loan.reader_id})
                cab.stock.add(item)
            else:
                if not len(cab.stock):
                    break
                item = cab.stock.choice(rng)
                reader = self._reader()
                cab.stock.discard(item)
                self.loaned[item] = _Loan(reader, cab.id, t)
                self._out.add(item)
                cab.lent.add(item)
                due = (t + timedelta(days=LOAN_DAYS)).date().isoformat()
                cab.append("loan", t, {"item_id": item, "reader_id": reader, "due": due,
                                       "door": 1 + rng.randrange(8), "session": session})
            written += 1
        if rng.random() < ALARM_SHARE:
            cab.append("alarm", at + step * (n + 2), {"reason": "door_left_open",
                                                      "door": 1 + rng.randrange(8),
                                                      "session": session})
            written += 1
        return written

    def _returnable(self, cab: SimCabinet, t: datetime, cross_returns: float) -> str | None:
        """A book out on loan that can come back at ``cab`` at ``t``: one it lent, or (with
        probability ``cross_returns``) anyone's lent at least :data:`CROSS_MARGIN` before."""
        rng = self.rng
        for _ in range(5):
            if len(cab.lent) and rng.random() >= cross_returns:
                item = cab.lent.choice(rng)
            elif len(self._out):
                item = self._out.choice(rng)  # usually another cabinet's book
            else:
                return None
            loan = self.loaned[item]
            if loan.at < t if loan.cabinet_id == cab.id else loan.at + CROSS_MARGIN < t:
                return item
        return None

    def expected_items(self) -> dict[str, tuple[str, str | None, str | None]]:
        """What the server's ``items`` must say after every event is applied: item →
        (status, borrower, cabinet) for every book that was ever lent or returned."""
        touched: dict[str, tuple[str, str | None, str | None]] = {}
        for cab in self.cabinets:
            for ev in cab.events:
                item = ev.payload.get("item_id")
                if item and ev.kind in ("loan", "return"):
                    touched.setdefault(item, ("", None, None))
        for item in touched:
            loan = self.loaned.get(item)
            if loan is not None:
                touched[item] = ("loaned", loan.reader_id, None)
        for cab in self.cabinets:
            for item in cab.stock:
                if item in touched:
                    touched[item] = ("in_cabinet", None, cab.id)
        return touched


# ----------------------------------------------------------------------------- staff API


def id_number(n: int) -> str:
    """A well-formed 18-character resident id number (GB 11643 check digit), a different
    one for every n in 0..10**7 (birth date 1950-01-01 + n // 1000 days, sequence n % 1000)."""
    born = date(1950, 1, 1) + timedelta(days=n // 1000)
    body = f"110101{born:%Y%m%d}{n % 1000:03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def _ok(response: Any, *accept: int) -> Any:
    if response.status_code not in (200, 201, *accept):
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: "
                           f"{response.status_code} {response.text[:300]}")
    return response.json() if response.status_code != 204 else None


def register(client: HttpClient, fleet: Fleet, token: str, *, readers: int = 50,
             library_name: str = "Fleet Library") -> None:
    """Create the fleet's library, branches, cabinets and ``readers`` readers on a server.

    Through the staff API with an operator's ``token`` (POST /api/libraries, /api/branches,
    /api/cabinets) and 秒办证 (POST /api/readers/register); a library or branch that exists
    already (409) is fine. ``fleet.readers`` becomes the ids the server gave the readers.
    """
    auth = {"Authorization": f"Bearer {token}"}
    _ok(client.post("/api/libraries", json={"isil": fleet.library, "name": library_name},
                    headers=auth), 409)
    for k, branch in enumerate(fleet.branches, 1):
        _ok(client.post("/api/branches", json={"id": branch, "name": f"Branch {k}",
                                               "library_isil": fleet.library}, headers=auth), 409)
    for cab in fleet.cabinets:
        _ok(client.post("/api/cabinets", json={
            "id": cab.id, "branch_id": cab.branch_id, "name": cab.id,
            "location": f"simulated, {cab.branch_id}", "public_key": cab.public_key},
            headers=auth))
    ids: list[str] = []
    first = fleet.rng.randrange(10**7 - readers)  # another fleet on the server: other people
    for n in range(readers):
        body = _ok(client.post("/api/readers/register", json={
            "display_name": f"Reader {n}", "id_number": id_number(first + n),
            "phone": f"139{n:08d}"}))
        ids.append(body["reader_id"])
    fleet.readers = ids


# ----------------------------------------------------------------------------- sync


class PushError(RuntimeError):
    """The server refused a batch for good (not a 503 to retry)."""


@dataclass
class PushResult:
    requests: int = 0
    events_sent: int = 0
    retries: int = 0
    applied_through: int = 0
    seconds: float = 0.0
    replies: list[SyncReply] = field(default_factory=list, repr=False)


def push(client: HttpClient, cabinet: SimCabinet, batch_size: int = 500, *,
         from_seq: int | None = None, max_retries: int = 50, backoff_s: float = 0.05,
         keep_replies: bool = False, path: str = SYNC_PATH) -> PushResult:
    """Send ``cabinet``'s outbox from ``from_seq`` (default: what it knows is applied) in
    signed batches of ``batch_size`` until the server's ``applied_through`` is its last seq.

    The next batch starts after the ``applied_through`` of the last reply (or at
    ``gap_from``), as the kiosk's agent does. 503 (database busy) and connection errors are
    retried after ``backoff_s`` (doubling, at most 1 s), up to ``max_retries`` in a row;
    anything else raises :class:`PushError` with the server's answer.
    """
    if not 1 <= batch_size <= 500:
        raise ValueError("batch_size must be 1..500 (SyncBatch allows 500 events)")
    result = PushResult()
    t0 = time.perf_counter()
    cursor = cabinet.acked if from_seq is None else from_seq
    last = cabinet.last_seq
    failures = 0
    offset = timedelta(0)  # learnt from a 401 out_of_window's server_time
    while True:
        events = cabinet.after(cursor, batch_size)
        now = datetime.now(UTC) + offset
        body = cabinet.batch(events, now).model_dump_json().encode()
        try:
            response = client.post(path, content=body, headers=cabinet.signed(path, body, now))
        except Exception as exc:  # httpx.TransportError and kin: the network, retry
            if failures >= max_retries:
                raise PushError(f"{cabinet.id}: {exc}") from exc
            failures += 1
            result.retries += 1
            time.sleep(min(1.0, backoff_s * 2 ** min(failures, 5)))
            continue
        result.requests += 1
        status = response.status_code
        if status == 200:
            failures = 0
            reply = SyncReply.model_validate_json(response.content)
            result.events_sent += len(events)
            cabinet.ack(reply.applied_through, reply)
            result.applied_through = reply.applied_through
            if keep_replies:
                result.replies.append(reply)
            if reply.applied_through >= last:
                break
            # a gap (or a lost prefix): re-send from the first missing seq
            cursor = reply.applied_through if reply.gap_from is not None else max(
                reply.applied_through, cursor + len(events))
            if not events:
                raise PushError(f"{cabinet.id}: the server is at {reply.applied_through} "
                                f"of {last} and nothing is left to send")
            continue
        if status in (401,) and _error(response) == "out_of_window" and failures < max_retries:
            server_time = datetime.fromisoformat(response.json()["server_time"])
            offset = server_time - datetime.now(UTC)
            failures += 1
            result.retries += 1
            continue
        if status == 503 and failures < max_retries:
            failures += 1
            result.retries += 1
            time.sleep(min(1.0, backoff_s * 2 ** min(failures, 5)))
            continue
        raise PushError(f"{cabinet.id}: POST {path} answered {status}: {response.text[:500]}")
    result.seconds = time.perf_counter() - t0
    return result


def _error(response: Any) -> str:
    try:
        return str(response.json().get("error", ""))
    except ValueError:
        return ""


# ----------------------------------------------------------------------------- a real server


def _cli(*args: str, stdin: str | None = None, timeout: float = 120,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lendbox.cli", "server", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def init_db(db_url: str) -> None:
    """``lendbox server init --db URL`` (schema at head, a signing key)."""
    r = _cli("init", "--db", db_url)
    if r.returncode != 0:
        raise RuntimeError(f"lendbox server init failed: {r.stderr or r.stdout}")


def create_admin(db_url: str, username: str, password: str) -> None:
    """``lendbox server create-admin USERNAME --password-stdin --db URL``."""
    r = _cli("create-admin", username, "--db", db_url, "--password-stdin", stdin=password + "\n")
    if r.returncode != 0:
        raise RuntimeError(f"lendbox server create-admin failed: {r.stderr or r.stdout}")


def login(client: HttpClient, username: str, password: str) -> str:
    """An operator's bearer token (POST /api/auth/login)."""
    return str(_ok(client.post("/api/auth/login",
                               json={"username": username, "password": password}))["token"])


class ServerRun(ReadyChild):
    """``lendbox server run --db URL --port 0`` as a child process in its own session.

    :meth:`start` waits for ``server ready http://HOST:PORT`` (the port is chosen by the
    server itself: ``--port 0``); :meth:`stop` sends SIGTERM to that pid, then SIGKILL if it
    has not exited in ``grace_s``. ``stderr`` goes to ``log`` (a path) or is discarded.
    """

    def __init__(self, db_url: str, *, log: Path | None = None, log_level: str = "warning",
                 env: dict[str, str] | None = None) -> None:
        super().__init__(["server", "run", "--db", db_url, "--host", "127.0.0.1", "--port", "0",
                          "--log-level", log_level], "server ready ", log=log, env=env)
        self.db_url = db_url

    def start(self, timeout: float = 60.0) -> ServerRun:
        super().start(timeout)
        return self

    def peak_rss_kib(self) -> int | None:
        """The process's peak resident set (``VmHWM`` of /proc/PID/status), KiB; None if
        unavailable (not Linux, or exited)."""
        if self.proc is None:
            return None
        return _proc_status_kib(self.proc.pid, "VmHWM")

    def rss_kib(self) -> int | None:
        if self.proc is None:
            return None
        return _proc_status_kib(self.proc.pid, "VmRSS")


def _proc_status_kib(pid: int, key: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None
