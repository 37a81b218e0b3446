"""The RFID reader behind the board's antenna multiplexer, and the inventory merge logic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import TagNotFound
from drivers.hardware import Hardware
from drivers.rfid import (
    NOISY_PAGE_SIZE,
    RfidReader,
    TagCache,
    TagSeen,
    inventory_door,
    merge_pages,
)
from simulator import Simulator


def test_reader_satisfies_the_interface(hw: Hardware) -> None:
    assert isinstance(hw.readers[1], RfidReader)


def test_thirty_tags_over_two_pages_with_data(sim: Simulator, hw: Hardware) -> None:
    truth = {i.uid: i for i in sim.door_items(1)}
    assert len(truth) == 30
    tags = inventory_door(hw.readers[1], 1, hw.tag_cache)
    assert {t.uid for t in tags} == set(truth)
    for t in tags:
        item = truth[t.uid]
        assert t.item_id == item.item_id and t.data is not None
        assert t.data.owner_library == item.owner_library and t.dsfid == item.dsfid
        assert -128 <= t.rssi < 0
    assert len(hw.tag_cache) == 30


def test_warm_cache_reads_no_tag_data(sim: Simulator, hw: Hardware) -> None:
    inventory_door(hw.readers[1], 1, hw.tag_cache)
    before = hw.buses["usb-1"].counters.requests
    tags = inventory_door(hw.readers[1], 1, hw.tag_cache)
    assert hw.buses["usb-1"].counters.requests - before == 2  # two inventory pages, no reads
    assert all(t.data is not None for t in tags)


def test_noisy_line_switches_to_small_pages_and_back(sim: Simulator, hw: Hardware) -> None:
    reader = hw.readers[1]
    truth = {i.uid for i in sim.door_items(1)}
    sim.set_link_faults("usb-1", garble_rate=0.01, seed=7)
    first = reader.inventory(1)  # full pages: re-sends needed
    assert {t.uid for t in first} == truth and reader.page_size == NOISY_PAGE_SIZE
    second = reader.inventory(1)  # eight small pages, same exact result
    assert {t.uid for t in second} == truth and len(second) == 30
    sim.set_link_faults("usb-1")
    reader.inventory(1)  # the clean inventory still uses small pages, then goes back
    requests = hw.buses["usb-1"].counters.requests
    assert {t.uid for t in reader.inventory(1)} == truth
    assert hw.buses["usb-1"].counters.requests - requests == 2  # 30 tags in two full pages
    assert reader.page_size == 24


def test_moved_books_are_seen(sim: Simulator, hw: Hardware) -> None:
    reader = hw.readers[1]
    moved = sim.door_items(2)[0]
    hw.boards[1].unlock(2, pulse_ms=20)
    sim.take_item(moved.item_id)
    assert moved.uid not in {t.uid for t in reader.inventory(2)}
    hw.boards[1].unlock(4, pulse_ms=20)
    sim.put_item(moved.item_id, 4)
    assert [t.uid for t in reader.inventory(4)] == [moved.uid]


def test_unreadable_tag_is_missing_and_read_raises(sim: Simulator, hw: Hardware) -> None:
    item = sim.door_items(3)[0]
    sim.make_tag_unreadable(item.item_id)
    reader = hw.readers[1]
    assert item.uid not in {t.uid for t in reader.inventory(3)}
    with pytest.raises(TagNotFound):
        reader.read_tag(3, item.uid)


def test_write_afi_and_eas(sim: Simulator, hw: Hardware) -> None:
    item = sim.door_items(2)[0]
    reader = hw.readers[1]
    reader.write_afi(2, item.uid, 0xC2)
    reader.set_eas(2, item.uid, False)
    assert sim.items[item.item_id].afi == 0xC2 and sim.items[item.item_id].eas is False
    with pytest.raises(TagNotFound):
        reader.write_afi(2, b"\xe0" + bytes(7), 0x07)


uids = st.binary(min_size=8, max_size=8)
tag = st.builds(TagSeen, uid=uids, dsfid=st.integers(0, 255), rssi=st.integers(-128, 127))


@given(st.lists(st.lists(tag, max_size=24), max_size=5))
def test_merge_keeps_each_uid_once_with_best_rssi(pages: list[list[TagSeen]]) -> None:
    merged = merge_pages(pages)
    flat = [t for p in pages for t in p]
    assert [t.uid for t in merged] == list(dict.fromkeys(t.uid for t in flat))
    for t in merged:
        assert t.rssi == max(x.rssi for x in flat if x.uid == t.uid)


@given(st.lists(uids, max_size=60), st.integers(1, 20))
def test_tag_cache_is_bounded_lru(keys: list[bytes], size: int) -> None:
    cache = TagCache(max_entries=size)
    for k in keys:
        cache.put(k, object())  # type: ignore[arg-type]
    assert len(cache) <= size
    recent = list(dict.fromkeys(reversed(keys)))[:size]
    assert all(k in cache for k in recent)


def test_data_past_the_first_blocks_is_read_to_its_terminator() -> None:
    """An item id filling the first blocks exactly would decode on its own; the reader must
    still read on until the data's terminator, or the owner library behind it is lost."""
    from drivers.rfid import read_tag_data
    from firmware_protocol.iso28560 import TagData, encode_tag

    data = TagData(primary_item_id="3901000084585", owner_library="CN-440300",
                   other={"shelf_location": "I247.5/123"})
    dsfid, memory = encode_tag(data, memory_size=112)
    reads: list[tuple[int, int]] = []

    def read(first: int, count: int) -> bytes:
        reads.append((first, count))
        return memory[first * 4:(first + count) * 4]

    for first_blocks in range(1, 12):
        reads.clear()
        got = read_tag_data(read, b"\xe0" * 8, dsfid, first_blocks=first_blocks, max_blocks=28)
        assert got.primary_item_id == data.primary_item_id
        assert got.owner_library == "CN-440300" and got.other["shelf_location"] == "I247.5/123"
        assert len(reads) <= 2
