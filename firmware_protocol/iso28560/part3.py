"""ISO 28560-3: fixed-length encoding (the Danish data model, DS/INF 163).

Basic block, 32 bytes at the start of user memory::

    byte  0      version (high nibble, 1) | type of usage (low nibble)
    byte  1      number of parts in item
    byte  2      ordinal part number
    bytes 3-18   primary item identifier, left-justified, padded with 0x00
    bytes 19-20  CRC-16, least significant byte first
    bytes 21-22  country of the owner library (ISO 3166-1 alpha-2)
    bytes 23-31  owner library: the ISIL after its prefix, padded with 0x00

The CRC is CRC-16 with polynomial x^16 + x^12 + x^5 + 1 (0x1021), preset 0xFFFF, MSB first,
not inverted, over bytes 0-18 and 21-31 followed by two 0x00 bytes (the CRC field's place
counted at the end). Checked against the Danish model's reference ("RFID tag data model" ->
0x1AEE) and a published tag (see SOURCES.md).

Optional blocks follow from byte 32, each framed as ``length, id (16 bit, LSB first),
checksum, data``: the length counts the whole frame; 0 ends the blocks, 1 is a one-byte
filler; the checksum makes the XOR of the whole frame 0x00. Their contents are kept as bytes
under ``other["extension_<id>"]``: their inner layouts are not decoded further.
"""

from __future__ import annotations

from .errors import (
    BadDataElement,
    BadExtensionBlock,
    TagCrcError,
    TagEncodeError,
    TruncatedTagData,
)
from .model import STANDARD_PART3, TagData
from .part2 import fill_memory

__all__ = [
    "BASIC_BLOCK",
    "DSFID",
    "block_crc",
    "crc16",
    "crc_ok",
    "decode_part3",
    "encode_part3",
    "looks_like_part3",
]

#: DSFID this codec writes for 28560-3 tags (see README: not confirmed from the standard).
DSFID = 0x3E
BASIC_BLOCK = 32
_ID = slice(3, 19)
_COUNTRY = slice(21, 23)
_LIBRARY = slice(23, 32)


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/0x1021, preset 0xFFFF, MSB first, no final XOR (ISO/IEC 13239 forward form)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def block_crc(block: bytes) -> int:
    """The CRC a 32-byte basic block should carry in bytes 19-20."""
    return crc16(block[0:19] + block[21:32] + b"\x00\x00")


def crc_ok(memory: bytes) -> bool:
    """Whether ``memory`` starts with a basic block whose CRC matches."""
    if len(memory) < BASIC_BLOCK:
        return False
    return block_crc(memory) == int.from_bytes(memory[19:21], "little")


