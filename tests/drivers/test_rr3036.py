"""RR3036 driver against its emulator over real socket:// links (no mocks)."""

from __future__ import annotations

import pytest

from drivers.errors import DeviceRejected, NotSupported
from drivers.families.rr3036 import RR3036Reader, rr3036_transport
from drivers.rfid import RfidReader, TagCache, inventory_door
from simulator.families.rr3036 import RR3036DeviceWire, RR3036Module
from tests.families_helpers import serve


def _door(bus: object) -> dict[bytes, str]:
    return {i.uid: i.item_id for i in bus.model.items_in_field(1, 1)}  # type: ignore[attr-defined]


def test_thirty_tags_over_two_replies_with_data_and_writes() -> None:
    with serve(lambda m: [RR3036Module(m, 1, address=0)], RR3036DeviceWire(),
               baudrate=19200) as bus:
        transport = rr3036_transport(bus.url)
        reader = RR3036Reader(transport, address=0, antenna=1)
        assert isinstance(reader, RfidReader)
        try:
            for _ in range(2):  # the second run starts from quiet tags: the RF reset wakes them
                tags = inventory_door(reader, 1, TagCache())
                assert {t.uid: t.item_id for t in tags} == _door(bus)
            item = bus.model.items_in_field(1, 1)[0]
            reader.write_afi(1, item.uid, 0xC2)
            assert item.afi == 0xC2
            with pytest.raises(NotSupported):
                reader.set_eas(1, item.uid, True)
            with pytest.raises(DeviceRejected):
                reader.inventory(2)  # one module per antenna
            assert reader.identify()["scan_time"] > 0
        finally:
            transport.close()


def test_noisy_line_30_tags_exact_with_data() -> None:
    """1 % of bytes garbled and 5 % of frames dropped, both directions, at 19200 8N1."""
    with serve(lambda m: [RR3036Module(m, 1, address=0, uids_per_reply=5)],
               RR3036DeviceWire(), baudrate=19200) as bus:
        bus.faults.configure(garble_rate=0.01, drop_rate=0.05, seed=5)
        transport = rr3036_transport(bus.url)
        reader = RR3036Reader(transport, address=0)
        try:
            tags = inventory_door(reader, 1, TagCache())
        finally:
            transport.close()
        assert {t.uid: t.item_id for t in tags} == _door(bus)
        assert bus.stats.bytes_garbled > 0 and transport.counters.retries > 0


def test_late_replies_never_pass_for_the_next_blocks_answer() -> None:
    """RR3036 replies carry no request number. Every reply here comes 200 ms late, past the
    150 ms timeout: each block read is re-sent once and the first attempt's reply taken; the
    second attempt's reply then arrives while the next block is being asked for. Without a
    quiet wait it passed for that block's answer (one tag's memory stitched from another
    read): every tag must still read as itself."""
    with serve(lambda m: [RR3036Module(m, 1, address=0)], RR3036DeviceWire(),
               baudrate=19200) as bus:
        bus.faults.configure(delay_ms=200)
        transport = rr3036_transport(bus.url)
        reader = RR3036Reader(transport, address=0, antenna=1)
        expected = _door(bus)
        try:
            for uid in list(expected)[:3]:
                assert reader.read_tag(1, uid).primary_item_id == expected[uid]
        finally:
            transport.close()
        assert transport.counters.retries > 0  # the replies really were late
