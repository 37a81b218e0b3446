"""The Modbus I/O driver against pymodbus's own server as the module, behind the lendbox
pacing/fault proxy, over real sockets at 9600 baud. No mocks.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest

from drivers.base import Availability
from drivers.board import ControllerBoard, DoorEvent
from drivers.errors import (
    ConfigError,
    DeviceRejected,
    DeviceTimeout,
    DeviceUnavailable,
    DriverError,
    NotSupported,
)
from drivers.families.modbus import ModbusIoBoard, ModbusIoMap, ModbusLink
from firmware_protocol.const import EventType, PartKind, PartStatus
from simulator import parse_config
from simulator.families.modbus import ModbusBus, ModbusModule
from simulator.model import CabinetModel

LOCKS = 4


def make_bus(door_open_when: bool = False) -> ModbusBus:
    cfg = parse_config({
        "cabinet": {"id": "modbus-drv"},
        "buses": [{"name": "mb", "baudrate": 9600}],
        "boards": [{"address": 3, "bus": "mb", "locks": LOCKS, "antennas": 1}],
        "doors": [{"number": n, "board": 3, "lock": n, "antenna": 1, "spring": n == 1}
                  for n in range(1, LOCKS + 1)],
    })
    model = CabinetModel(cfg, time.monotonic)
    module = ModbusModule(unit=3, locks=LOCKS, lock_coils_start=16, door_inputs_start=0,
                          door_open_when=door_open_when)
    return ModbusBus(cfg.buses[0], model, [module]).start()


def make_board(bus: ModbusBus, door_open_when: bool = False, **kw: object) -> ModbusIoBoard:
    link = ModbusLink(bus.url, baudrate=9600, name="mb", backoff_s=(0.2, 0.5))
    io_map = ModbusIoMap(unit=3, locks=LOCKS, lock_coils_start=16, door_inputs_start=0,
                         door_open_when=door_open_when, pulse_ms=100)
    return ModbusIoBoard(link, io_map, **kw)  # type: ignore[arg-type]


@pytest.fixture
def bus() -> Iterator[ModbusBus]:
    b = make_bus()
    try:
        yield b
    finally:
        b.stop()


def test_map_from_config_names_problems() -> None:
    m = ModbusIoMap.from_mapping({"unit": 2, "locks": 8, "door_open_when": False})
    assert m.unit == 2 and m.door_open_when is False
    with pytest.raises(ConfigError, match="unknown keys"):
        ModbusIoMap.from_mapping({"unit": 2, "locks": 8, "coil_start": 0})
    with pytest.raises(ConfigError, match="unit"):
        ModbusIoMap.from_mapping({"unit": 0, "locks": 8})
    with pytest.raises(ConfigError, match="door_open_when"):
        ModbusIoMap.from_mapping({"unit": 1, "locks": 8, "door_open_when": "yes"})


def test_identify_states_unlock_events(bus: ModbusBus) -> None:
    board = make_board(bus)
    assert isinstance(board, ControllerBoard)
    info = board.identify()
    assert (info.family, info.address, info.firmware, info.locks) == ("modbus", 3, "unknown", 4)
    assert [s.open for s in board.states()] == [False] * LOCKS
    result = board.unlock(1)  # sprung door
    assert result.door_open and result.lock == 1
    assert bus.device.rising_edges[(3, 1)] == 1
    pulse = bus.device.pulses[0]
    assert pulse.off_at is not None and 0.08 <= pulse.off_at - pulse.on_at <= 0.3
    kinds = [(e.kind, e.lock) for e in board.poll_events().events]
    assert kinds == [(EventType.UNLOCKED, 1), (EventType.DOOR_OPENED, 1)]
    with bus.model_lock:
        bus.device.model.close_door(1)
    assert [(e.kind, e.lock) for e in board.poll_events().events] == [(EventType.DOOR_CLOSED, 1)]
    # a retry with the op_id never pulses again
    assert board.unlock(1, op_id=result.op_id) == result
    assert bus.device.rising_edges[(3, 1)] == 1
    assert board.counters().unlocks == (1, 0, 0, 0)
    checks = board.self_test()
    assert checks[0].part is PartKind.BOARD and checks[0].status is PartStatus.OK
    assert all(c.status is PartStatus.OK for c in checks)
    with pytest.raises(NotSupported):
        board.antenna_diag(1)
    with pytest.raises(DeviceRejected):
        board.unlock(LOCKS + 1)
    assert board.status().availability is Availability.OK
    board.link.close()


@pytest.mark.parametrize("door_open_when", [True, False])
def test_input_polarity(door_open_when: bool) -> None:
    bus = make_bus(door_open_when)
    try:
        board = make_board(bus, door_open_when)
        with bus.model_lock:
            bus.device.model.force_door(2)
        assert [s.open for s in board.states()] == [False, True, False, False]
        # the wrong polarity in the config reads every door inverted
        wrong = make_board(bus, not door_open_when)
        assert [s.open for s in wrong.states()] == [True, False, True, True]
        board.link.close()
        wrong.link.close()
    finally:
        bus.stop()


def test_noisy_line_exact_states_no_missed_transitions_no_double_pulses(bus: ModbusBus) -> None:
    """1% of bytes garbled, 5% of requests and of replies dropped."""
    bus.faults.configure(garble_rate=0.01, drop_rate=0.05, seed=2024)
    board = make_board(bus, read_retries=4, settle_s=0.5)
    model = bus.device.model
    seen: list[DoorEvent] = []
    stop = threading.Event()

    def consume() -> None:
        seen.extend(board.events(poll_interval_s=0.02, stop=stop))

    poller = threading.Thread(target=consume, daemon=True)
    poller.start()

    def polls_after(n: int) -> None:
        """Wait until two snapshots were taken after the current one (a change made now is
        'between polls')."""
        target = board.polls + n
        deadline = time.monotonic() + 10
        while board.polls < target:
            assert time.monotonic() < deadline, "poller stalled"
            time.sleep(0.005)

    rng = random.Random(7)
    expected: list[tuple[EventType, int]] = []
    confirmed = unconfirmed = 0
    try:
        polls_after(1)  # baseline
        for step in range(30):
            door = rng.randint(2, LOCKS)  # doors without spring: only people move them
            with bus.model_lock:
                if model.doors[door].open:
                    model.close_door(door)
                    expected.append((EventType.DOOR_CLOSED, door))
                else:
                    model.force_door(door)
                    expected.append((EventType.DOOR_OPENED, door))
            polls_after(2)
            # exact states: what the driver reads is the model, door for door
            states = board.states()
            with bus.model_lock:
                truth = [model.doors[n].open for n in range(1, LOCKS + 1)]
            assert [s.open for s in states] == truth
            if step % 3 == 0:
                try:
                    board.unlock(door)
                    confirmed += 1
                except DeviceTimeout:
                    unconfirmed += 1
    finally:
        stop.set()
        poller.join(5)
    observed = [(e.kind, e.lock) for e in seen
                if e.kind in (EventType.DOOR_OPENED, EventType.DOOR_CLOSED) and not e.inferred]
    assert observed == expected
    edges = sum(bus.device.rising_edges.values())
    assert confirmed <= edges <= confirmed + unconfirmed, (confirmed, unconfirmed, edges)
    assert all(p.off_at is not None for p in bus.device.pulses)  # every coil switched off
    assert bus.stats.requests_dropped + bus.stats.replies_dropped > 0  # faults did happen
    assert bus.stats.bytes_garbled > 0
    board.link.close()


def test_lost_on_reply_raises_and_never_pulses_twice(bus: ModbusBus) -> None:
    board = make_board(bus, off_retries=2)
    board.states()
    bus.faults.configure(delay_ms=150)  # every reply arrives after the 100 ms timeout
    with pytest.raises(DeviceTimeout, match="may have opened"):
        board.unlock(2)
    assert bus.device.rising_edges[(3, 2)] == 1
    assert board.status().availability is not Availability.OK
    bus.faults.configure()
    time.sleep(0.2)  # let the late replies arrive; the driver drops them as stale
    board.states()  # the pending OFF is confirmed first
    assert not bus.device.coil_on(3, 2)
    op = next(iter(board._ops))  # the unconfirmed operation
    with pytest.raises(DeviceTimeout, match="not sent again"):
        board.unlock(2, op_id=op)
    assert bus.device.rising_edges[(3, 2)] == 1
    assert board.counters().unlocks[1] == 1
    board.link.close()


def test_unplug_and_replug_recover(bus: ModbusBus) -> None:
    board = make_board(bus)
    board.states()
    bus.unplug()
    with pytest.raises(DeviceUnavailable):
        board.states()
    assert board.status().availability is Availability.UNAVAILABLE
    with pytest.raises(DeviceUnavailable):
        board.unlock(2)  # nothing sent: the door did not open
    assert sum(bus.device.rising_edges.values()) == 0
    time.sleep(0.3)  # the cable stays out a moment (the old listener finishes closing)
    bus.replug()
    deadline = time.monotonic() + 5
    while True:
        try:
            board.states()
            break
        except DriverError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert board.link.counters.reconnects >= 1
    assert board.status().availability is Availability.OK
    board.link.close()
