"""Hand-checked ISO 28560 vectors from public sources (see firmware_protocol/iso28560/SOURCES.md)."""

from __future__ import annotations

import pytest

from firmware_protocol.iso28560 import (
    BadCompaction,
    BadPrecursor,
    BlankTag,
    Scheme,
    TagCrcError,
    TagData,
    TruncatedTagData,
    UnknownLayout,
    decode_tag,
    encode_tag,
)
from firmware_protocol.iso28560.compaction import compact, compact_isil, expand, expand_isil
from firmware_protocol.iso28560.part2 import encode_data_set
from firmware_protocol.iso28560.part3 import crc16

# libdanrfid (GallusMax/libdanrfid, src/test/java/org/rfid/libdanrfid/DDMDataTest.java):
# a Danish-model tag: version 1 / usage 1, 1 part, part 1, item "11223344", CRC 0x3E51
# stored LSB first, country "DE", library "705".
DDM_VECTOR = bytes.fromhex("11010131313232333334340000000000000000513e4445373035000000000000")


def test_danish_crc_reference_string() -> None:
    # The Danish data model's reference CRC (also libdanrfid CRC.java): "RFID tag data model".
    assert crc16(b"RFID tag data model") == 0x1AEE


def test_part3_published_tag_decodes() -> None:
    tag = decode_tag(DDM_VECTOR)
    assert tag == TagData(primary_item_id="11223344", owner_library="DE-705", set_info=(1, 1),
                          type_of_usage=1, standard="28560-3", other={"version": 1})


def test_part3_published_tag_reencodes_byte_exact() -> None:
    dsfid, memory = encode_tag(decode_tag(DDM_VECTOR))
    assert memory == DDM_VECTOR
    assert dsfid == 0x3E


def test_part3_isil_split_and_joined() -> None:
    data = TagData(primary_item_id="5000123", owner_library="DK-710100", set_info=(2, 3),
                   type_of_usage=1, standard="28560-3")
    _, memory = encode_tag(data)
    assert memory[21:23] == b"DK" and memory[23:32] == b"710100\0\0\0"
    assert memory[1] == 3 and memory[2] == 2  # parts in item, then ordinal part number
    assert decode_tag(memory).owner_library == "DK-710100"


# GOST R ISO 28560-2-2014 (the Russian adoption of ISO 28560-2), Annex D, tables D.5/D.6:
#   primary item id 123456789012, integer compaction: 91 00 05 1C BE 99 1A 14
#   set information "1203" (12 parts, part 3), integer compaction: 14 02 04 B3
#   shelf location "QA268.L55", 6-bit compaction: 44 1C B6 E2 E3 35 D6
#   (the scanned table reads "44 1C 86 E2 E3 35 06"; B/8 and D/0 are OCR confusions,
#   the bits below settle it).
def test_gost_annex_d_integer_item_id() -> None:
    assert compact("123456789012", Scheme.INTEGER) == bytes.fromhex("1cbe991a14")
    assert encode_data_set(1, bytes.fromhex("1cbe991a14"), Scheme.INTEGER, pad=0) == \
        bytes.fromhex("9100051cbe991a14")


def test_gost_annex_d_set_information() -> None:
    assert compact("1203", Scheme.INTEGER) == bytes.fromhex("04b3")
    assert encode_data_set(4, bytes.fromhex("04b3"), Scheme.INTEGER) == bytes.fromhex("140204b3")


def test_gost_annex_d_six_bit_shelf_location() -> None:
    # Q=010001 A=000001 2=110010 6=110110 8=111000 .=101110 L=001100 5=110101 5=110101,
    # 54 bits + pad "10" (leading bits of EOT 100001):
    # 01000100 00011100 10110110 11100010 11100011 00110101 11010110
    assert compact("QA268.L55", Scheme.SIX_BIT) == bytes.fromhex("441cb6e2e335d6")
    assert expand(bytes.fromhex("441cb6e2e335d6"), Scheme.SIX_BIT) == "QA268.L55"


def test_gost_annex_d_whole_memory_decodes() -> None:
    # The Annex D data sets in sequence (content parameter computed by hand: OIDs 4 and 6
    # present -> bits for OIDs 3,4,5,6 = 0101 -> 0x50), then the terminator.
    memory = bytes.fromhex("9100051cbe991a14" "020150" "140204b3" "4607441cb6e2e335d6" "00")
    tag = decode_tag(memory, 0x06)
    assert tag.primary_item_id == "123456789012"
    assert tag.set_info == (3, 12)
    assert tag.other == {"shelf_location": "QA268.L55"}
    assert decode_tag(memory) == tag  # recognised without the DSFID


def test_isil_compaction_hand_derived() -> None:
    # "DE-705": upper set D=00100 E=00101 -=00000, latch numeric 11110, then 4-bit
    # 7=0111 0=0000 5=0101: 32 bits, no pad: 00100001 01000001 11100111 00000101 = 21 41 e7 05
    assert compact_isil("DE-705") == bytes.fromhex("2141e705")
    assert expand_isil(bytes.fromhex("2141e705")) == "DE-705"
    assert expand_isil(compact_isil("FI-He")) == "FI-He"


def test_extended_relative_oid() -> None:
    # title is relative OID 17: precursor low nibble 1111, next byte 17 - 15 = 2.
    data_set = encode_data_set(17, b"ab", Scheme.OCTET)
    assert data_set == bytes([0x6F, 0x02, 0x02]) + b"ab"


def test_blank_and_truncated_and_crc() -> None:
    with pytest.raises(BlankTag):
        decode_tag(bytes(32))
    with pytest.raises(BlankTag):
        decode_tag(b"\xff" * 8)
    with pytest.raises(TruncatedTagData):
        decode_tag(b"")
    with pytest.raises(TruncatedTagData):
        decode_tag(DDM_VECTOR[:20])
    with pytest.raises(TruncatedTagData):
        decode_tag(DDM_VECTOR[:20], 0x3E)
    flipped = bytearray(DDM_VECTOR)
    flipped[19] ^= 0x01
    with pytest.raises(TagCrcError):
        decode_tag(bytes(flipped))
    with pytest.raises(TagCrcError):
        decode_tag(bytes(flipped), 0x3E)
    damaged = bytearray(DDM_VECTOR)
    damaged[5] ^= 0x40
    with pytest.raises(TagCrcError):
        decode_tag(bytes(damaged))


def test_part2_truncated_and_bad() -> None:
    _, memory = encode_tag(TagData(primary_item_id="ABC123", owner_library="DE-705"))
    with pytest.raises(TruncatedTagData):
        decode_tag(memory[:4], 0x06)
    with pytest.raises(BadPrecursor):
        decode_tag(bytes([0x13, 0x01, 0x10, 0x00]), 0x06)  # starts with OID 3
    with pytest.raises(BadPrecursor):
        decode_tag(bytes.fromhex("110101" "110102" "00"), 0x06)  # OID 1 twice
    with pytest.raises(BadCompaction):
        decode_tag(bytes.fromhex("2101ab00"), 0x06)  # numeric nibble 0xA
    with pytest.raises(BadCompaction):
        decode_tag(bytes.fromhex("7102c3 2800"), 0x06)  # invalid UTF-8
    with pytest.raises(UnknownLayout):
        decode_tag(bytes.fromhex("0203040506"))
