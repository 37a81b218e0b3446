"""LendboxBoard against the simulator over real socket:// connections, with faults."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from drivers.base import Availability
from drivers.board import ControllerBoard, LendboxBoard
from drivers.cursor import JsonFileCursorStore, MemoryCursorStore
from drivers.errors import (
    DeviceRejected,
    DeviceTimeout,
    DeviceUnavailable,
    LockJammed,
)
from drivers.hardware import Hardware
from drivers.rfid import inventory_door
from drivers.transport import BusTransport
from firmware_protocol.const import EventType
from simulator import Simulator

BUS = "usb-1"


def test_board_satisfies_the_interface(hw: Hardware) -> None:
    assert isinstance(hw.boards[1], ControllerBoard)


def test_identify_states_counters(hw: Hardware) -> None:
    b = hw.boards[1]
    info = b.identify()
    assert info.serial == "LB04T0000001" and info.locks == 4 and "rfid" in info.capabilities
    assert [s.lock for s in b.states()] == [1, 2, 3, 4]
    assert not any(s.open for s in b.states())
    assert b.counters().unlocks == (0, 0, 0, 0)
    assert b.status().availability is Availability.OK


def test_unlock_opens_the_door_once(sim: Simulator, hw: Hardware) -> None:
    b = hw.boards[1]
    result = b.unlock(2, pulse_ms=50)
    assert result.door_open and b.states()[1].open
    assert sim.boards[1].unlocks[1] == 1
    kinds = [e.kind for e in b.poll_events().events if e.lock == 2]
    assert kinds[:2] == [EventType.UNLOCKED, EventType.DOOR_OPENED]


def test_nak_and_jam_are_typed(sim: Simulator, hw: Hardware) -> None:
    b = hw.boards[1]
    with pytest.raises(DeviceRejected, match="BAD_INDEX") as exc:
        b.unlock(9, pulse_ms=20)
    assert exc.value.code == 3
    sim.jam_lock(1)
    with pytest.raises(LockJammed) as jam:
        b.unlock(1, pulse_ms=20)
    assert jam.value.lock == 1 and b.states()[0].jammed


def test_resent_unlock_never_pulses_twice(sim: Simulator, hw: Hardware) -> None:
    """Replies are dropped often: the driver re-sends identical frames, and an unconfirmed
    unlock is retried by the caller only with its op_id — each operation pulses once."""
    b = hw.boards[1]
    sim.set_link_faults(BUS, drop_rate=0.35, seed=4)
    operations = 0
    for _ in range(8):
        op_id = None
        for _attempt in range(20):
            try:
                result = b.unlock(4, pulse_ms=20, op_id=op_id)
            except DeviceTimeout as exc:
                assert "may have opened" in str(exc)
                op_id = int(str(exc).rsplit("op_id=", 1)[1])
                continue
            op_id = result.op_id
            break
        else:
            pytest.fail("unlock never confirmed")
        operations += 1
        assert sim.boards[1].unlocks[3] == operations  # the simulator's own pulse counter
    assert hw.buses[BUS].counters.retries > 0  # re-sends really happened
    sim.set_link_faults(BUS)
    assert b.counters().unlocks[3] == operations


def test_lossy_link_keeps_inventory_exact_and_events_once(sim: Simulator, hw: Hardware) -> None:
    """1 % of bytes garbled, 5 % of frames dropped: exact inventories, every door change once."""
    b = hw.boards[1]
    reader = hw.readers[1]
    sim.set_link_faults(BUS, garble_rate=0.01, drop_rate=0.05, seed=11)
    truth = sorted(i.item_id for i in sim.door_items(2))
    for _ in range(2):  # tag data read on the first round, cached on the second
        tags = inventory_door(reader, 2, hw.tag_cache)
        assert sorted(t.item_id for t in tags if t.item_id) == truth
        assert len(tags) == len(truth)
    seen: list = []
    stop = threading.Event()

    def consume() -> None:
        seen.extend(b.events(poll_interval_s=0.01, stop=stop))

    consumer = threading.Thread(target=consume)
    consumer.start()
    cycles = 12
    try:
        for _ in range(cycles):
            sim.force_door(2)
            time.sleep(0.01)
            sim.close_door(2)
            time.sleep(0.01)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            kinds = Counter(e.kind for e in seen if e.lock == 2)
            if kinds[EventType.DOOR_CLOSED] >= cycles:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        consumer.join(5)
    door2 = [e for e in seen if e.lock == 2 and e.kind in (EventType.DOOR_OPENED,
                                                            EventType.DOOR_CLOSED)]
    assert [e.kind for e in door2] == [EventType.DOOR_OPENED, EventType.DOOR_CLOSED] * cycles
    seqs = [e.seq for e in seen]
    assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs)
    counters = hw.buses[BUS].counters
    assert counters.retries > 0 and counters.crc_errors + counters.truncated > 0
    for _ in range(30):  # enough requests for a quality judgement
        b.states()
    assert b.status().availability is Availability.DEGRADED, (counters, b.status())
    assert "needed a retry" in b.status().reason


def test_unplug_then_replug_recovers_by_itself(sim: Simulator, hw: Hardware) -> None:
    b = hw.boards[1]
    b.identify()
    sim.unplug(BUS)
    with pytest.raises((DeviceUnavailable, DeviceTimeout)):
        b.states()
    with pytest.raises(DeviceUnavailable):
        b.states()  # refused (or within backoff): no hanging
    assert b.status().availability is Availability.UNAVAILABLE
    sim.replug(BUS)
    deadline = time.monotonic() + 5
    while True:
        try:
            b.states()
            break
        except DeviceUnavailable:
            assert time.monotonic() < deadline, "never reconnected"
            time.sleep(0.05)
    assert b.status().availability is Availability.OK
    assert hw.buses[BUS].counters.reconnects >= 1
    assert b.diagnostics()["bus_counters"]["reconnects"] >= 1  # type: ignore[index]


def test_power_cut_keeps_events(sim: Simulator, hw: Hardware) -> None:
    b = hw.boards[1]
    sim.force_door(2)  # events not yet read when the power goes
    sim.power_cut(1)
    with pytest.raises(DeviceTimeout):
        b.states()
    assert b.status().availability is Availability.UNAVAILABLE
    assert "not answering" in b.status().reason
    sim.close_door(2)  # unseen while unpowered; reported at boot
    sim.power_restore(1)
    kinds = [(e.kind, e.lock) for e in b.poll_events().events
             if e.kind is not EventType.DOOR_FORCED]
    assert kinds == [(EventType.DOOR_OPENED, 2), (EventType.POWER_LOST, 0),
                     (EventType.POWER_RESTORED, 0), (EventType.DOOR_CLOSED, 2)]
    assert b.status().availability is Availability.OK
    assert b.counters().power_cycles == 1


def test_cursor_store_resumes_after_host_restart(sim: Simulator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = sim.bus_urls[BUS]
    store_path = tmp_path / "cursors.json"
    t1 = BusTransport(url, baudrate=115200, name=BUS)
    b1 = LendboxBoard(t1, 1, cursor_store=JsonFileCursorStore(store_path))
    sim.force_door(2)
    first = b1.poll_events().events
    assert EventType.DOOR_OPENED in [e.kind for e in first]
    sim.close_door(2)
    batch = b1.read_events()  # read, then the host "crashes" before acknowledging
    assert [e.kind for e in batch.events] == [EventType.DOOR_CLOSED]
    t1.close()
    t2 = BusTransport(url, baudrate=115200, name=BUS)
    b2 = LendboxBoard(t2, 1, cursor_store=JsonFileCursorStore(store_path))
    again = b2.poll_events()
    assert [e.seq for e in again.events] == [e.seq for e in batch.events]  # once more, no loss
    assert b2.poll_events().events == ()
    t2.close()


def test_ring_overflow_reports_lost_events(sim: Simulator, hw: Hardware) -> None:
    b = hw.boards[1]
    assert b.poll_events().lost == 0  # sets the cursor
    for _ in range(100):  # 300 events (forced, opened, closed) > 256-entry ring
        sim.force_door(2)
        sim.close_door(2)
    produced = sim.boards[1].next_seq
    assert produced > 256
    batch = b.poll_events()
    assert batch.lost == produced - 256
    assert len(batch.events) == 256
    assert b.diagnostics()["events_lost"] == produced - 256


def test_peek_does_not_acknowledge(sim: Simulator, hw: Hardware) -> None:
    b = hw.boards[1]
    sim.force_door(3)
    peeked = b.peek_events().events
    assert EventType.DOOR_FORCED in [e.kind for e in peeked]
    assert [e.seq for e in b.poll_events().events] == [e.seq for e in peeked]


def test_memory_store_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        MemoryCursorStore().save("x", -1)


def test_two_boards_share_one_bus(two_board_sim: Simulator, make_hw) -> None:  # type: ignore[no-untyped-def]
    hw = make_hw(two_board_sim)
    assert len(hw.buses) == 1
    results: dict[int, list] = {1: [], 2: []}

    def hammer(address: int) -> None:
        for _ in range(15):
            results[address].append(hw.boards[address].identify().serial)

    threads = [threading.Thread(target=hammer, args=(a,)) for a in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results[1]) == {"LB03T0000001"} and set(results[2]) == {"LB03T0000002"}
    assert hw.buses["rs485-1"].counters.retries == 0
