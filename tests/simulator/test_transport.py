"""Bytes over real sockets and ptys: line pacing, air time, link faults, unplug/replug.

Timing assertions are lower bounds only (≥ 0.9 × the emulated time), never tight upper
bounds, so a loaded 2-core CI machine cannot make them flake; measured figures are printed.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import serial

from firmware_protocol.const import Command, ErrorCode
from firmware_protocol.messages import (
    GetCounters,
    Identify,
    Inventory,
    Nak,
    ReadBlocks,
    ReadEvents,
    Unlock,
)
from simulator import Simulator, parse_config
from simulator.line import wire_time_s

from .conftest import Host

RS485 = {
    "cabinet": {"id": "t", "seed": 3},
    "buses": [{"name": "b", "kind": "rs485"}],
    "boards": [{"address": 1, "bus": "b", "locks": 2, "antennas": 2}],
    "doors": [{"number": 1, "board": 1, "lock": 1, "items": 5},
              {"number": 2, "board": 1, "lock": 2, "items": 0}],
}


@pytest.fixture
def rs485() -> Iterator[Simulator]:
    sim = Simulator(parse_config(RS485), control_port=None).start()
    try:
        yield sim
    finally:
        sim.stop()


def test_100_byte_reply_at_19200_takes_its_wire_time(rs485: Simulator) -> None:
    host = Host(rs485.bus_urls["b"])
    try:
        uid = rs485.door_items(1)[0].uid
        request = ReadBlocks(antenna=1, uid=uid, first_block=0, count=21)  # 102-byte reply
        host.port.reset_input_buffer()
        sent = host.send(request)
        frame, elapsed, raw = host.receive()
    finally:
        host.close()
    assert frame is not None and len(raw) == 102
    reply_s = wire_time_s(len(raw), 19200)
    emulated = wire_time_s(len(sent), 19200) + reply_s
    stats = rs485.link_stats("b")
    print(f"\n102-byte reply at 19200: emulated wire {reply_s * 1000:.1f} ms, request+reply+air "
          f"{(emulated + stats['air_s']) * 1000:.1f} ms, measured {elapsed * 1000:.1f} ms")
    assert reply_s == pytest.approx(0.0531, abs=0.001)
    assert elapsed >= 0.9 * (emulated + stats["air_s"])
    assert stats["wire_s"] == pytest.approx(emulated)


def test_inventory_spends_air_time_that_grows_with_tags(sim: Simulator, host: Host) -> None:
    times = {}
    for antenna, expected in ((4, 0), (2, 6), (1, 30)):
        sim.reset_link_stats("usb-1")
        frame, elapsed = host.ask(Inventory(antenna=antenna))
        assert frame.message.total_tags == expected
        air = sim.link_stats("usb-1")["air_s"]
        times[expected] = (air, elapsed)
        assert elapsed >= 0.9 * air
    print("\ninventory air/measured (ms):",
          {n: (round(a * 1000, 1), round(m * 1000, 1)) for n, (a, m) in times.items()})
    assert times[0][0] < times[6][0] < times[30][0]
    assert 0.2 < times[30][0] < 0.4  # hardware-limits.md §1.3: ≈ 285 ms mean for 30 tags


def test_unlock_answers_after_the_pulse(sim: Simulator, host: Host) -> None:
    frame, elapsed = host.ask(Unlock(lock=2, pulse_ms=250, op_id=9))
    assert frame.message.door_open is True
    assert elapsed >= 0.25


def test_garbled_bytes_are_seen_on_the_wire(sim: Simulator, host: Host) -> None:
    sim.set_link_faults("usb-1", garble_rate=0.05, seed=1)
    bad = 0
    for _ in range(20):
        frame, _ = host.ask(Identify(), timeout=0.3)
        bad += frame is None
    sim.set_link_faults("usb-1")
    stats = sim.link_stats("usb-1")
    assert stats["bytes_garbled"] > 0 and bad > 0
    counters, _ = host.ask(GetCounters())
    assert counters.message.crc_errors > 0  # the board saw broken requests too


def test_dropped_frames_and_delay(sim: Simulator, host: Host) -> None:
    sim.set_link_faults("usb-1", drop_rate=1.0, seed=2)
    frame, _ = host.ask(Identify(), timeout=0.3)
    assert frame is None
    sim.set_link_faults("usb-1", drop_rate=0.5, seed=2)
    answered = sum(host.ask(Identify(), timeout=0.3)[0] is not None for _ in range(12))
    stats = sim.link_stats("usb-1")
    assert 0 < answered < 12 and stats["requests_dropped"] + stats["replies_dropped"] > 0
    sim.set_link_faults("usb-1", delay_ms=120)
    frame, elapsed = host.ask(Identify())
    assert frame is not None and elapsed >= 0.12


def test_retransmitted_frame_is_answered_from_cache(sim: Simulator, host: Host) -> None:
    host.send(Unlock(lock=2, pulse_ms=50, op_id=1), seq=42)
    first, _, _ = host.receive()
    sim.close_door(2)
    host.send(Unlock(lock=2, pulse_ms=50, op_id=1), seq=42)  # identical bytes
    again, _, _ = host.receive()
    assert again == first and not sim.model.doors[2].open
    counters, _ = host.ask(GetCounters())
    assert counters.message.retransmissions == 1


def test_unplug_refuses_and_replug_reuses_the_port(sim: Simulator, host: Host) -> None:
    url = sim.bus_urls["usb-1"]
    port = int(url.rsplit(":", 1)[1])
    sim.unplug("usb-1")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    try:  # the old connection was closed by the "cable": no answer, or an error
        assert host.ask(Identify(), timeout=0.3)[0] is None
    except (serial.SerialException, OSError):
        pass
    sim.replug("usb-1")
    assert sim.bus_urls["usb-1"] == url
    again = Host(url)
    try:
        frame, _ = again.ask(Identify())
        assert frame is not None
    finally:
        again.close()


def test_power_cut_board_is_silent_and_keeps_events(sim: Simulator, host: Host) -> None:
    host.ask(Unlock(lock=2, pulse_ms=10, op_id=3))
    sim.close_door(2)  # before the 0.3 s hold-open limit of the small cabinet
    sim.power_cut(1)
    assert host.ask(Identify(), timeout=0.3)[0] is None
    sim.power_restore(1)
    frame, _ = host.ask(ReadEvents(cursor=0))
    assert [e.kind.name for e in frame.message.events] == [
        "UNLOCKED", "DOOR_OPENED", "DOOR_CLOSED", "POWER_LOST", "POWER_RESTORED"]


def test_nak_over_the_wire(sim: Simulator, host: Host) -> None:
    frame, _ = host.ask(Inventory(antenna=3, page=1))
    assert frame.message == Nak(command=Command.INVENTORY, error=ErrorCode.NO_INVENTORY)


def test_pty_serves_the_same_bytes(small_config) -> None:  # type: ignore[no-untyped-def]
    sim = Simulator(small_config, pty=True, control_port=None).start()
    try:
        path = sim.pty_paths["usb-1"]
        host = Host(path)
        try:
            start = time.monotonic()
            frame, _ = host.ask(Identify())
            assert frame is not None and frame.message.serial == "LB04T0000001"
            assert time.monotonic() - start < 5
        finally:
            host.close()
    finally:
        sim.stop()
