"""RR3036 module emulator: 27-UID replies, quiet state, RF reset, reads, bytes over a port."""

from __future__ import annotations

import time

import serial

from firmware_protocol import rr3036
from firmware_protocol.codec import NEED_DATA
from simulator.config import load_config
from simulator.families.rr3036 import RR3036DeviceWire, RR3036Module
from simulator.model import CabinetModel
from tests.families_helpers import CABINETS, serve


def _model() -> CabinetModel:
    return CabinetModel(load_config(CABINETS / "small.toml"), time.monotonic)


def test_thirty_tags_need_two_passes_with_stay_quiet() -> None:
    model = _model()
    module = RR3036Module(model, 1)
    door = {i.uid for i in model.items_in_field(1, 1)}
    first = module.handle(rr3036.Inventory()).reply
    assert first.status == rr3036.Status.SCAN_TIME_ALL and len(first.tags) == 27
    for _, wire_uid in first.tags:
        assert module.handle(rr3036.StayQuiet(uid=wire_uid)).reply.status == 0
    second = module.handle(rr3036.Inventory()).reply
    assert second.status == rr3036.Status.OK and len(second.tags) == 3
    seen = {bytes(reversed(u)) for _, u in first.tags + second.tags}
    assert seen == door
    assert module.handle(rr3036.Inventory()).reply.status == 0  # 3 left answer again
    module.handle(rr3036.CloseRf())
    assert module.handle(rr3036.Inventory()).reply.status == rr3036.Status.FIELD_CLOSED
    module.handle(rr3036.OpenRf())
    assert len(module.handle(rr3036.Inventory()).reply.tags) == 27  # quiet state ended


def test_read_block_write_afi_and_errors() -> None:
    model = _model()
    module = RR3036Module(model, 1, address=5)
    item = model.items_in_field(1, 1)[0]
    wire = bytes(reversed(item.uid))
    reply = module.handle(rr3036.ReadBlock(address=5, uid=wire, block=1)).reply
    assert reply.block == item.memory[4:8]
    assert module.handle(rr3036.WriteAfi(address=5, uid=wire, afi=0xC2)).reply.status == 0
    assert item.afi == 0xC2
    past = module.handle(rr3036.ReadBlock(address=5, uid=wire, block=200)).reply
    assert (past.status, past.data) == (rr3036.Status.ISO_ERROR, b"\x10")
    assert module.handle(rr3036.ReadBlock(address=6, uid=wire, block=0)).reply is None
    item.unreadable = True
    assert module.handle(rr3036.ReadBlock(address=5, uid=wire, block=0)).reply.status == 0x0E


def test_bytes_over_a_served_port_at_19200() -> None:
    with serve(lambda m: [RR3036Module(m, 1)], RR3036DeviceWire(), baudrate=19200) as bus:
        port = serial.serial_for_url(bus.url, timeout=2)
        try:
            port.write(rr3036.encode_request(rr3036.Inventory()))
            decoder = rr3036.ReplyDecoder()
            started = time.monotonic()
            while (ev := decoder.next_event()) is NEED_DATA:
                decoder.feed(port.read(1) or b"")
                assert time.monotonic() - started < 3
        finally:
            port.close()
        assert ev.status == rr3036.Status.SCAN_TIME_ALL and len(ev.data) == 27 * 9
        assert abs(bus.stats.wire_s - (6 + 248) * 10 / 19200) < 1e-9
