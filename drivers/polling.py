"""Door events for lock boards that keep none: snapshots in, the events our boards report out.

Why: the common Chinese RS-485 boards, Kerong CU units and Modbus I/O modules only answer
"what is each door's state now?". The kiosk wants the same event stream as from our own
boards (`drivers.board.ControllerBoard.read_events` / `ack_events` / `events`), so a family
driver hands every state snapshot it reads to a :class:`PolledEvents`, which

- turns each change of a door's sensed state into DOOR_OPENED / DOOR_CLOSED, and a jam flag
  into LOCK_JAMMED; the first snapshot only sets the baseline;
- records the driver's own unlocks (UNLOCKED), and when a door is seen closed at two polls
  with one of our unlocks between them (the later poll at least ``settle_s`` after the
  unlock), reports DOOR_OPENED + DOOR_CLOSED with ``inferred=True``: the door may have
  opened and shut faster than the poll rate, or never opened at all — the kiosk
  re-inventories the door either way; an opening with no unlock of ours in the last
  ``forced_window_s`` adds DOOR_FORCED (``inferred=True``);
- keeps the events in a bounded queue with host-side sequence numbers, read from a cursor
  and acknowledged, with the same meaning as a board's event ring.

What it cannot do, and the kiosk must know: events that happen while the host is not
polling (host down, bus down) collapse into one state change; a forced door looks like a
normal opening when an unlock preceded it;
the queue lives in RAM, so a restarted host starts from a fresh baseline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from firmware_protocol.const import EventType

from .board import DoorEvent, DoorState, EventBatch
from .errors import DriverError

__all__ = ["PolledEvents", "PolledEventsMixin"]

_log = logging.getLogger(__name__)

DEFAULT_QUEUE = 1024


class PolledEvents:
    """A host-side event ring fed by door snapshots.

    Args:
        read_states: reads every door's state from the board now (raises DriverError).
        clock: monotonic seconds (event times are ms since this object was made).
        max_queue: unacknowledged events kept; older ones are dropped and counted as lost.
        settle_s: how long after an unlock a door still seen closed counts as a missed
            open/close (a sprung door pops open within a pulse).
        forced_window_s: an opening this long after our last unlock of that door, with no
            unlock since, is reported as forced.
    """

    def __init__(self, read_states: Callable[[], Sequence[DoorState]], *,
                 clock: Callable[[], float] = time.monotonic,
                 max_queue: int = DEFAULT_QUEUE, settle_s: float = 1.0,
                 forced_window_s: float = 30.0) -> None:
        self._read_states = read_states
        self._clock = clock
        self._t0 = clock()
        self._lock = threading.RLock()
        self._queue: deque[DoorEvent] = deque()
        self._max_queue = max_queue
        self._next_seq = 0
        self._cursor = 0
        self._lost = 0
        self._last: dict[int, DoorState] | None = None
        self._unlocks: dict[int, float] = {}  # lock → when we last pulsed it
        self._pending: set[int] = set()  # unlocked, not yet seen to move
        self.settle_s = settle_s
        self.forced_window_s = forced_window_s
        self.polls = 0

    # ------------------------------------------------------------ feeding

    def _emit(self, kind: EventType, lock: int, *, inferred: bool = False) -> None:
        event = DoorEvent(seq=self._next_seq, kind=kind, lock=lock,
                          uptime_ms=int((self._clock() - self._t0) * 1000) & 0xFFFFFFFF,
                          inferred=inferred)
        self._next_seq += 1
        self._queue.append(event)
        while len(self._queue) > self._max_queue:
            self._queue.popleft()
            self._lost += 1

    def note_unlock(self, lock: int) -> None:
        """The driver pulsed ``lock`` (call after the board confirmed it)."""
        with self._lock:
            self._emit(EventType.UNLOCKED, lock)
            self._unlocks[lock] = self._clock()
            self._pending.add(lock)

    def observe(self, states: Sequence[DoorState]) -> None:
        """Compare a fresh snapshot with the previous one and queue what changed."""
        with self._lock:
            self.polls += 1
            t = self._clock()
            now = {s.lock: s for s in states}
            before = self._last
            self._last = now
            if before is None:
                # No earlier snapshot: a door we unlocked and now see open most likely
                # opened from our pulse (it is not known that it was closed before).
                for lock in sorted(self._pending):
                    if lock in now and now[lock].open:
                        self._emit(EventType.DOOR_OPENED, lock, inferred=True)
                self._pending.clear()
                return
            for lock, state in sorted(now.items()):
                old = before.get(lock)
                if old is None:
                    continue
                if state.jammed and not old.jammed:
                    self._emit(EventType.LOCK_JAMMED, lock)
                if state.open != old.open:
                    self._pending.discard(lock)
                    if state.open:
                        self._emit(EventType.DOOR_OPENED, lock)
                        if not self._recently_unlocked(lock, t) and not old.lock_released:
                            self._emit(EventType.DOOR_FORCED, lock, inferred=True)
                    else:
                        self._emit(EventType.DOOR_CLOSED, lock)
                elif (lock in self._pending and not state.open
                      and t - self._unlocks[lock] >= self.settle_s):
                    # closed at two polls with our unlock between, and long enough after
                    # it that a sprung door would have shown open: a missed transition
                    self._pending.discard(lock)
                    self._emit(EventType.DOOR_OPENED, lock, inferred=True)
                    self._emit(EventType.DOOR_CLOSED, lock, inferred=True)

    def _recently_unlocked(self, lock: int, t: float) -> bool:
        at = self._unlocks.get(lock)
        return at is not None and t - at <= self.forced_window_s

    def poll(self) -> None:
        """Read the board's states now and queue the changes."""
        self.observe(self._read_states())

    # ------------------------------------------------------------ the ControllerBoard side

    def read_events(self, max_events: int = 24) -> EventBatch:
        """Poll, then return up to ``max_events`` unacknowledged events (not acknowledging)."""
        self.poll()
        return self._batch(max_events)

    def _batch(self, max_events: int) -> EventBatch:
        with self._lock:
            pending = [e for e in self._queue if e.seq >= self._cursor]
            events = tuple(pending[:max_events])
            lost, self._lost = self._lost, 0
            next_cursor = events[-1].seq + 1 if events else self._cursor
            return EventBatch(events=events, lost=lost, next_cursor=next_cursor,
                              more=len(pending) > len(events))

    def ack_events(self, cursor: int) -> None:
        """Every event below ``cursor`` was processed: forget it."""
        with self._lock:
            self._cursor = max(self._cursor, cursor)
            while self._queue and self._queue[0].seq < self._cursor:
                self._queue.popleft()

    def poll_events(self) -> EventBatch:
        """Poll, read and acknowledge everything pending."""
        self.poll()
        batch = self._batch(len(self._queue) or 1)
        self.ack_events(batch.next_cursor)
        return batch

    def peek_events(self) -> EventBatch:
        """What is queued, without polling or acknowledging (for diagnostics)."""
        with self._lock:
            events = tuple(e for e in self._queue if e.seq >= self._cursor)
            return EventBatch(events=events, lost=0,
                              next_cursor=events[-1].seq + 1 if events else self._cursor,
                              more=False)

    def events(self, *, poll_interval_s: float = 0.2,
               stop: threading.Event | None = None,
               on_error: Callable[[DriverError], None] | None = None) -> Iterator[DoorEvent]:
        """Every event once, in order, polling every ``poll_interval_s`` until ``stop``."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                batch = self.read_events()
            except DriverError as exc:
                if on_error is not None:
                    on_error(exc)
                stop.wait(poll_interval_s)
                continue
            yield from batch.events
            if batch.events or batch.lost:
                self.ack_events(batch.next_cursor)
            if not batch.more:
                stop.wait(poll_interval_s)


class PolledEventsMixin:
    """The event half of ``ControllerBoard`` for a polled board driver: it delegates to
    ``self._events`` (a :class:`PolledEvents`) and logs poll failures under ``self.name``."""

    _events: PolledEvents
    name: str

    def read_events(self, max_events: int = 24) -> EventBatch:
        """Poll the board and return unacknowledged events."""
        return self._events.read_events(max_events)

    def ack_events(self, cursor: int) -> None:
        self._events.ack_events(cursor)

    def poll_events(self) -> EventBatch:
        return self._events.poll_events()

    def peek_events(self) -> EventBatch:
        return self._events.peek_events()

    def events(self, *, poll_interval_s: float = 0.2,
               stop: threading.Event | None = None) -> Iterator[DoorEvent]:
        def log(exc: DriverError) -> None:
            _log.warning("%s: event poll failed: %s", self.name, exc)

        return self._events.events(poll_interval_s=poll_interval_s, stop=stop, on_error=log)
