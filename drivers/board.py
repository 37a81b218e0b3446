"""Controller boards: the family-neutral interface and our own protocol's implementation.

Why a Protocol: the kiosk and ``lendbox diag`` talk to "a board that opens locks and reports
doors"; the next issue adds Chinese lock boards behind the same interface, so nothing here
outside ``LendboxBoard`` may assume our wire protocol. The vocabulary (event kinds, part
kinds and statuses) is the one of ``firmware_protocol.const``, which other families map to.

``LendboxBoard`` adds to the transport's frame-level rules (identical re-sends) the
operation-level ones: read-only commands may be asked again with a new SEQ when every
re-send failed; an unlock never is — a lost unlock reply raises ``DeviceTimeout`` saying the
door may have opened, and the caller may retry only with the same ``op_id``.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from firmware_protocol import messages as m
from firmware_protocol.const import (
    MAX_TAGS_PER_PAGE,
    MAX_EVENTS_PER_REPLY,
    Capability,
    DoorFlags,
    ErrorCode,
    EventType,
    PartKind,
    PartStatus,
    Timing,
    UnlockOutcome,
)

from .base import DeviceStatus
from .cursor import CursorStore, MemoryCursorStore
from .errors import (
    DeviceRejected,
    DeviceTimeout,
    DeviceUnavailable,
    DriverError,
    FrameError,
    LockJammed,
    TagNotFound,
    TagWriteFailed,
)
from .transport import BusTransport, device_status

__all__ = [
    "AntennaHealth",
    "BoardCounters",
    "BoardInfo",
    "ControllerBoard",
    "DoorEvent",
    "DoorState",
    "EventBatch",
    "EventType",
    "LendboxBoard",
    "PartCheck",
    "PartKind",
    "PartStatus",
    "UnlockResult",
]

_log = logging.getLogger(__name__)
_R = TypeVar("_R", bound=m.Reply)

DEFAULT_PULSE_MS = 400


# ---------------------------------------------------------------- neutral data


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardInfo:
    """Who a board is: what IDENTIFY (or a family's equivalent) tells."""

    family: str
    address: int
    serial: str
    firmware: str
    protocol: str
    locks: int
    sensors: int
    antennas: int
    capabilities: frozenset[str]

    def as_dict(self) -> dict[str, object]:
        return {"family": self.family, "address": self.address, "serial": self.serial,
                "firmware": self.firmware, "protocol": self.protocol, "locks": self.locks,
                "sensors": self.sensors, "antennas": self.antennas,
                "capabilities": sorted(self.capabilities)}


@dataclass(frozen=True, slots=True, kw_only=True)
class DoorState:
    """What a board senses of one lock/door (``lock`` is 1-based)."""

    lock: int
    open: bool
    lock_released: bool = False
    jammed: bool = False
    forced: bool = False
    held_open: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class UnlockResult:
    """A confirmed pulse. ``door_open``: the door sensor right after the pulse."""

    lock: int
    op_id: int
    door_open: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DoorEvent:
    """One board event; ``(board, seq)`` is its identity. ``lock`` 0 = the whole board."""

    seq: int
    kind: EventType
    lock: int
    uptime_ms: int
    # True when a polled board's driver concluded the event must have happened between two
    # polls without seeing it (a door seen closed twice with an unlock between).
    inferred: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class EventBatch:
    """Events read from one cursor on. ``lost``: events overwritten before they were read
    (ring overflow). ``next_cursor``: acknowledge this once the events are processed."""

    events: tuple[DoorEvent, ...]
    lost: int
    next_cursor: int
    more: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardCounters:
    uptime_s: int
    frames_ok: int
    crc_errors: int
    retransmissions: int
    power_cycles: int
    unlocks: tuple[int, ...]  # unlocks[i]: pulses given to lock i + 1


@dataclass(frozen=True, slots=True, kw_only=True)
class PartCheck:
    """One part's self-test result; ``index`` is 1-based, 0 for board-wide parts."""

    part: PartKind
    index: int
    status: PartStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class AntennaHealth:
    antenna: int
    reflected_permille: int  # well tuned < 100
    noise_floor_dbm: int


# ---------------------------------------------------------------- the interface


@runtime_checkable
class ControllerBoard(Protocol):
    """A lock/door controller. Every method may raise ``DriverError`` subclasses only."""

    name: str

    def identify(self) -> BoardInfo: ...

    def unlock(self, lock: int, *, pulse_ms: int | None = None,
               op_id: int | None = None) -> UnlockResult: ...

    def states(self) -> tuple[DoorState, ...]: ...

    def read_events(self, max_events: int = MAX_EVENTS_PER_REPLY) -> EventBatch: ...

    def ack_events(self, cursor: int) -> None: ...

    def poll_events(self) -> EventBatch: ...

    def peek_events(self) -> EventBatch: ...

    def events(self, *, poll_interval_s: float = 0.2,
               stop: threading.Event | None = None) -> Iterator[DoorEvent]: ...

    def counters(self) -> BoardCounters: ...

    def self_test(self) -> tuple[PartCheck, ...]: ...

    def antenna_diag(self, antenna: int) -> AntennaHealth: ...

    def status(self) -> DeviceStatus: ...

    def diagnostics(self) -> dict[str, object]: ...


# ---------------------------------------------------------------- our protocol


class LendboxBoard:
    """A board speaking the lendbox protocol (SPEC.md) at ``address`` on ``transport``.

    Args:
        transport: the bus's transport (shared by every board on that bus).
        address: the board's address 1..247.
        cursor_store: where the event cursor lives; default in memory.
        cursor_key: the board's key in the store; default ``"<bus>/<address>"``.
        read_retries: how many times a read-only command is asked again (new SEQ) after the
            transport's identical re-sends all met silence. Never applies to UNLOCK.
        noisy_retries: the same when corrupted replies came back (the board is alive).
        pulse_ms: default unlock pulse.

    The constructor does no I/O.
    """

    family = "lendbox"

    def __init__(
        self,
        transport: BusTransport,
        address: int,
        *,
        cursor_store: CursorStore | None = None,
        cursor_key: str | None = None,
        read_retries: int = 2,
        noisy_retries: int = 40,
        pulse_ms: int = DEFAULT_PULSE_MS,
    ) -> None:
        self.transport = transport
        self.address = address
        self.name = f"board {address} on {transport.name}"
        self._store: CursorStore = cursor_store if cursor_store is not None else MemoryCursorStore()
        self.cursor_key = cursor_key or f"{transport.name}/{address}"
        self.read_retries = read_retries
        self.noisy_retries = noisy_retries
        self.pulse_ms = pulse_ms
        self._op_id = secrets.randbelow(0x10000)  # a restarted host must not hit the op cache
        self._info: BoardInfo | None = None
        self._failure = ""  # why the last call failed to get any answer ("" = it answered)
        self._events_lost = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------ plumbing

    def _call(self, message: m.Request, expect: type[_R], timeout_ms: float, *,
              idempotent: bool = True) -> _R:
        """One command with the operation-level retry policy.

        Read-only commands are asked again (new SEQ) when the transport's identical re-sends
        all failed: up to ``read_retries`` times when the board stayed silent (it may be
        gone: give up soon), up to ``noisy_retries`` times when replies came but were
        corrupted (the board is there; a long reply on a noisy line needs luck).
        """
        silent_left = self.read_retries if idempotent else 0
        noisy_left = self.noisy_retries if idempotent else 0
        timeout_s = timeout_ms / 1000
        while True:
            try:
                reply = self.transport.request(self.address, message, timeout_s=timeout_s)
            except DeviceUnavailable as exc:
                self._failure = str(exc)
                raise
            except DeviceTimeout as exc:
                self._failure = str(exc)
                if silent_left > 0:
                    silent_left -= 1
                    continue
                raise
            except FrameError:
                self._failure = ""  # it answers, badly: degraded, not unavailable
                if noisy_left > 0:
                    noisy_left -= 1
                    continue
                raise
            self._failure = ""
            if isinstance(reply, m.Nak):
                raise _rejected(self.name, message, reply)
            if not isinstance(reply, expect):
                raise FrameError(f"{self.name}: {type(message).__name__} answered with "
                                 f"{type(reply).__name__}")
            return reply

    def _next_op_id(self) -> int:
        with self._lock:
            self._op_id = (self._op_id + 1) & 0xFFFF
            return self._op_id

    # ------------------------------------------------------------ commands

    def identify(self) -> BoardInfo:
        """Ask the board who it is (also cached for ``diagnostics``)."""
        r = self._call(m.Identify(), m.IdentifyReply, Timing.RESPONSE_TIMEOUT_MS)
        caps = frozenset(c.name.lower() for c in Capability if c and c in r.capabilities
                         and c.name is not None)
        self._info = BoardInfo(
            family=self.family, address=self.address, serial=r.serial, firmware=r.firmware,
            protocol="{}.{}".format(*r.protocol_version), locks=r.locks, sensors=r.sensors,
            antennas=r.antennas, capabilities=caps)
        return self._info

    def unlock(self, lock: int, *, pulse_ms: int | None = None,
               op_id: int | None = None) -> UnlockResult:
        """Pulse ``lock`` once.

        Args:
            lock: 1-based lock number.
            pulse_ms: coil pulse; default the board's ``pulse_ms``.
            op_id: the operation's identity. Leave None for a new operation; pass the op_id
                of an unconfirmed unlock to ask again safely (the board answers a known op_id
                from its cache and never pulses twice).

        Raises:
            LockJammed: the pulse was given but the bolt did not move.
            DeviceTimeout: no confirmation — **the door may have opened**; retry only with the
                same op_id (in the message).
            DeviceRejected: e.g. no such lock.
            DeviceUnavailable: the bus is down (nothing was sent).
        """
        pulse = self.pulse_ms if pulse_ms is None else pulse_ms
        op = self._next_op_id() if op_id is None else op_id
        try:
            r = self._call(m.Unlock(lock=lock, pulse_ms=pulse, op_id=op), m.UnlockReply,
                           pulse + Timing.UNLOCK_MARGIN_MS, idempotent=False)
        except DeviceUnavailable as exc:
            if not self.transport.request_was_sent:
                raise  # nothing reached the board: the door did not open
            raise DeviceTimeout(
                f"{self.name}: unlock of lock {lock} was not confirmed (op_id {op}, port lost "
                f"after sending): the door may have opened; check the door state, and retry "
                f"only with op_id={op}") from exc
        except (DeviceTimeout, FrameError) as exc:
            raise DeviceTimeout(
                f"{self.name}: unlock of lock {lock} was not confirmed (op_id {op}): the door "
                f"may have opened; check the door state, and retry only with op_id={op}"
            ) from exc
        if r.lock != lock or r.op_id != op:
            raise FrameError(f"{self.name}: unlock reply for lock {r.lock} op_id {r.op_id}, "
                             f"expected lock {lock} op_id {op}")
        if r.outcome is UnlockOutcome.JAMMED:
            raise LockJammed(f"{self.name}: lock {lock} pulsed but jammed", lock=lock)
        return UnlockResult(lock=lock, op_id=op, door_open=r.door_open)

    def states(self) -> tuple[DoorState, ...]:
        """Every lock's sensed state, lock 1 first."""
        r = self._call(m.GetStates(), m.StatesReply, Timing.RESPONSE_TIMEOUT_MS)
        return tuple(
            DoorState(lock=i + 1, open=bool(f & DoorFlags.DOOR_OPEN),
                      lock_released=bool(f & DoorFlags.LOCK_RELEASED),
                      jammed=bool(f & DoorFlags.JAMMED), forced=bool(f & DoorFlags.FORCED),
                      held_open=bool(f & DoorFlags.HELD_OPEN))
            for i, f in enumerate(r.doors))

    def counters(self) -> BoardCounters:
        r = self._call(m.GetCounters(), m.CountersReply, Timing.RESPONSE_TIMEOUT_MS)
        return BoardCounters(uptime_s=r.uptime_s, frames_ok=r.frames_ok, crc_errors=r.crc_errors,
                             retransmissions=r.retransmissions, power_cycles=r.power_cycles,
                             unlocks=r.unlocks)

    def self_test(self) -> tuple[PartCheck, ...]:
        r = self._call(m.SelfTest(), m.SelfTestReply, Timing.SELF_TEST_TIMEOUT_MS)
        return tuple(PartCheck(part=p.part, index=p.index, status=p.status) for p in r.results)

    def measure_latency(self, timeout_ms: float = 1000) -> float:
        """One GET_STATES with a long timeout and no re-send: how late the board's reply
        comes, beyond the wire time of both frames, in seconds.

        Why a long timeout: with the normal 50 ms a reply later than that is indistinguishable
        from a lost one; here it is measured. (Normal requests feed the same counters,
        ``LinkCounters.latency_mean_s``.) Raises ``DriverError`` when no readable reply came.
        """
        self.transport.request(self.address, m.GetStates(), timeout_s=timeout_ms / 1000,
                               retries=0, measure_latency=True)
        late = self.transport.device_counters(self.address).last_latency_s
        assert late is not None
        return late

    def antenna_diag(self, antenna: int) -> AntennaHealth:
        r = self._call(m.AntennaDiag(antenna=antenna), m.AntennaDiagReply,
                       Timing.TAG_COMMAND_TIMEOUT_MS)
        return AntennaHealth(antenna=r.antenna, reflected_permille=r.reflected_permille,
                             noise_floor_dbm=r.noise_floor_dbm)

    # ------------------------------------------------------------ RFID (used by rfid.py)

    def inventory_page(self, antenna: int, page: int,
                       page_size: int = MAX_TAGS_PER_PAGE) -> m.InventoryReply:
        """One page of an inventory; page 0 runs a new round (SPEC §6)."""
        timeout = Timing.INVENTORY_TIMEOUT_MS if page == 0 else Timing.RESPONSE_TIMEOUT_MS
        return self._call(m.Inventory(antenna=antenna, page=page, page_size=page_size),
                          m.InventoryReply, timeout)

    def read_blocks(self, antenna: int, uid: bytes, first_block: int,
                    count: int) -> m.ReadBlocksReply:
        return self._call(m.ReadBlocks(antenna=antenna, uid=uid, first_block=first_block,
                                       count=count), m.ReadBlocksReply,
                          Timing.TAG_COMMAND_TIMEOUT_MS)

    def write_afi(self, antenna: int, uid: bytes, afi: int) -> None:
        self._call(m.WriteAfi(antenna=antenna, uid=uid, afi=afi), m.Ack,
                   Timing.TAG_COMMAND_TIMEOUT_MS)

    def set_eas(self, antenna: int, uid: bytes, enabled: bool) -> None:
        self._call(m.SetEas(antenna=antenna, uid=uid, enabled=enabled), m.Ack,
                   Timing.TAG_COMMAND_TIMEOUT_MS)

    # ------------------------------------------------------------ events

    def read_events(self, max_events: int = MAX_EVENTS_PER_REPLY) -> EventBatch:
        """Read (without acknowledging) up to ``max_events`` events from the stored cursor.

        The board frees events only below the cursor we send, and we send the stored one,
        so a reply that is lost, or a host that crashes before ``ack_events``, loses nothing.
        """
        stored = self._store.load(self.cursor_key)
        cursor = 0 if stored is None else stored
        r = self._call(m.ReadEvents(cursor=cursor, max_events=max_events), m.EventsReply,
                       Timing.RESPONSE_TIMEOUT_MS)
        if stored is not None and cursor > r.next_seq:
            # The board's sequence went backwards: a replaced or factory-reset board.
            _log.warning("%s: event cursor %d is past the board's next seq %d; "
                         "reading from its oldest event", self.name, cursor, r.next_seq)
            self._store.save(self.cursor_key, 0)
            return self.read_events(max_events)
        lost = r.oldest_seq - cursor if stored is not None and r.oldest_seq > cursor else 0
        if lost:
            self._events_lost += lost
            _log.warning("%s: %d events were overwritten before being read", self.name, lost)
        events = tuple(DoorEvent(seq=e.seq, kind=e.kind, lock=e.lock, uptime_ms=e.uptime_ms)
                       for e in r.events if e.seq >= cursor)
        next_cursor = events[-1].seq + 1 if events else max(cursor, r.oldest_seq)
        return EventBatch(events=events, lost=lost, next_cursor=next_cursor,
                          more=next_cursor < r.next_seq)

    def ack_events(self, cursor: int) -> None:
        """Record that every event below ``cursor`` was processed (the board frees them on
        the next read)."""
        self._store.save(self.cursor_key, cursor)

    def poll_events(self) -> EventBatch:
        """Read and acknowledge everything pending, page after page (at-most-once for a
        consumer that crashes mid-way; use ``read_events``/``ack_events`` or ``events()``
        for at-least-once)."""
        events: list[DoorEvent] = []
        lost = 0
        batch = EventBatch(events=(), lost=0, next_cursor=0, more=True)
        for _ in range(2 + 256 // MAX_EVENTS_PER_REPLY):
            batch = self.read_events()
            events.extend(batch.events)
            lost += batch.lost
            self.ack_events(batch.next_cursor)
            if not batch.more:
                break
        return EventBatch(events=tuple(events), lost=lost, next_cursor=batch.next_cursor,
                          more=batch.more)

    def peek_events(self) -> EventBatch:
        """Events the board still holds, read without acknowledging anything new (for
        diagnostics, so a technician's look never steals events from the kiosk). One page."""
        stored = self._store.load(self.cursor_key)
        cursor = 0 if stored is None else stored
        r = self._call(m.ReadEvents(cursor=cursor), m.EventsReply, Timing.RESPONSE_TIMEOUT_MS)
        events = tuple(DoorEvent(seq=e.seq, kind=e.kind, lock=e.lock, uptime_ms=e.uptime_ms)
                       for e in r.events)
        next_cursor = events[-1].seq + 1 if events else r.oldest_seq
        return EventBatch(events=events, lost=0, next_cursor=next_cursor,
                          more=next_cursor < r.next_seq)

    def events(self, *, poll_interval_s: float = 0.2,
               stop: threading.Event | None = None) -> Iterator[DoorEvent]:
        """Every event, once, in order, forever (until ``stop`` is set).

        A batch is acknowledged only when the consumer asks for the event after its last
        one, so an event is never acknowledged before it was processed. Device errors are
        logged and retried after ``poll_interval_s``; ``status()`` shows them meanwhile.
        """
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                batch = self.read_events()
            except DriverError as exc:
                _log.warning("%s: event poll failed: %s", self.name, exc)
                stop.wait(poll_interval_s)
                continue
            yield from batch.events
            if batch.events or batch.lost:
                self.ack_events(batch.next_cursor)
            if not batch.more:
                stop.wait(poll_interval_s)

    # ------------------------------------------------------------ health

    def status(self) -> DeviceStatus:
        """Unavailable if the bus is down or the board stopped answering; degraded if many
        recent requests needed a retry; ok otherwise."""
        return device_status(self.transport, self.address, self._failure)

    def diagnostics(self) -> dict[str, object]:
        """Everything a technician needs about this board, JSON-ready (no I/O)."""
        bus = self.transport.diagnostics()
        out: dict[str, object] = {
            "board": self.address,
            "bus": self.transport.name,
            **self.status().as_dict(),
            "info": self._info.as_dict() if self._info else None,
            "counters": self.transport.device_counters(self.address).as_dict(),
            "bus_counters": bus["counters"],
            "events_lost": self._events_lost,
            "event_cursor": self._store.load(self.cursor_key),
        }
        if "hint" in bus:
            out["hint"] = bus["hint"]
        return out

    def close(self) -> None:
        """Boards own no port; closing the bus is the transport's (``Hardware.close``)."""

    def __repr__(self) -> str:
        return f"<LendboxBoard {self.name}>"


def _rejected(name: str, message: m.Request, nak: m.Nak) -> DriverError:
    what = f"{name}: {type(message).__name__} refused: {nak.error.name}"
    if nak.error is ErrorCode.TAG_NOT_FOUND:
        return TagNotFound(what)
    if nak.error is ErrorCode.TAG_WRITE_FAILED:
        return TagWriteFailed(what)
    return DeviceRejected(what, code=int(nak.error))
