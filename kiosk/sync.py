"""The cabinet's sync agent: pushes the ledger's outbox to the server, pulls what changed.

Why it is built this way:

- **The ledger is the only truth.** The agent keeps no queue of its own: every round reads
  ``events_after(acked_through)`` and acknowledges what the server says it has applied. A
  crash, a lost reply or a double send therefore costs at most a re-send, and the server
  recognises re-sent events by uuid and by (cabinet, seq) — sending a batch twice is always
  safe.
- **Gaps are the server's to see.** A reply's ``applied_through`` is the highest sequence
  below which the server has everything; ``gap_from`` says where its knowledge breaks off.
  The agent re-sends from there — even below its own ack, should the server have lost data.
- **Offline is normal.** A cabinet lends offline on signed grants; this module only has to
  say quickly and truthfully whether the server is there (``online``) and never make a reader
  wait for a server that just failed (``resolve_reader``).
- **Clock.** The offset between the cabinet clock and the server's is measured on every reply
  (server time minus the midpoint of send and receive) and stored in the ledger's meta
  ``clock_offset_s``, where the ledger uses it to time events. Requests are signed with the
  corrected clock, so a drifted cabinet is not locked out by the signature window.

Nothing logged here identifies a reader: reader ids go through :func:`syncproto.grants.log_id`,
card hashes are not logged at all.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from syncproto import signing
from syncproto.grants import log_id
from syncproto.messages import (
    CabinetEvent,
    CabinetStatus,
    Command,
    CommandResult,
    DenyDelta,
    DoorSnapshot,
    HoldInfo,
    ItemInfo,
    ReaderQuery,
    ReaderReply,
    SignedGrant,
    SyncBatch,
    SyncReply,
)

__all__ = ["BATCH_MAX", "LedgerLike", "ResultSource", "SyncAgent", "SyncOutcome"]

_log = logging.getLogger(__name__)

#: SyncBatch allows at most this many events.
BATCH_MAX = 500
#: After a failed request, resolve_reader answers "offline" at once for this long.
FAST_FAIL_S = 2.0
#: Rounds one sync_once may take beyond what the outbox needs (gaps, re-sends).
_EXTRA_ROUNDS = 8
#: A 401 carrying a server time this far from our corrected clock is retried once with the
#: new offset (the signature window is minutes; this is far below it and above jitter).
_SKEW_RETRY_S = 30.0

_M = TypeVar("_M", bound=BaseModel)


class LedgerLike(Protocol):
    """The part of :class:`kiosk.ledger.Ledger` the agent uses (see docs/kiosk-contracts.md)."""

    def events_after(self, seq: int, limit: int = 500) -> list[CabinetEvent]: ...
    def acked_through(self) -> int: ...
    def ack(self, through: int) -> int: ...
    def last_seq(self) -> int: ...
    def put_grants(self, grants: Iterable[SignedGrant]) -> None: ...
    def apply_deny(self, delta: DenyDelta) -> bool: ...
    def deny_version(self) -> int: ...
    def put_items(self, items: Iterable[ItemInfo], version: int) -> None: ...
    def items_version(self) -> int: ...
    def replace_holds(self, holds: Iterable[HoldInfo]) -> None: ...
    def set_trusted_keys(self, keys: Mapping[str, str]) -> None: ...
    def get_meta(self, key: str, default: Any = None) -> Any: ...
    def set_meta(self, key: str, value: Any) -> None: ...
    def door_snapshots(self) -> list[DoorSnapshot]: ...


class ResultSource(Protocol):
    """Where the agent finds command results to send (:class:`kiosk.commands.ResultStore`):
    each is sent with every batch until a reply to a batch carrying it has come back."""

    def pending(self) -> list[CommandResult]: ...
    def delivered(self, ids: Iterable[int]) -> None: ...


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What one :meth:`SyncAgent.sync_once` did. ``sent`` counts events sent (re-sends
    included); ``applied_through`` is the server's last answer (or the ledger's ack when no
    answer came); ``error`` says why ``ok`` is False."""

    ok: bool
    sent: int
    applied_through: int
    error: str | None = None


