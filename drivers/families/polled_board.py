"""What every polled third-party lock board driver shares (cn485, Kerong CU).

Why a base class: boards of these families have no sequence numbers, no event buffer, no
counters and no identity on an unlock. The rules that make them safe are the same for each,
and must not drift apart between families:

* read-only commands (status reads) may be asked again: the transport re-sends identical
  frames, and when all of those fail the read is asked ``read_retries`` more times (silence)
  or ``noisy_retries`` more times (corrupted replies: the board is there);
* an unlock is sent **once** (``retries=0``): the board answers only after the coil pulse and
  a lost reply cannot be told from a lost request, so a second frame could open the door a
  second time. An unconfirmed unlock raises ``DeviceTimeout`` saying the door may have opened;
  the kiosk re-inventories that door. (hardware-limits.md §3.3, reference README "design
  consequences", Open-Locker: "An unlock is never sent twice on its own".)
* the op_id of an unlock is remembered by the driver (the wire has none), so family-neutral
  code may retry exactly as with our boards — ``unlock(lock, op_id=<the same>)`` — and never
  pulses twice: a confirmed op_id returns its result again, an unconfirmed one raises
  ``DeviceTimeout`` again without sending anything (as the Modbus driver does);
* every state snapshot, whoever asked for it, feeds one ``PolledEvents`` so the kiosk gets the
  event stream of our own boards (with ``inferred`` events where the polls cannot know);
* counters are kept by the driver (the boards keep none): unlocks per lock, BCC/CRC errors and
  re-sends from the transport, uptime since the driver started.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from firmware_protocol.const import PartKind, PartStatus

from ..base import DeviceStatus
from ..board import (
    AntennaHealth,
    BoardCounters,
    BoardInfo,
    DoorState,
    PartCheck,
    UnlockResult,
)
from ..errors import (
    DeviceRejected,
    DeviceTimeout,
    DeviceUnavailable,
    DriverError,
    FrameError,
    LockJammed,
    NotSupported,
)
from ..polling import PolledEvents, PolledEventsMixin
from ..transport import BusTransport, device_status

__all__ = ["PolledLockBoard"]

_log = logging.getLogger(__name__)
_R = TypeVar("_R")


class PolledLockBoard(PolledEventsMixin):
    """Base of a lock board that is polled for door states (see the module docstring).

    Args:
        transport: the bus (shared by every board on it), built with the family's wire.
        address: the board's address on the bus.
        locks: how many locks are wired (the boards cannot tell).
        read_retries, noisy_retries: extra asks of a read-only command after the transport's
            identical re-sends met silence / only corrupted replies.
        sprung_doors: the doors pop open when released. Then an unlock whose reply shows the
            door still closed is reported as ``LockJammed`` (inferred: the protocols cannot
            tell a stuck bolt from a door that did not spring) and the lock reads ``jammed``
            until its door is seen open.
        settle_s: ``PolledEvents.settle_s`` (a door still closed this long after an unlock of
            ours, with no opening seen, gets an inferred open + close).
        clock: monotonic seconds.
    """

    family = "polled"

    def __init__(self, transport: BusTransport, address: int, *, locks: int,
                 read_retries: int = 2, noisy_retries: int = 20, sprung_doors: bool = False,
                 settle_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if locks < 1:
            raise ValueError("a board has at least one lock")
        self.transport = transport
        self.address = address
        self.locks = locks
        self.name = f"{self.family} board {address} on {transport.name}"
        self.read_retries = read_retries
        self.noisy_retries = noisy_retries
        self.sprung_doors = sprung_doors
        self._clock = clock
        self._started = clock()
        self._ops = itertools.count(1)
        self._op_results: dict[int, UnlockResult | DriverError] = {}  # op_id → what happened
        self._lock = threading.Lock()
        self._unlocks = [0] * locks  # confirmed pulses per lock (host-side)
        self.unconfirmed_unlocks = 0  # unlocks sent whose reply never came
        self._jammed: set[int] = set()  # inferred: pulsed, sprung door stayed closed
        self._failure = ""
        self._info: BoardInfo | None = None
        self._last_states: tuple[DoorState, ...] | None = None
        self._events = PolledEvents(self._read_states, clock=clock, settle_s=settle_s)

    # ------------------------------------------------------------ to implement
    def _read_raw(self) -> tuple[DoorState, ...]:
        """Read every lock's state from the board (no event bookkeeping)."""
        raise NotImplementedError

    def _read_states(self) -> tuple[DoorState, ...]:
        """A snapshot with the inferred jam flags applied (what ``PolledEvents`` reads)."""
        snapshot = self._mark(self._read_raw())
        self._last_states = snapshot
        return snapshot

    # ------------------------------------------------------------ plumbing
    def _read(self, message: object, expect: type[_R], timeout_s: float) -> _R:
        """A read-only command with the retry policy of the module docstring."""
        silent_left, noisy_left = self.read_retries, self.noisy_retries
        while True:
            try:
                reply = self.transport.request(self.address, message, timeout_s=timeout_s,
                                               measure_latency=True)
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
                self._failure = ""
                if noisy_left > 0:
                    noisy_left -= 1
                    continue
                raise
            self._failure = ""
            if not isinstance(reply, expect):
                raise FrameError(f"{self.name}: {type(message).__name__} answered with "
                                 f"{type(reply).__name__}")
            return reply

    def _known_unlock(self, lock: int, op_id: int | None) -> UnlockResult | None:
        """The outcome of an earlier unlock with this ``op_id`` (None: a new operation).

        Raises:
            DeviceTimeout: that unlock was never confirmed (it is not sent again).
            LockJammed: that unlock pulsed a sprung door that stayed shut.
        """
        if op_id is None or op_id not in self._op_results:
            return None
        known = self._op_results[op_id]
        if isinstance(known, UnlockResult):
            return known
        if isinstance(known, LockJammed):
            raise LockJammed(str(known), lock=lock)
        raise DeviceTimeout(
            f"{self.name}: unlock op_id {op_id} of lock {lock} was never confirmed; this "
            f"protocol has no unlock identity, so it is not sent again: the door may have "
            f"opened — check the door state")

    def _remember(self, op: int, outcome: UnlockResult | DriverError) -> None:
        self._op_results[op] = outcome
        while len(self._op_results) > 256:
            self._op_results.pop(next(iter(self._op_results)))

    def _send_unlock(self, message: object, lock: int, timeout_s: float,
                     op_id: int | None = None) -> Any:
        """Send an unlock once and return ``(op_id, the board's reply)``; ``op_id`` None
        numbers a new operation (call ``_known_unlock`` first for a given one).

        Raises:
            DeviceUnavailable: the bus is down and nothing was sent (the door did not open).
            DeviceTimeout: the frame was sent but no readable reply came: the door may have
                opened. Never retried here; a later unlock with this op_id is not sent.
        """
        op = op_id if op_id is not None else next(self._ops)
        while op_id is None and op in self._op_results:  # a caller chose this number
            op = next(self._ops)
        try:
            reply = self.transport.request(self.address, message, timeout_s=timeout_s,
                                           retries=0, measure_latency=False)
        except DeviceUnavailable as exc:
            self._failure = str(exc)
            if not self.transport.request_was_sent:
                raise
            self.unconfirmed_unlocks += 1
            error = DeviceTimeout(
                f"{self.name}: unlock of lock {lock} was not confirmed (op_id {op}, port lost "
                f"after sending): the door may have opened; this protocol has no unlock "
                f"identity, so it is never re-sent — check the door state")
            self._remember(op, error)
            raise error from exc
        except (DeviceTimeout, FrameError) as exc:
            self.unconfirmed_unlocks += 1
            error = DeviceTimeout(
                f"{self.name}: unlock of lock {lock} was not confirmed (op_id {op}): the door "
                f"may have opened; this protocol has no unlock identity, so it is never "
                f"re-sent — check the door state")
            self._remember(op, error)
            raise error from exc
        self._failure = ""
        return op, reply

    def _confirmed(self, lock: int, op: int, door_open: bool) -> UnlockResult:
        """Book-keeping after a confirmed pulse; raises LockJammed for a sprung door that
        stayed shut (inferred)."""
        with self._lock:
            self._unlocks[lock - 1] += 1
        if not door_open and self.sprung_doors:
            self._jammed.add(lock)
            jam = LockJammed(f"{self.name}: lock {lock} pulsed but its sprung door stayed "
                             f"closed (inferred jam: stuck bolt or broken coil wiring)", lock=lock)
            self._remember(op, jam)
            raise jam
        self._jammed.discard(lock)
        self._events.note_unlock(lock)
        result = UnlockResult(lock=lock, op_id=op, door_open=door_open)
        self._remember(op, result)
        return result

    def _check_lock(self, lock: int) -> None:
        if not isinstance(lock, int) or not 1 <= lock <= self.locks:
            raise DeviceRejected(f"{self.name}: no lock {lock!r} (1..{self.locks})")

    def _mark(self, states: Sequence[DoorState]) -> tuple[DoorState, ...]:
        """Apply the inferred jam flags (cleared once the door is seen open)."""
        out = []
        for s in states:
            if s.open:
                self._jammed.discard(s.lock)
            if s.lock in self._jammed:
                s = DoorState(lock=s.lock, open=s.open, jammed=True)
            out.append(s)
        return tuple(out)

    # ------------------------------------------------------------ ControllerBoard
    def states(self) -> tuple[DoorState, ...]:
        """Every lock's state now, lock 1 first (the snapshot also feeds the events)."""
        snapshot = self._read_states()
        self._events.observe(snapshot)
        return snapshot

    def counters(self) -> BoardCounters:
        """Counters kept by the driver: the boards keep none. ``crc_errors`` are the bus's
        (a corrupted frame cannot be attributed to a board); ``retransmissions`` the identical
        re-sends of read requests to this board; ``power_cycles`` is unknown (0)."""
        dev = self.transport.device_counters(self.address)
        with self._lock:
            unlocks = tuple(self._unlocks)
        return BoardCounters(uptime_s=int(self._clock() - self._started),
                             frames_ok=dev.frames_received,
                             crc_errors=self.transport.counters.crc_errors,
                             retransmissions=dev.retries, power_cycles=0, unlocks=unlocks)

    def self_test(self) -> tuple[PartCheck, ...]:
        """What a read-only protocol allows: the board answers a status read (BOARD OK, else
        NO_RESPONSE); each lock whose last pulse left its sprung door shut is FAULT; the door
        sensors cannot be tested (reported OK when readable)."""
        try:
            states = self._read_states()
        except DriverError:
            return (PartCheck(part=PartKind.BOARD, index=0, status=PartStatus.NO_RESPONSE),)
        out = [PartCheck(part=PartKind.BOARD, index=0, status=PartStatus.OK)]
        for s in states:
            out.append(PartCheck(part=PartKind.LOCK, index=s.lock,
                                 status=PartStatus.FAULT if s.jammed else PartStatus.OK))
        for s in states:
            out.append(PartCheck(part=PartKind.DOOR_SENSOR, index=s.lock, status=PartStatus.OK))
        return tuple(out)

    def antenna_diag(self, antenna: int) -> AntennaHealth:
        raise NotSupported(f"{self.name}: {self.family} boards have no RFID antennas")

    def status(self) -> DeviceStatus:
        """Unavailable if the bus is down or the board stopped answering; degraded if many
        recent requests needed a retry; ok otherwise."""
        return device_status(self.transport, self.address, self._failure)

    def diagnostics(self) -> dict[str, object]:
        """Everything a technician needs about this board, JSON-ready (no I/O)."""
        bus = self.transport.diagnostics()
        out: dict[str, object] = {
            "family": self.family,
            "board": self.address,
            "bus": self.transport.name,
            **self.status().as_dict(),
            "info": self._info.as_dict() if self._info else None,
            "counters": self.transport.device_counters(self.address).as_dict(),
            "bus_counters": bus["counters"],
            "unlocks": list(self._unlocks),
            "unconfirmed_unlocks": self.unconfirmed_unlocks,
            "inferred_jams": sorted(self._jammed),
            "polls": self._events.polls,
            "limits": self.limits(),
        }
        if "hint" in bus:
            out["hint"] = bus["hint"]
        return out

    def limits(self) -> list[str]:
        """What this family cannot tell (docs/families.md), for diagnostics."""
        return []

    def close(self) -> None:
        """Boards own no port; closing the bus is the transport's."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
