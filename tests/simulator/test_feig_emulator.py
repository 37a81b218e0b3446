"""FEIG reader emulator: sans-IO answers from the physical model, and bytes over a real port."""

from __future__ import annotations

import time

import serial

from firmware_protocol import feig
from firmware_protocol.codec import NEED_DATA
from simulator import air
from simulator.config import load_config
from simulator.families.feig import FeigDeviceWire, FeigReader
from simulator.model import CabinetModel
from tests.families_helpers import CABINETS, serve


def _model() -> CabinetModel:
    return CabinetModel(load_config(CABINETS / "small.toml"), time.monotonic)


def test_inventory_more_and_antenna_selection_follow_the_model() -> None:
    model = _model()
    reader = FeigReader(model, 1, address=2, antennas=4, data_sets_per_reply=8)
    door1 = {i.uid for i in model.items_in_field(1, 1)}
    first = reader.handle(feig.Inventory(address=2, ant_sel=0b0001))
    assert first.reply.status == feig.Status.MORE_DATA and len(first.reply.tags) == 8
    assert first.air_s == air.inventory(list(door1)).air_s
    assert all(t.antennas[0].number == 1 for t in first.reply.tags)
    got = {t.uid for t in first.reply.tags}
    while True:
        more = reader.handle(feig.Inventory(address=2, more=True, ant_sel=1))
        assert more.air_s == 0.0
        got |= {t.uid for t in more.reply.tags}
        if more.reply.status == feig.Status.OK:
            break
    assert got == door1
    after = reader.handle(feig.Inventory(address=2, more=True, ant_sel=1))
    assert after.reply.status == feig.Status.NO_TRANSPONDER
    both = reader.handle(feig.Inventory(address=255, ant_sel=0b0110))  # antennas 2 and 3
    assert both.reply.address == 2
    assert {a.number for t in both.reply.tags for a in t.antennas} <= {2, 3}
    empty = reader.handle(feig.Inventory(address=2, ant_sel=0b1000))  # door 4 is empty
    assert empty.reply.status == feig.Status.NO_TRANSPONDER


def test_read_write_eas_and_tag_faults() -> None:
    model = _model()
    reader = FeigReader(model, 1, address=0)
    item = model.items_in_field(1, 1)[0]
    read = reader.handle(feig.ReadMultipleBlocks(address=0, uid=item.uid, first_block=0, count=8))
    assert read.reply.data == item.memory[:32]
    assert read.air_s == air.read_blocks_s(8)
    assert reader.handle(feig.WriteAfi(address=0, uid=item.uid, afi=0xC2)).reply.status == 0
    assert item.afi == 0xC2
    assert reader.handle(feig.SetEas(address=0, uid=item.uid, enabled=False)).reply.status == 0
    assert item.eas is False
    past = reader.handle(feig.ReadMultipleBlocks(address=0, uid=item.uid, first_block=27,
                                                 count=2))
    assert (past.reply.status, past.reply.iso_error) == (feig.Status.ISO_ERROR, 0x10)
    item.unreadable = True
    miss = reader.handle(feig.ReadMultipleBlocks(address=0, uid=item.uid, first_block=0, count=1))
    assert miss.reply.status == feig.Status.NO_TRANSPONDER
    inv = reader.handle(feig.Inventory(address=0))
    assert item.uid not in {t.uid for t in inv.reply.tags}
    assert reader.handle(feig.Inventory(address=7)).reply is None  # another reader's COM-ADR


def test_bytes_over_a_served_port_at_38400_8e1() -> None:
    with serve(lambda m: [FeigReader(m, 1, address=0)], FeigDeviceWire(), baudrate=38400) as bus:
        port = serial.serial_for_url(bus.url, timeout=2)
        try:
            port.write(bytes.fromhex("07 FF B0 01 00 1C 56"))  # the public example frame
            decoder = feig.ResponseDecoder()
            started = time.monotonic()
            while (ev := decoder.next_event()) is NEED_DATA:
                decoder.feed(port.read(1) or b"")
                assert time.monotonic() - started < 3
        finally:
            port.close()
        reply = feig.decode_response(ev, feig.Inventory())
        assert {t.uid for t in reply.tags} == {i.uid for i in bus.model.items_in_field(1, 1)}
        assert len(feig.encode_reply(reply)) == 309  # advanced frame, hardware-limits §6(b)
        assert bus.stats.wire_s == (7 + 309) * 11 / 38400
        assert bus.stats.air_s > 0.2