def _text(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("latin-1")


def looks_like_part3(memory: bytes) -> bool:
    """Heuristic for recognition: a version nibble of 1 or 2, a printable item id, a country.

    Used only to choose which error to raise when neither layout decodes.
    """
    if len(memory) < 4 or memory[0] >> 4 not in (1, 2):
        return False
    item = memory[3:19].split(b"\x00", 1)[0]
    if not item or any(b < 0x20 or 0x7F <= b < 0xA0 for b in item):
        return False
    if len(memory) >= 23:
        country = memory[_COUNTRY]
        if country != b"\x00\x00" and not all(0x41 <= b <= 0x5A for b in country):
            return False
    return True


def _extensions(memory: bytes) -> dict[str, object]:
    out: dict[str, object] = {}
    pos = BASIC_BLOCK
    while pos < len(memory):
        if all(b in (0x00, 0xFF) for b in memory[pos:]) and memory[pos] != 0x01:
            break  # end block, or unwritten memory
        length = memory[pos]
        if length == 0:
            break
        if length == 1:
            pos += 1
            continue
        if length < 4:
            raise BadExtensionBlock(f"extension block at byte {pos} has length {length} < 4")
        if pos + length > len(memory):
            raise TruncatedTagData(f"extension block at byte {pos} runs past the end of memory")
        frame = memory[pos:pos + length]
        check = 0
        for b in frame:
            check ^= b
        if check:
            raise BadExtensionBlock(f"extension block at byte {pos} fails its XOR checksum")
        block_id = frame[1] | (frame[2] << 8)
        out[f"extension_{block_id}"] = bytes(frame[4:])
        pos += length
    return out


def decode_part3(memory: bytes) -> TagData:
    """Decode ISO 28560-3 memory: the basic block and any extension blocks.

    Raises:
        TruncatedTagData: fewer than 32 bytes, or an extension block cut off.
        TagCrcError: the basic block's CRC does not match.
        BadDataElement: no primary item identifier.
        BadExtensionBlock: an extension frame with a bad length or checksum.
    """
    mem = bytes(memory)
    if len(mem) < BASIC_BLOCK:
        raise TruncatedTagData(f"ISO 28560-3 needs {BASIC_BLOCK} bytes, got {len(mem)}")
    stored, computed = int.from_bytes(mem[19:21], "little"), block_crc(mem)
    if stored != computed:
        raise TagCrcError(f"basic block CRC is {stored:#06x}, contents give {computed:#06x}")
    item_id = _text(mem[_ID])
    if not item_id:
        raise BadDataElement("ISO 28560-3 block with an empty primary item identifier")
    country, library = _text(mem[_COUNTRY]), _text(mem[_LIBRARY])
    owner = "-".join(p for p in (country, library) if p) or None
    other: dict[str, object] = {"version": mem[0] >> 4}
    other.update(_extensions(mem))
    return TagData(primary_item_id=item_id, owner_library=owner,
                   set_info=(mem[2], mem[1]), type_of_usage=mem[0] & 0x0F,
                   standard=STANDARD_PART3, other=other)


def _field(text: str, size: int, what: str) -> bytes:
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise TagEncodeError(f"{what} {text!r} is not ISO/IEC 8859-1") from exc
    if len(raw) > size or b"\x00" in raw:
        raise TagEncodeError(f"{what} {text!r} does not fit {size} bytes (or holds NUL)")
    return raw.ljust(size, b"\x00")


def encode_part3(data: TagData, *, block_size: int = 4, memory_size: int | None = None) -> bytes:
    """Encode ``data`` as an ISO 28560-3 basic block plus extension blocks.

    ``type_of_usage`` None is written as 1 (circulating item) and ``set_info`` None as part
    1 of 1, since the fixed layout has no "absent". ``other`` may hold ``version`` (0..15,
    default 1) and ``extension_<id>`` bytes.

    Raises:
        TagEncodeError: a field does not fit its fixed width, or the ISIL has no 2-letter
            prefix, or the result exceeds ``memory_size``.
    """
    version = 1
    extensions: list[tuple[int, bytes]] = []
    for name, value in data.other.items():
        if name == "version" and isinstance(value, int) and 0 <= value <= 15:
            version = value
        elif (name.startswith("extension_") and name[10:].isdigit()
              and isinstance(value, (bytes, bytearray)) and int(name[10:]) < 0xFF00):
            extensions.append((int(name[10:]), bytes(value)))
        else:
            raise TagEncodeError(f"ISO 28560-3 cannot store other[{name!r}] = {value!r}")
    usage = 1 if data.type_of_usage is None else data.type_of_usage
    if not 0 <= usage <= 15:
        raise TagEncodeError(f"type of usage {usage} is not a nibble (0..15)")
    part, total = data.set_info if data.set_info is not None else (1, 1)
    if not (0 <= part <= 255 and 0 <= total <= 255):
        raise TagEncodeError(f"set information {data.set_info} does not fit a byte each")
    if not data.primary_item_id:
        raise TagEncodeError("the primary item identifier is empty")
    country, library = "", ""
    if data.owner_library:
        if len(data.owner_library) < 3 or data.owner_library[2] != "-":
            raise TagEncodeError(
                f"ISIL {data.owner_library!r} has no 2-letter country prefix for ISO 28560-3")
        country, library = data.owner_library[:2], data.owner_library[3:]
    block = bytearray(BASIC_BLOCK)
    block[0] = (version << 4) | usage
    block[1], block[2] = total, part
    block[_ID] = _field(data.primary_item_id, 16, "primary item identifier")
    block[_COUNTRY] = _field(country, 2, "country")
    block[_LIBRARY] = _field(library, 9, "library part of the ISIL")
    block[19:21] = block_crc(bytes(block)).to_bytes(2, "little")
    body = bytes(block)
    for block_id, payload in sorted(extensions):
        if len(payload) + 4 > 255:
            raise TagEncodeError(f"extension block {block_id} is longer than 251 bytes")
        frame = bytearray([len(payload) + 4, block_id & 0xFF, block_id >> 8, 0]) + payload
        check = 0
        for b in frame:
            check ^= b
        frame[3] = check
        body += bytes(frame)
    if extensions:
        body += b"\x00"  # end block
    return fill_memory(body, block_size, memory_size)
