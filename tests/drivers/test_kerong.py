"""Kerong CU driver against its emulator over real sockets (BusServer) and the real model."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from drivers.board import ControllerBoard
from drivers.errors import DeviceTimeout, LockJammed, NotSupported
from drivers.families.kerong import KerongBoard, kerong_transport
from firmware_protocol.const import EventType, PartKind, PartStatus
from simulator.families.kerong import KerongDeviceWire, KerongUnit
from tests.lockboard_helpers import Served, cabinet, observed_transitions, run_scenario, serve

LOCKS = 16


def _unit(b, m):  # type: ignore[no-untyped-def]
    return KerongUnit(b, m, pulse_s=0.3)


def _board(served: Served, unit: int = 1, **kwargs: object) -> KerongBoard:
    transport = kerong_transport(served.url, backoff_s=(0.05, 0.2))
    kwargs.setdefault("pulse_ms", 300)
    return KerongBoard(transport, unit, locks=LOCKS, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def served() -> Iterator[Served]:
    with serve(cabinet(locks=LOCKS, baudrate=19200), _unit, KerongDeviceWire()) as s:
        yield s


def test_implements_controller_board(served: Served) -> None:
    board = _board(served)
    assert isinstance(board, ControllerBoard)
    info = board.identify()
    assert (info.family, info.address, info.locks) == ("kerong", 1, LOCKS)
    with pytest.raises(NotSupported):
        board.antenna_diag(1)
    board.transport.close()


def test_unlock_states_items_events(served: Served) -> None:
    board = _board(served)
    board.states()
    assert board.unlock(7).door_open
    assert board.states()[6].open
    with served.lock:
        item = next(iter(served.model.items), None)
        door = served.model.doors[served.door(1, 7)]
        door.items.append("ITEM-X")  # a book put in: the IR sensor sees something
        served.model.close_door(served.door(1, 7))
    present = board.items_present()
    assert present[6] and sum(present) == 1 and item is None
    kinds = [(e.kind, e.lock) for e in board.poll_events().events]
    assert kinds == [(EventType.UNLOCKED, 7), (EventType.DOOR_OPENED, 7),
                     (EventType.DOOR_CLOSED, 7)]
    assert served.devices[0].pulses[6] == 1 and board.counters().unlocks[6] == 1
    board.transport.close()


def test_pulse_time_is_set_with_0x37(served: Served) -> None:
    board = _board(served)
    board.unlock(1, pulse_ms=200)
    assert served.devices[0].pulse_s == pytest.approx(0.2) and board.pulse_ms == 200
    board.transport.close()


def test_faulty_line_exact_states_no_missed_transitions_no_double_pulses() -> None:
    """1% of bytes corrupted, 5% of frames dropped, both directions."""
    with serve(cabinet(locks=LOCKS, baudrate=19200), _unit, KerongDeviceWire(),
               garble_rate=0.01, drop_rate=0.05, seed=9) as served:
        board = _board(served)
        result = run_scenario(served, board, served.devices[0], 1, LOCKS, steps=35, seed=3)
        board.transport.close()
    assert result.final_driver == result.final_model
    assert observed_transitions(result.events) == result.transitions
    assert len(result.transitions) > 15
    assert all(d == 1 for outcome, d in result.pulse_deltas if outcome == "confirmed")
    assert all(d in (0, 1) for _, d in result.pulse_deltas)
    pulses = served.devices[0].pulse_count
    assert result.confirmed <= pulses <= result.confirmed + result.unconfirmed
    assert served.stats.bytes_garbled > 0


def test_late_reply_unlock_is_never_resent(served: Served) -> None:
    board = _board(served)
    served.faults.configure(delay_ms=1400)
    with pytest.raises(DeviceTimeout, match="may have opened"):
        board.unlock(2)
    served.faults.configure()
    time.sleep(0.4)
    assert served.devices[0].pulses[1] == 1
    assert board.states()[1].open and served.devices[0].pulses[1] == 1
    assert board.unconfirmed_unlocks == 1
    board.transport.close()


def test_jam_and_broken_wiring(served: Served) -> None:
    with served.lock:
        served.model.doors[served.door(1, 1)].lock_jammed = True
        served.model.doors[served.door(1, 2)].wiring_broken = True
    plain = _board(served)
    assert plain.unlock(1).door_open is False
    plain.transport.close()
    board = _board(served, sprung_doors=True)
    board.states()
    with pytest.raises(LockJammed):
        board.unlock(2)
    assert (EventType.LOCK_JAMMED, 2) in [(e.kind, e.lock) for e in board.poll_events().events]
    checks = {(c.part, c.index): c.status for c in board.self_test()}
    assert checks[(PartKind.LOCK, 2)] is PartStatus.FAULT
    board.transport.close()


def test_forced_door_is_inferred(served: Served) -> None:
    board = _board(served)
    board.states()
    with served.lock:
        served.model.force_door(served.door(1, 9))
    kinds = [(e.kind, e.lock, e.inferred) for e in board.poll_events().events]
    assert kinds == [(EventType.DOOR_OPENED, 9, False), (EventType.DOOR_FORCED, 9, True)]
    board.transport.close()


def test_fourteen_units_on_one_bus() -> None:
    """The address nibble allows units 0..14 (0xF_ is broadcast): config addresses 1..14."""
    with serve(cabinet(boards=14, locks=4, baudrate=19200), _unit,
               KerongDeviceWire()) as served:
        transport = kerong_transport(served.url)
        boards = [KerongBoard(transport, a, locks=4, pulse_ms=300) for a in range(1, 15)]
        for b in boards:
            assert [s.open for s in b.states()] == [False] * 4
        assert boards[13].unlock(2).door_open
        assert [d.pulse_count for d in served.devices] == [0] * 13 + [1]
        transport.close()
