"""FEIG driver against its emulator over real socket:// links (no mocks)."""

from __future__ import annotations

import pytest

from drivers.errors import DeviceRejected, DeviceTimeout, TagNotFound
from drivers.families.feig import FeigReader, feig_transport
from drivers.rfid import RfidReader, TagCache, inventory_door
from simulator.families.feig import FeigDeviceWire
from simulator.families.feig import FeigReader as SimFeig
from tests.families_helpers import serve


def _door(bus: object, antenna: int = 1) -> dict[bytes, str]:
    return {i.uid: i.item_id for i in bus.model.items_in_field(1, antenna)}  # type: ignore[attr-defined]


def test_multiplexed_reader_inventories_each_door_with_data() -> None:
    with serve(lambda m: [SimFeig(m, 1, address=3, antennas=4, data_sets_per_reply=12)],
               FeigDeviceWire(), baudrate=38400) as bus:
        transport = feig_transport(bus.url)
        reader = FeigReader(transport, address=3, antennas=4)
        assert isinstance(reader, RfidReader)
        cache = TagCache()
        try:
            for antenna in (1, 2, 3, 4):
                tags = inventory_door(reader, antenna, cache)
                assert {t.uid: t.item_id for t in tags} == _door(bus, antenna)
                assert all(t.rssi < 0 for t in tags)
            again = inventory_door(reader, 1, cache)  # cached: no reads
            assert cache.hits >= 30 and len(again) == 30
            item = bus.model.items_in_field(1, 2)[0]
            reader.write_afi(2, item.uid, 0xC2)
            reader.set_eas(2, item.uid, False)
            assert (item.afi, item.eas) == (0xC2, False)
            with pytest.raises(DeviceRejected):
                reader.inventory(5)
            with pytest.raises(TagNotFound):
                reader.read_tag(4, item.uid)  # not on antenna 4
            item.corrupt_memory()
            [bad] = [t for t in inventory_door(reader, 2) if t.uid == item.uid]
            assert bad.data is None and bad.error
            assert reader.diagnostics()["family"] == "feig"
        finally:
            transport.close()


def test_noisy_line_30_tags_exact_with_data() -> None:
    """1 % of bytes garbled and 5 % of frames dropped, both directions, at 38400 8E1."""
    with serve(lambda m: [SimFeig(m, 1, address=0, data_sets_per_reply=3)],
               FeigDeviceWire(), baudrate=38400) as bus:
        bus.faults.configure(garble_rate=0.01, drop_rate=0.05, seed=11)
        transport = feig_transport(bus.url)
        reader = FeigReader(transport, address=0)
        try:
            tags = inventory_door(reader, 1, TagCache())
        finally:
            transport.close()
        assert {t.uid: t.item_id for t in tags} == _door(bus)
        assert bus.stats.bytes_garbled > 0 and bus.stats.requests_dropped + \
            bus.stats.replies_dropped > 0
        assert transport.counters.retries > 0


def test_silent_reader_raises_device_timeout() -> None:
    with serve(lambda m: [SimFeig(m, 1, address=9)], FeigDeviceWire(), baudrate=38400) as bus:
        transport = feig_transport(bus.url)
        reader = FeigReader(transport, address=8, inventory_timeout_s=0.05)  # nobody at 8
        try:
            with pytest.raises(DeviceTimeout):
                reader.inventory(1)
        finally:
            transport.close()
