"""Property tests: encode_tag -> decode_tag is the identity; random bytes raise only TagDataError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_protocol.errors import TagDataError
from firmware_protocol.iso28560 import Scheme, TagData, decode_tag, encode_tag
from firmware_protocol.iso28560.compaction import (
    applicable_schemes,
    best_scheme,
    compact,
    compact_isil,
    expand,
    expand_isil,
)

DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_"
SIX = " ()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_"
ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
LATIN1 = ASCII + "".join(chr(c) for c in range(0xA0, 0x100))
CHINESE = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)

ITEM_IDS = st.one_of(
    st.integers(min_value=1, max_value=10**30).map(str),                 # integer
    st.text(DIGITS, min_size=2, max_size=20).map(lambda s: "0" + s),     # numeric
    st.text(UPPER, min_size=1, max_size=20),                             # 5-bit
    st.text(SIX, min_size=1, max_size=20).map(lambda s: s + "0-"),      # 6-bit
    st.text(ASCII, min_size=1, max_size=20).map(lambda s: s + "a"),      # 7-bit
    st.text(LATIN1, min_size=1, max_size=20).map(lambda s: s + "é"),     # octet
    st.text(CHINESE, min_size=1, max_size=12),                           # UTF-8
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20),
)
ISIL_PREFIX = st.sampled_from(["DE", "DK", "CN", "FI", "US", "GB", "SE"])
ISILS = st.builds(lambda p, rest: f"{p}-{rest}", ISIL_PREFIX,
                  st.text("ABCXYZabcxyz0123456789-:/", min_size=1, max_size=11))
OTHER_NAMES = st.sampled_from(["shelf_location", "title", "order_number", "local_data_a",
                               "media_format_other", "alternative_item_id", "oid_27", "oid_99"])
OTHER_VALUES = st.one_of(ITEM_IDS, st.binary(min_size=1, max_size=8), st.just(""))


@st.composite
def part2_tags(draw: st.DrawFn) -> TagData:
    total = draw(st.integers(1, 255))
    return TagData(
        primary_item_id=draw(ITEM_IDS),
        owner_library=draw(st.none() | ISILS | st.text(
            st.characters(exclude_categories=("Cs",)), min_size=1, max_size=10)),
        set_info=draw(st.none() | st.builds(lambda p: (p, total), st.integers(1, total))),
        type_of_usage=draw(st.none() | st.integers(0, 255)),
        standard="28560-2",
        other=draw(st.dictionaries(OTHER_NAMES, OTHER_VALUES, max_size=4)),
    )


@st.composite
def part3_tags(draw: st.DrawFn) -> TagData:
    item = draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                      exclude_categories=("Cs",)), min_size=1, max_size=16))
    lib = draw(st.text("ABCXYZabc0123456789-:/", min_size=1, max_size=9))
    other: dict[str, object] = {"version": draw(st.integers(0, 15))}
    for block_id in draw(st.lists(st.integers(0, 0xFEFF), max_size=3, unique=True)):
        other[f"extension_{block_id}"] = draw(st.binary(max_size=20))
    return TagData(primary_item_id=item,
                   owner_library=draw(st.none() | st.builds(lambda p: f"{p}-{lib}", ISIL_PREFIX)),
                   set_info=(draw(st.integers(0, 255)), draw(st.integers(0, 255))),
                   type_of_usage=draw(st.integers(0, 15)), standard="28560-3", other=other)


@settings(max_examples=300, deadline=None)
@given(part2_tags(), st.sampled_from([1, 4, 8]), st.booleans())
def test_part2_roundtrip(data: TagData, block_size: int, align: bool) -> None:
    dsfid, memory = encode_tag(data, block_size=block_size, align_data_sets=align)
    assert dsfid == 0x06 and len(memory) % block_size == 0
    assert decode_tag(memory, dsfid) == data
    assert decode_tag(memory) == data


@settings(max_examples=200, deadline=None)
@given(part3_tags())
def test_part3_roundtrip(data: TagData) -> None:
    dsfid, memory = encode_tag(data, memory_size=112)
    assert len(memory) == 112
    assert decode_tag(memory, dsfid) == data
    assert decode_tag(memory) == data  # recognised by its CRC


@settings(max_examples=300, deadline=None)
@given(ITEM_IDS)
def test_every_applicable_scheme_roundtrips(text: str) -> None:
    for scheme in applicable_schemes(text):
        assert expand(compact(text, scheme), scheme) == text
    chosen = best_scheme(text)
    _, memory = encode_tag(TagData(primary_item_id=text))
    assert Scheme((memory[0] >> 4) & 7) == chosen


def test_alphabets_force_each_scheme() -> None:
    assert best_scheme("123456") == Scheme.INTEGER
    assert best_scheme("0123456") == Scheme.NUMERIC
    assert best_scheme("ABCDEFGH") == Scheme.FIVE_BIT
    assert best_scheme("AB-12.CD") == Scheme.SIX_BIT
    assert best_scheme("abcdefgh") == Scheme.SEVEN_BIT
    assert best_scheme("Müller") == Scheme.OCTET
    assert best_scheme("图书馆") == Scheme.UTF8


@settings(max_examples=300, deadline=None)
@given(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-:/", max_size=16))
def test_isil_compaction_roundtrip(isil: str) -> None:
    assert expand_isil(compact_isil(isil)) == isil


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([None, 0x06, 0x3E, 0x00]))
def test_random_bytes_raise_only_tag_data_errors(memory: bytes, dsfid: int | None) -> None:
    try:
        decode_tag(memory, dsfid)
    except TagDataError:
        pass


@settings(max_examples=500, deadline=None)
@given(part2_tags(), st.data())
def test_corrupted_part2_raises_only_tag_data_errors(data: TagData, draw: st.DataObject) -> None:
    _, memory = encode_tag(data)
    buf = bytearray(memory)
    i = draw.draw(st.integers(0, len(buf) - 1))
    buf[i] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(buf)))
    try:
        decode_tag(bytes(buf[:cut]))
    except TagDataError:
        pass
