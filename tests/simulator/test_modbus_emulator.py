"""The Modbus I/O emulator: pymodbus's own server as the module, wired to the cabinet model and
served behind the lendbox pacing/fault proxy (``BusServer``). Raw RTU bytes over real sockets.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from firmware_protocol import modbus_rtu as rtu
from firmware_protocol.codec import NEED_DATA
from simulator import parse_config
from simulator.families.modbus import ModbusBus, ModbusModule
from simulator.model import CabinetModel


def make_model() -> CabinetModel:
    cfg = parse_config({
        "cabinet": {"id": "modbus-emu"},
        "buses": [{"name": "mb", "baudrate": 9600}],
        "boards": [{"address": 5, "bus": "mb", "locks": 3, "antennas": 1}],
        "doors": [{"number": 1, "board": 5, "lock": 1, "antenna": 1, "items": 2},
                  {"number": 2, "board": 5, "lock": 2, "antenna": 1, "spring": False},
                  {"number": 3, "board": 5, "lock": 3, "antenna": 1}],
    })
    return CabinetModel(cfg, time.monotonic)


MODULE = ModbusModule(unit=5, locks=3, lock_coils_start=4, door_inputs_start=2,
                      door_open_when=False, item_inputs_start=8)


@pytest.fixture
def bus() -> Iterator[ModbusBus]:
    model = make_model()
    b = ModbusBus(model.config.buses[0], model, [MODULE]).start()
    try:
        yield b
    finally:
        b.stop()


class Line:
    """A raw host on the emulated line."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("socket://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=2)

    def ask(self, request: object, timeout: float = 0.3) -> object | None:
        self.sock.sendall(rtu.encode_request(request))  # type: ignore[arg-type]
        return self.read(timeout)

    def read(self, timeout: float) -> object | None:
        d = rtu.ReplyDecoder()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(256)
            except TimeoutError:
                break
            d.feed(data)
            event = d.next_event()
            if event is not NEED_DATA:
                return event
        return None

    def close(self) -> None:
        self.sock.close()


def test_inputs_follow_the_model_with_the_configured_polarity(bus: ModbusBus) -> None:
    line = Line(bus.url)
    try:
        reply = line.ask(rtu.ReadBits(unit=5, function=2, address=2, count=3))
        assert isinstance(reply, rtu.BitsReply)
        assert reply.bits[:3] == (True, True, True)  # all closed; open_when=False
        with bus.model_lock:
            bus.device.model.force_door(3)
        reply = line.ask(rtu.ReadBits(unit=5, function=2, address=2, count=3))
        assert isinstance(reply, rtu.BitsReply) and reply.bits[:3] == (True, True, False)
        items = line.ask(rtu.ReadBits(unit=5, function=2, address=8, count=3))
        assert isinstance(items, rtu.BitsReply) and items.bits[:3] == (True, False, False)
    finally:
        line.close()


def test_coil_edges_pulse_the_model(bus: ModbusBus) -> None:
    line = Line(bus.url)
    model = bus.device.model
    try:
        on = rtu.WriteSingle(unit=5, function=5, address=4, value=0xFF00)
        assert line.ask(on) == on  # FC 5 echoes the request
        assert bus.device.rising_edges[(5, 1)] == 1
        assert model.doors[1].open  # a sprung door pops open on the rising edge
        assert line.ask(on) == on  # still on: no new edge, no new pulse
        assert bus.device.rising_edges[(5, 1)] == 1
        off = rtu.WriteSingle(unit=5, function=5, address=4, value=0)
        assert line.ask(off) == off
        assert bus.device.pulses[0].off_at is not None
        # FC 15 over locks 2 and 3: two rising edges
        reply = line.ask(rtu.WriteMultipleCoils(unit=5, address=5, values=(True, True)))
        assert reply == rtu.WriteReply(unit=5, function=15, address=5, count=2)
        assert bus.device.rising_edges[(5, 2)] == 1 and bus.device.rising_edges[(5, 3)] == 1
        assert not model.doors[2].latched  # unsprung door: released, still shut
        assert not model.doors[2].open
    finally:
        line.close()


def test_silence_for_other_units_bad_crc_and_exceptions_from_pymodbus(bus: ModbusBus) -> None:
    line = Line(bus.url)
    try:
        assert line.ask(rtu.ReadBits(unit=6, function=2, address=0, count=1), 0.15) is None
        frame = bytearray(rtu.encode_request(rtu.ReadBits(unit=5, function=2, address=0,
                                                          count=1)))
        frame[-1] ^= 0xFF
        line.sock.sendall(bytes(frame))
        assert line.read(0.15) is None
        # an address outside the module's map: pymodbus answers "illegal data address"
        reply = line.ask(rtu.ReadBits(unit=5, function=2, address=400, count=1))
        assert reply == rtu.ExceptionReply(unit=5, function=2, code=2)
        # an unknown function: pymodbus's framer cannot size it and stays silent, so the
        # bridge does not forward it either
        body = bytes([5, 0x41, 0, 0])
        line.sock.sendall(body + rtu.crc16_modbus(body).to_bytes(2, "little"))
        assert line.read(0.15) is None
        assert bus.bridge.stats.frame_errors["BadCrc"] == 1
        assert bus.bridge.stats.frame_errors["UnknownCommand"] == 1
        assert bus.bridge.stats.not_answered == 0
    finally:
        line.close()


def test_the_line_is_paced_at_the_baud_rate(bus: ModbusBus) -> None:
    line = Line(bus.url)
    try:
        line.ask(rtu.ReadBits(unit=5, function=2, address=2, count=3))  # warm up
        t0 = time.perf_counter()
        for _ in range(5):
            assert line.ask(rtu.ReadBits(unit=5, function=2, address=2, count=3)) is not None
        per = (time.perf_counter() - t0) / 5
        wire = (8 + 6) * 10 / 9600  # request + reply characters, 8N1
        assert per >= wire
    finally:
        line.close()


def test_faults_apply_to_the_modbus_line(bus: ModbusBus) -> None:
    line = Line(bus.url)
    try:
        bus.faults.configure(drop_rate=1.0, seed=1)
        assert line.ask(rtu.ReadBits(unit=5, function=2, address=2, count=3), 0.15) is None
        bus.faults.configure()
        assert line.ask(rtu.ReadBits(unit=5, function=2, address=2, count=3)) is not None
        bus.unplug()
        assert line.read(0.3) is None  # the connection was closed
        line.close()
        try:
            probe = Line(bus.url)
        except OSError:
            pass  # refused
        else:  # accepted by a listener thread that is still closing, then dropped
            try:
                assert probe.ask(rtu.ReadBits(unit=5, function=2, address=2, count=3),
                                 0.2) is None
            except OSError:
                pass
            probe.close()
        bus.replug()
        line = Line(bus.url)
        assert line.ask(rtu.ReadBits(unit=5, function=2, address=2, count=3)) is not None
    finally:
        line.close()
