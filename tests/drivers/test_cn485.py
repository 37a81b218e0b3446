"""cn485 driver against its emulator over real sockets (BusServer) and the real CabinetModel."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from drivers.board import ControllerBoard
from drivers.errors import DeviceTimeout, LockJammed, NotSupported
from drivers.families.cn485 import Cn485Board, cn485_transport
from firmware_protocol.const import EventType, PartKind, PartStatus
from simulator.families.cn485 import Cn485Board as Cn485Emulator
from simulator.families.cn485 import Cn485DeviceWire
from tests.lockboard_helpers import Served, cabinet, observed_transitions, run_scenario, serve

LOCKS = 8


def _board(served: Served, address: int = 1, **kwargs: object) -> Cn485Board:
    transport = cn485_transport(served.url, backoff_s=(0.05, 0.2))
    kwargs.setdefault("unlock_timeout_s", 0.8)
    return Cn485Board(transport, address, locks=LOCKS, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def served() -> Iterator[Served]:
    with serve(cabinet(locks=LOCKS), lambda b, m: Cn485Emulator(b, m),
               Cn485DeviceWire()) as s:
        yield s


def test_implements_controller_board(served: Served) -> None:
    board = _board(served)
    assert isinstance(board, ControllerBoard)
    info = board.identify()
    assert (info.family, info.address, info.locks, info.firmware) == ("cn485", 1, LOCKS,
                                                                      "unknown")
    with pytest.raises(NotSupported):
        board.antenna_diag(1)
    board.transport.close()


def test_unlock_states_events_counters(served: Served) -> None:
    board = _board(served)
    assert [s.open for s in board.states()] == [False] * LOCKS
    result = board.unlock(3)
    assert result.door_open and result.lock == 3
    assert [s.open for s in board.states()] == [n == 3 for n in range(1, LOCKS + 1)]
    with served.lock:
        served.model.close_door(served.door(1, 3))
    kinds = [(e.kind, e.lock) for e in board.poll_events().events]
    assert kinds == [(EventType.UNLOCKED, 3), (EventType.DOOR_OPENED, 3),
                     (EventType.DOOR_CLOSED, 3)]
    c = board.counters()
    assert c.unlocks[2] == 1 and sum(c.unlocks) == 1 and c.frames_ok >= 3
    assert served.devices[0].pulses[2] == 1
    assert board.status().availability.value == "ok"
    diag = board.diagnostics()
    assert diag["unconfirmed_unlocks"] == 0 and diag["limits"]
    board.transport.close()


def test_faulty_line_exact_states_no_missed_transitions_no_double_pulses() -> None:
    """1% of bytes corrupted, 5% of frames dropped, both directions."""
    with serve(cabinet(locks=LOCKS), lambda b, m: Cn485Emulator(b, m), Cn485DeviceWire(),
               garble_rate=0.01, drop_rate=0.05, seed=5) as served:
        board = _board(served)
        result = run_scenario(served, board, served.devices[0], 1, LOCKS, steps=35)
        board.transport.close()
    assert result.final_driver == result.final_model
    assert observed_transitions(result.events) == result.transitions
    assert len(result.transitions) > 15
    # never more pulses than unlocks sent; exactly one for every confirmed unlock
    assert all(d == 1 for outcome, d in result.pulse_deltas if outcome == "confirmed")
    assert all(d in (0, 1) for _, d in result.pulse_deltas)
    pulses = served.devices[0].pulse_count
    assert result.confirmed <= pulses <= result.confirmed + result.unconfirmed
    assert served.stats.bytes_garbled > 0 and (served.stats.requests_dropped
                                               + served.stats.replies_dropped) > 0


def test_late_reply_unlock_is_never_resent(served: Served) -> None:
    board = _board(served, unlock_timeout_s=0.3)
    served.faults.configure(delay_ms=600)
    with pytest.raises(DeviceTimeout, match="may have opened"):
        board.unlock(2)
    served.faults.configure()
    time.sleep(0.5)  # the late reply arrives while nobody waits for it
    assert served.devices[0].pulses[1] == 1
    states = board.states()  # the stale open reply is not taken for this answer
    assert states[1].open and served.devices[0].pulses[1] == 1
    assert board.unconfirmed_unlocks == 1 and board.counters().unlocks[1] == 0
    board.transport.close()


def test_jammed_lock_and_broken_wiring_show_as_the_protocol_allows(served: Served) -> None:
    plain = _board(served)
    with served.lock:
        served.model.doors[served.door(1, 1)].lock_jammed = True
        served.model.doors[served.door(1, 2)].wiring_broken = True
    # without knowing the doors are sprung, a jam is just "the door did not open"
    assert plain.unlock(1).door_open is False
    plain.transport.close()
    board = _board(served, sprung_doors=True)
    board.states()
    with pytest.raises(LockJammed):
        board.unlock(2)
    events = board.poll_events().events
    assert (EventType.LOCK_JAMMED, 2) in [(e.kind, e.lock) for e in events]
    checks = {(c.part, c.index): c.status for c in board.self_test()}
    assert checks[(PartKind.LOCK, 2)] is PartStatus.FAULT
    assert checks[(PartKind.BOARD, 0)] is PartStatus.OK
    assert served.devices[0].pulses[:2] == [1, 1]
    board.transport.close()


def test_broken_sensor_and_forced_door(served: Served) -> None:
    board = _board(served)
    board.states()
    with served.lock:
        served.model.doors[served.door(1, 4)].sensor_broken = True
    assert board.unlock(4).door_open is False  # the door opened; its contact says closed
    with served.lock:
        served.model.force_door(served.door(1, 5))
    events = board.poll_events().events
    kinds = [(e.kind, e.lock, e.inferred) for e in events]
    assert (EventType.DOOR_OPENED, 5, False) in kinds
    assert (EventType.DOOR_FORCED, 5, True) in kinds
    board.transport.close()


@pytest.mark.parametrize("emulated,configured", [("closed_is_11", "closed_is_11"),
                                                 ("open_is_11", "open_is_11"),
                                                 ("open_is_11", "closed_is_11")])
def test_feedback_polarity(emulated: str, configured: str) -> None:
    with serve(cabinet(locks=LOCKS), lambda b, m: Cn485Emulator(b, m, feedback=emulated),
               Cn485DeviceWire()) as served:
        board = _board(served, feedback=configured)
        truth = [n == 6 for n in range(1, LOCKS + 1)]
        opened = board.unlock(6).door_open
        states = [s.open for s in board.states()]
        board.transport.close()
    if emulated == configured:
        assert opened is True and states == truth
    else:  # the wrong setting: every door reads inverted (Open-Locker commissioning hint)
        assert opened is False and states == [not x for x in truth]


def test_31_boards_on_one_bus() -> None:
    with serve(cabinet(boards=31, locks=4), lambda b, m: Cn485Emulator(b, m),
               Cn485DeviceWire()) as served:
        transport = cn485_transport(served.url)
        boards = [Cn485Board(transport, a, locks=4) for a in range(1, 32)]
        for b in boards:
            assert [s.open for s in b.states()] == [False] * 4
        assert boards[30].unlock(4).door_open
        assert [d.pulse_count for d in served.devices] == [0] * 30 + [1]
        assert boards[30].states()[3].open and not boards[29].states()[3].open
        transport.close()