class SyncError(Exception):
    """A request that got no usable answer; ``status`` is the HTTP status if there was one.

    ``short`` is what may be logged: the server's detail can echo what was sent (a 422
    quotes the offending input), and that may be a reader id or a card hash."""

    def __init__(self, message: str, status: int | None = None, short: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.short = short or message


class SyncAgent:
    """Pushes the outbox, applies the server's deltas, tracks whether the server is there.

    ``sync_once`` may be called from any thread (rounds are serialised); ``start`` runs it in a
    background thread every ``interval_s`` and at once after ``kick``. ``resolve_reader`` may
    run concurrently with a sync round.
    """

    def __init__(
        self,
        ledger: LedgerLike,
        *,
        cabinet_id: str,
        server_url: str,
        private_key: str,
        timeout_s: float = 2.0,
        interval_s: float = 5.0,
        backoff: tuple[float, float] = (0.5, 60.0),
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
        resolve_timeout_s: float = 0.8,
    ) -> None:
        if interval_s <= 0 or timeout_s <= 0 or resolve_timeout_s <= 0:
            raise ValueError("interval_s, timeout_s and resolve_timeout_s must be positive")
        if not 0 < backoff[0] <= backoff[1]:
            raise ValueError("backoff must be (first delay, cap) with 0 < first <= cap")
        self.ledger = ledger
        self.cabinet_id = cabinet_id
        self.server_url = server_url
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self.backoff = backoff
        self.resolve_timeout_s = min(resolve_timeout_s, timeout_s)
        self._private_key = private_key
        self._clock = clock
        # Durations (freshness, backoff, fast-fail) use the monotonic clock: the wall clock
        # may be stepped by NTP or be the skewed clock under test.
        self._mono = time.monotonic
        self._client = httpx.Client(base_url=server_url, timeout=timeout_s, transport=transport)
        self._sync_lock = threading.Lock()  # one round at a time, whoever calls
        self._state_lock = threading.Lock()
        self._last_ok = False
        self._last_success_mono: float | None = None
        self._last_failure_mono: float | None = None
        self._last_success_at: float | None = None
        self._last_error: str | None = None
        self._failures = 0
        offset = _as_float(ledger.get_meta("clock_offset_s", None))
        self._offset: float | None = offset  # in use for signing
        self._stored_offset = offset  # in the ledger (what event times use)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        # door → the snapshot the server last acknowledged: only changed doors are sent
        # (in memory: after a restart every door is sent once more, which is harmless)
        self._snapshots_sent: dict[int, DoorSnapshot] = {}
        # Remote commands (kiosk/commands.py sets these; None: a plain agent, as before).
        #: the cabinet's status, sent with every batch (the server's fleet overview)
        self.status_provider: Callable[[], CabinetStatus | None] | None = None
        #: receives each reply's commands; must return at once (it runs in the sync round)
        self.command_sink: Callable[[list[Command]], None] | None = None
        self.results: ResultSource | None = None
        self._plain = False  # the server refused the fields above: batches without them

    # ------------------------------------------------------------------ state

    @property
    def online(self) -> bool:
        """The last request succeeded, less than three sync intervals ago."""
        with self._state_lock:
            if not self._last_ok or self._last_success_mono is None:
                return False
            return self._mono() - self._last_success_mono < 3 * self.interval_s

    @property
    def last_error(self) -> str | None:
        """Why the last request failed; None once a request succeeds (status screens show
        it as "the current problem")."""
        with self._state_lock:
            return self._last_error

    @property
    def last_success_at(self) -> float | None:
        """Cabinet clock (uncorrected) of the last successful request."""
        with self._state_lock:
            return self._last_success_at

    @property
    def clock_offset_s(self) -> float | None:
        """Server clock minus cabinet clock, as last measured (None: never measured)."""
        with self._state_lock:
            return self._offset

    @property
    def failures(self) -> int:
        """Consecutive failed requests (0 after a success)."""
        with self._state_lock:
            return self._failures

    def _succeeded(self) -> None:
        with self._state_lock:
            if not self._last_ok and self._last_failure_mono is not None:
                _log.info("sync: server reachable again after %d failed requests", self._failures)
            self._last_ok = True
            self._last_success_mono = self._mono()
            self._last_success_at = self._clock()
            self._last_error = None
            self._failures = 0

    def _failed(self, error: str, short: str) -> None:
        with self._state_lock:
            if self._last_ok or self._last_failure_mono is None:
                _log.warning("sync: server unreachable or refusing (%s)", short)
            self._last_ok = False
            self._last_failure_mono = self._mono()
            self._last_error = error
            self._failures += 1

    # ------------------------------------------------------------------ requests

    def _now(self) -> datetime:
        """The cabinet clock corrected by the measured offset: what signatures carry."""
        with self._state_lock:
            offset = self._offset or 0.0
        return datetime.fromtimestamp(self._clock() + offset, UTC)

    def _post(self, path: str, message: BaseModel, reply_model: type[_M], *,
              timeout: float) -> tuple[_M, float, float]:
        """POST a signed message; returns (reply, sent at, received at) on the cabinet clock.

        Raises SyncError for every way of not getting a valid reply. A 401 that shows our
        clock to be far off the server's is retried once with the offset it reveals.
        """
        body = message.model_dump_json(exclude=_unused_additions(message)).encode("utf-8")
        for attempt in (1, 2):
            request = self._client.build_request("POST", path, content=body, headers={
                "content-type": "application/json"}, timeout=timeout)
            request.headers.update(signing.sign_request(
                "POST", request.url.path, body, cabinet_id=self.cabinet_id,
                private_key=self._private_key, now=self._now()))
            t0 = self._clock()
            try:
                response = self._client.send(request)
            except httpx.HTTPError as exc:  # refused, timed out, reset: the server is not there
                raise SyncError(f"unreachable: {type(exc).__name__}: {exc}".rstrip(": "),
                                short=f"unreachable: {type(exc).__name__}") from exc
            t1 = self._clock()
            if response.status_code == 200:
                try:
                    return reply_model.model_validate_json(response.content), t0, t1
                except ValidationError as exc:
                    raise SyncError(f"bad reply from server: {exc}", 200,
                                    "bad reply from server") from exc
            error, code = _error_text(response)
            if response.status_code == 401 and attempt == 1 and self._learn_offset(response, t0, t1):
                continue
            raise SyncError(f"HTTP {response.status_code}: {error}", response.status_code,
                            f"HTTP {response.status_code} {code}".rstrip())
        raise AssertionError("unreachable")  # pragma: no cover

    def _learn_offset(self, response: httpx.Response, t0: float, t1: float) -> bool:
        """From a refused request's server_time: True if our offset was far off (retry)."""
        try:
            server_time = datetime.fromisoformat(response.json()["server_time"]).timestamp()
        except (ValueError, KeyError, TypeError):
            return False
        measured = server_time - (t0 + t1) / 2
        with self._state_lock:
            current = self._offset or 0.0
            if abs(measured - current) < _SKEW_RETRY_S:
                return False
            self._offset = measured
        _log.warning("sync: cabinet clock off by %.1f s; signing with the server's time", measured)
        return True

    # ------------------------------------------------------------------ sync

    def sync_once(self) -> SyncOutcome:
        """Send the outbox in batches until the server has all of it (or a request fails),
        applying the deltas of every reply. Always at least one request: an empty batch still
        fetches deltas and measures the clock."""
        with self._sync_lock:
            return self._sync_rounds()

    def _sync_rounds(self) -> SyncOutcome:
        ledger = self.ledger
        start = ledger.acked_through()
        applied = start
        sent = 0
        best: tuple[float, float] | None = None  # (round trip, offset) of the fastest reply
        rounds = 0
        max_rounds = max(0, ledger.last_seq() - start) // BATCH_MAX + 1 + _EXTRA_ROUNDS
        previous: tuple[int, int] | None = None
        # Contents are read before the events: a book returned in between then has its event
        # in this batch but not in the snapshot, and the server's report ignores items whose
        # last event is newer than the snapshot — never the other way round.
        snapshots = [s for s in ledger.door_snapshots() if self._snapshots_sent.get(s.door) != s]
        status = self._status()
        results = self.results.pending() if self.results is not None and not self._plain else []
        while True:
            events = ledger.events_after(start, limit=BATCH_MAX)
            if rounds and not events:
                break
            if rounds >= max_rounds:
                return self._finish(best, SyncOutcome(
                    False, sent, applied, f"server keeps a gap at {applied + 1}; giving up this round"))
            batch = SyncBatch(
                cabinet_id=self.cabinet_id, sent_at=self._now(),
                events=events, deny_version=ledger.deny_version(),
                items_version=ledger.items_version(), inventory=snapshots,
                status=status, command_results=results[:100],
            )
            try:
                reply, t0, t1 = self._post("/v1/sync", batch, SyncReply, timeout=self.timeout_s)
            except SyncError as exc:
                if exc.status == 422 and (status is not None or results) and not self._plain:
                    # A server older than the fleet status refuses the unknown fields: keep
                    # syncing without them (until the kiosk restarts) rather than not at all.
                    _log.warning("sync: the server refuses status/command results; "
                                 "sending plain batches")
                    self._plain = True
                    status, results = None, []
                    continue
                self._failed(str(exc), exc.short)
                return self._finish(best, SyncOutcome(False, sent, applied, str(exc)))
            self._succeeded()
            for snap in snapshots:
                self._snapshots_sent[snap.door] = snap
            snapshots = []
            if results and self.results is not None:
                # the server stored them in the transaction that answered: never re-sent
                self.results.delivered(r.id for r in results[:100])
                results = results[100:]
            rounds += 1
            sent += len(events)
            offset = reply.server_time.timestamp() - (t0 + t1) / 2
            if best is None or t1 - t0 <= best[0]:
                best = (t1 - t0, offset)
            applied = reply.applied_through
            self._apply(reply)
            if reply.commands and self.command_sink is not None:
                try:
                    self.command_sink(list(reply.commands))
                except Exception:  # noqa: BLE001 - a command bug must not stop the sync
                    _log.exception("sync: handing over remote commands failed")
            if reply.gap_from is not None:
                # The server lacks gap_from: send again from there, even below our ack.
                start = max(0, reply.gap_from - 1)
            else:
                start = max(start, min(applied, ledger.last_seq()))
            if events and previous == (start, applied):
                # Same start, same answer: the server will not take these events.
                return self._finish(best, SyncOutcome(
                    False, sent, applied, f"server does not apply events after {applied}"))
            previous = (start, applied)
        return self._finish(best, SyncOutcome(True, sent, applied))

    def _status(self) -> CabinetStatus | None:
        """The status to report, or None (no provider, or it failed: the sync goes on)."""
        if self.status_provider is None or self._plain:
            return None
        try:
            return self.status_provider()
        except Exception:  # noqa: BLE001 - a status bug must not stop the sync
            _log.exception("sync: building the cabinet status failed")
            return None

    def _finish(self, best: tuple[float, float] | None, outcome: SyncOutcome) -> SyncOutcome:
        """Record the clock offset of the fastest reply (the best estimate), once a round."""
        if best is not None:
            offset = best[1]
            with self._state_lock:
                self._offset = offset
            # Persist only real changes: each write is an fsync on the cabinet's flash, and
            # event times need no better than a tenth of a second.
            if self._stored_offset is None or abs(self._stored_offset - offset) > 0.1:
                self.ledger.set_meta("clock_offset_s", offset)
                self._stored_offset = offset
        return outcome

    def _apply(self, reply: SyncReply) -> None:
        """Acknowledge and apply one reply's deltas, each through the ledger's own
        transaction (a crash between them only means the next sync sends them again)."""
        ledger = self.ledger
        # Never ack beyond what the ledger holds: a server claiming more (a cabinet whose
        # ledger was replaced) must not make new events look delivered.
        through = min(reply.applied_through, ledger.last_seq())
        if through > ledger.acked_through():
            ledger.ack(through)
        elif reply.applied_through < ledger.acked_through() and reply.gap_from is None:
            _log.warning("sync: server applied through %d, below our ack %d",
                         reply.applied_through, ledger.acked_through())
        if reply.grants:
            ledger.put_grants(list(reply.grants))
        for delta in sorted(reply.deny, key=lambda d: d.to_version):
            if delta.to_version > ledger.deny_version():
                ledger.apply_deny(delta)
        if reply.items or reply.items_version > ledger.items_version():
            ledger.put_items(list(reply.items), max(reply.items_version, ledger.items_version()))
        if reply.holds is not None:
            ledger.replace_holds(list(reply.holds))
        if reply.trusted_keys:
            # An empty map would leave every offline grant and QR unverifiable; a server that
            # means to revoke keys sends the ones that remain.
            ledger.set_trusted_keys(dict(reply.trusted_keys))
        if reply.config is not None:
            ledger.set_meta("server_config", json.dumps(reply.config, sort_keys=True))

    # ------------------------------------------------------------------ readers

    def resolve_reader(self, query: ReaderQuery) -> ReaderReply | None:
        """Ask the server who a credential belongs to; None when it cannot say now.

        A cabinet has to open a door in well under a second offline, so right after a failed
        request (less than 2 s ago) this answers None without trying; later it tries once
        with the short ``resolve_timeout_s``.
        """
        with self._state_lock:
            recent_failure = (not self._last_ok and self._last_failure_mono is not None
                              and self._mono() - self._last_failure_mono < FAST_FAIL_S)
        if recent_failure:
            return None
        try:
            reply, _, _ = self._post("/v1/readers/resolve", query, ReaderReply,
                                     timeout=self.resolve_timeout_s)
        except SyncError as exc:
            self._failed(str(exc), exc.short)
            _log.info("resolve: no answer (%s)", exc.short)
            return None
        self._succeeded()
        who = log_id(reply.reader_id) if reply.reader_id else "-"
        _log.info("resolve: reader %s is %s", who, reply.status)
        return reply

    # reader services (H2)
    def call(self, path: str, message: BaseModel, reply_model: type[_M], *,
             timeout: float | None = None) -> _M:
        """POST one signed request of the reader services (``kiosk.reader_services``) and
        return the validated reply. Raises SyncError: ``status`` None when the server is not
        there (counted as a failure, like a sync), else the server's refusal (its code in
        ``short``)."""
        try:
            reply, _, _ = self._post(path, message, reply_model, timeout=timeout or self.timeout_s)
        except SyncError as exc:
            if exc.status is None:
                self._failed(str(exc), exc.short)
            raise
        self._succeeded()
        return reply
    # end reader services (H2)

    # ------------------------------------------------------------------ background

    def start(self) -> None:
        """Sync in a background thread: now, every ``interval_s``, at once after ``kick()``,
        backing off exponentially (with jitter, capped at ``backoff[1]``) while failing."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, name=f"sync:{self.cabinet_id}",
                                        daemon=True)
        self._thread.start()

    def kick(self) -> None:
        """A transaction committed: sync now (unless backing off after failures — a dead
        server is not retried faster because readers keep borrowing)."""
        self._wake.set()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the background thread and wait for it.

        A round in progress finishes its current request first; against a refused or local
        server that is milliseconds. Only a request hanging on the network can outlast
        ``timeout``; the daemon thread then ends by itself when that request times out.
        """
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            _log.warning("sync: background thread still in a request; it will exit after it")
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # kicks from now on ask for another round after this one
            try:
                outcome = self.sync_once()
            except Exception as exc:  # the ledger failed under us: log, back off, keep going
                _log.exception("sync: round failed")
                self._failed(f"{type(exc).__name__}: {exc}", type(exc).__name__)
                outcome = SyncOutcome(False, 0, 0, str(exc))
            if self._stop.is_set():
                break
            try:
                if outcome.ok:
                    self._wake.wait(self.interval_s)
                else:
                    self._stop.wait(self._backoff_delay(self.failures))
            except Exception:  # noqa: BLE001 - the thread must outlive any bug of its own
                _log.exception("sync: waiting between rounds failed")
                self._stop.wait(self.backoff[1])

    def _backoff_delay(self, failures: int) -> float:
        """Exponential backoff with "equal jitter": cabinets that lost the server together
        must not all come back in the same instant."""
        first, cap = self.backoff
        # the exponent is capped: a cabinet offline for a week fails thousands of times, and
        # 2.0 ** 1100 no longer fits a float (this once killed the sync thread)
        delay = min(cap, first * 2.0 ** min(max(0, failures - 1), 60))
        return random.uniform(delay / 2, delay)

    def close(self) -> None:
        """Stop the thread and close the HTTP client."""
        self.stop()
        self._client.close()

    def __enter__(self) -> SyncAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unused_additions(message: BaseModel) -> set[str] | None:
    """Fields added for the fleet status that are empty here: left out of the body, so a
    server older than them (which refuses unknown keys) still takes the batch."""
    if not isinstance(message, SyncBatch):
        return None
    unused = set()
    if message.status is None:
        unused.add("status")
    if not message.command_results:
        unused.add("command_results")
    return unused or None


def _error_text(response: httpx.Response) -> tuple[str, str]:
    """(the server's error JSON as ``error: detail`` or the start of its body, the bare
    ``error`` code when it gave one)."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase, ""
    if isinstance(data, dict) and "error" in data:
        code = str(data["error"])[:64]
        return f"{code}: {data.get('detail', '')}".rstrip(": "), code
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])[:500], ""
    return str(data)[:200], ""


def _as_float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
