"""ISO 28560-2: object-based encoding of library data elements (ISO/IEC 15962 rules, DSFID 0x06).

Memory layout, one *data set* after another from the first byte of user memory::

    precursor  [offset]  [OID ext]  length  compacted data  [pad bytes]   ...   00 (terminator)

* precursor (1 byte): bit 8 = offset flag, bits 7..5 = compaction scheme
  (:class:`~.compaction.Scheme`), bits 4..1 = relative OID 1..14; 15 (``1111``) means the
  relative OID is 15 + the value of the byte that follows (the extended form).
* offset (1 byte, only with the offset flag): how many pad bytes (0x00) follow the data, so
  the next data set starts on a block boundary and this one can be locked on its own.
* length: bytes of compacted data, one byte below 128, else an EBV-8 (bit 8 = "more").
* The primary item identifier (OID 1) comes first, the content parameter (OID 2, a bit map
  of the OIDs 3, 4, 5... present, MSB first) second when present, the rest in any order.
* A 0x00 byte where a precursor would be ends the data (the terminator); so does the end of
  memory.

Element values: OID 3 (owner library) is the full ISIL, compacted with the ISIL code under
scheme 0; OID 4 (set information) is a digit string whose first half is the number of parts
and second half the ordinal part ("1203" = part 3 of 12); OID 5 (type of usage) is one byte,
class in the high nibble, sub-class in the low nibble (scheme 0).
"""

from __future__ import annotations

from .compaction import (
    Scheme,
    best_scheme,
    compact,
    compact_isil,
    expand,
    expand_isil,
    isil_compactable,
)
from .errors import (
    BadDataElement,
    BadPrecursor,
    TagEncodeError,
    TruncatedTagData,
)
from .model import ELEMENT_NAMES, ELEMENT_OIDS, STANDARD_PART2, TagData

__all__ = ["DSFID", "decode_part2", "decode_part2_checked", "encode_data_set", "encode_part2"]

DSFID = 0x06
_OID_PRIMARY, _OID_CONTENT, _OID_OWNER, _OID_SET, _OID_USAGE = 1, 2, 3, 4, 5
_EXTENDED_OID = 0x0F


def _read_ebv(memory: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(3):
        if pos >= len(memory):
            raise TruncatedTagData(f"length field runs past the end of memory at byte {pos}")
        b = memory[pos]
        pos += 1
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            return value, pos
        if i == 0 and b == 0x80:
            raise BadPrecursor("length field with a leading zero group")
    raise BadPrecursor("length field longer than 3 bytes")


def _write_ebv(n: int) -> bytes:
    groups = [n & 0x7F]
    n >>= 7
    while n:
        groups.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(groups))


def _element_name(oid: int) -> str:
    return ELEMENT_NAMES.get(oid, f"oid_{oid}")


def _oid_of(name: str) -> int:
    if name in ELEMENT_OIDS:
        return ELEMENT_OIDS[name]
    if name.startswith("oid_") and name[4:].isdigit():
        return int(name[4:])
    raise TagEncodeError(f"{name!r} is not an ISO 28560-2 data element name (nor 'oid_<n>')")


def _split_set(digits: str) -> tuple[int, int]:
    if not digits or len(digits) % 2 or not digits.isdigit():
        raise BadDataElement(f"set information {digits!r} is not an even-length digit string")
    half = len(digits) // 2
    total, part = int(digits[:half]), int(digits[half:])
    return part, total


def _value(oid: int, scheme: Scheme, data: bytes) -> object:
    if oid == _OID_OWNER and scheme == Scheme.APPLICATION:
        return expand_isil(data)
    if oid == _OID_USAGE and scheme in (Scheme.APPLICATION, Scheme.INTEGER):
        if not data:
            raise BadDataElement("type of usage with no bytes")
        return int.from_bytes(data, "big")
    if oid == _OID_CONTENT and scheme == Scheme.APPLICATION:
        return tuple(3 + i for i in range(len(data) * 8)
                     if data[i // 8] & (0x80 >> (i % 8)))
    if scheme == Scheme.APPLICATION:
        return bytes(data)
    return expand(data, scheme)


def decode_part2_checked(memory: bytes) -> tuple[TagData, bool]:
    """Decode ISO 28560-2 memory and say whether it ended cleanly.

    Returns:
        The tag data, and True when the data sets ended at a terminator (or exactly at the end
        of memory) with nothing but 0x00/0xFF after it; recognition uses this to tell a real
        28560-2 tag from a damaged 28560-3 block that happens to parse.

    Raises:
        TruncatedTagData, BadPrecursor, BadCompaction, BadDataElement: see their docs.
    """
    mem = bytes(memory)
    pos = 0
    found: dict[int, tuple[Scheme, bytes]] = {}
    order: list[int] = []
    while pos < len(mem):
        precursor = mem[pos]
        if precursor == 0:
            break
        pos += 1
        has_offset = bool(precursor & 0x80)
        scheme = Scheme((precursor >> 4) & 0x07)
        oid = precursor & 0x0F
        if oid == 0:
            raise BadPrecursor(f"precursor {precursor:#04x} at byte {pos - 1} names OID 0")
        pad = 0
        if has_offset:
            if pos >= len(mem):
                raise TruncatedTagData("offset byte missing at the end of memory")
            pad = mem[pos]
            pos += 1
        if oid == _EXTENDED_OID:
            if pos >= len(mem):
                raise TruncatedTagData("extended OID byte missing at the end of memory")
            oid = 15 + mem[pos]
            pos += 1
        length, pos = _read_ebv(mem, pos)
        if pos + length > len(mem):
            raise TruncatedTagData(
                f"OID {oid} declares {length} bytes, only {len(mem) - pos} remain")
        data = mem[pos:pos + length]
        pos += length
        if pos + pad > len(mem):
            raise TruncatedTagData(f"OID {oid} declares {pad} pad bytes past the end of memory")
        pos += pad
        if not order and oid != _OID_PRIMARY:
            raise BadPrecursor(f"first data set is OID {oid}, not the primary item identifier")
        if oid in found:
            raise BadPrecursor(f"OID {oid} appears twice")
        found[oid] = (scheme, data)
        order.append(oid)
    if not order:
        raise BadPrecursor("no data set before the terminator")
    clean = all(b in (0x00, 0xFF) for b in mem[pos + 1:]) if pos < len(mem) else True

    scheme, raw = found.pop(_OID_PRIMARY)
    if scheme == Scheme.APPLICATION:
        raise BadDataElement("primary item identifier with application-defined compaction")
    item_id = expand(raw, scheme)
    if not item_id:
        raise BadDataElement("empty primary item identifier")
    owner: str | None = None
    set_info: tuple[int, int] | None = None
    usage: int | None = None
    other: dict[str, object] = {}
    content: tuple[int, ...] | None = None
    for oid in order[1:]:
        scheme, raw = found[oid]
        value = _value(oid, scheme, raw)
        if oid == _OID_CONTENT:
            content = value if isinstance(value, tuple) else None
            if content is None:
                other[_element_name(oid)] = value
        elif oid == _OID_OWNER:
            owner = str(value)  # ISIL code or a string scheme: always text
        elif oid == _OID_SET:
            if not isinstance(value, str):
                raise BadDataElement("set information with application-defined compaction")
            set_info = _split_set(value)
        elif oid == _OID_USAGE:
            if not isinstance(value, int):
                raise BadDataElement(f"type of usage is not a number: {value!r}")
            usage = value
        else:
            other[_element_name(oid)] = value
    if content is not None and set(content) != {o for o in order if o > 2}:
        other["content_parameter"] = content
    tag = TagData(primary_item_id=item_id, owner_library=owner, set_info=set_info,
                  type_of_usage=usage, standard=STANDARD_PART2, other=other)
    return tag, clean


def decode_part2(memory: bytes) -> TagData:
    """Decode ISO 28560-2 user memory (see the module docstring for the layout).

    Raises:
        TruncatedTagData, BadPrecursor, BadCompaction, BadDataElement
    """
    return decode_part2_checked(memory)[0]


def encode_data_set(oid: int, data: bytes, scheme: Scheme, *, pad: int | None = None) -> bytes:
    """One data set: precursor, optional offset and OID extension, length, data, pad bytes.

    Args:
        oid: relative OID, 1..270.
        data: the compacted bytes.
        scheme: the compaction scheme they were made with.
        pad: number of 0x00 pad bytes after the data; None writes no offset byte at all.

    Raises:
        TagEncodeError: OID or pad out of range.
    """
    if not 1 <= oid <= 15 + 255:
        raise TagEncodeError(f"relative OID {oid} outside 1..270")
    if pad is not None and not 0 <= pad <= 255:
        raise TagEncodeError(f"pad count {pad} outside 0..255")
    precursor = (0x80 if pad is not None else 0) | (int(scheme) << 4) | min(oid, _EXTENDED_OID)
    out = bytearray([precursor])
    if pad is not None:
        out.append(pad)
    if oid >= _EXTENDED_OID:
        out.append(oid - 15)
    out += _write_ebv(len(data))
    out += data
    out += bytes(pad or 0)
    return bytes(out)


def _compact_any(value: object) -> tuple[Scheme, bytes]:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return Scheme.APPLICATION, bytes(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TagEncodeError(f"cannot encode a {type(value).__name__} on a tag")
    text = str(value)
    scheme = best_scheme(text)
    return scheme, compact(text, scheme)


def _elements(data: TagData) -> list[tuple[int, Scheme, bytes]]:
    if not data.primary_item_id:
        raise TagEncodeError("the primary item identifier is empty")
    scheme = best_scheme(data.primary_item_id)
    items: dict[int, tuple[Scheme, bytes]] = {}
    if data.owner_library is not None:
        if data.owner_library and isil_compactable(data.owner_library):
            items[_OID_OWNER] = (Scheme.APPLICATION, compact_isil(data.owner_library))
        else:
            items[_OID_OWNER] = _compact_any(data.owner_library)
    if data.set_info is not None:
        part, total = data.set_info
        if not (0 <= part and 1 <= total):
            raise TagEncodeError(f"set information {data.set_info} is not (part, total)")
        width = max(len(str(total)), len(str(part)))
        digits = str(total).zfill(width) + str(part).zfill(width)
        s = best_scheme(digits)
        items[_OID_SET] = (s, compact(digits, s))
    if data.type_of_usage is not None:
        if not 0 <= data.type_of_usage <= 0xFF:
            raise TagEncodeError(f"type of usage {data.type_of_usage} is not one byte")
        items[_OID_USAGE] = (Scheme.APPLICATION, bytes([data.type_of_usage]))
    content: tuple[int, ...] | None = None
    for name, value in data.other.items():
        if name == "content_parameter":
            content = tuple(int(o) for o in value)  # type: ignore[attr-defined]
            continue
        oid = _oid_of(name)
        if oid in (_OID_PRIMARY, _OID_CONTENT, _OID_OWNER, _OID_SET, _OID_USAGE) or oid in items:
            raise TagEncodeError(f"{name!r} duplicates a TagData field")
        items[oid] = _compact_any(value)
    if content is None and items:
        content = tuple(sorted(items))
    out = [(_OID_PRIMARY, scheme, compact(data.primary_item_id, scheme))]
    if content is not None:
        if any(o < 3 for o in content):
            raise TagEncodeError("the content parameter lists OIDs from 3 up")
        nbits = max(content, default=2) - 2
        bitmap = bytearray((nbits + 7) // 8)
        for o in content:
            bitmap[(o - 3) // 8] |= 0x80 >> ((o - 3) % 8)
        out.append((_OID_CONTENT, Scheme.APPLICATION, bytes(bitmap)))
    out += [(oid, s, raw) for oid, (s, raw) in sorted(items.items())]
    return out


def encode_part2(data: TagData, *, block_size: int = 4, memory_size: int | None = None,
                 align_data_sets: bool = False) -> bytes:
    """Encode ``data`` as ISO 28560-2 user memory.

    Args:
        data: what to write; ``data.other`` values: ``str`` (best compaction chosen), ``int``
            (written as its decimal string), ``bytes`` (application-defined, scheme 0).
        block_size: memory is padded with 0x00 to a multiple of this.
        memory_size: if given, pad to exactly this many bytes.
        align_data_sets: give every data set an offset byte and pad bytes so that the next
            starts on a block boundary (what an encoder does for data it will lock).

    Raises:
        TagEncodeError: a value cannot be encoded, or the result exceeds ``memory_size``.
    """
    if block_size < 1:
        raise TagEncodeError("block_size must be at least 1")
    out = bytearray()
    for oid, scheme, raw in _elements(data):
        if align_data_sets:
            bare = len(encode_data_set(oid, raw, scheme, pad=0))
            pad = -(len(out) + bare) % block_size
            out += encode_data_set(oid, raw, scheme, pad=pad)
        else:
            out += encode_data_set(oid, raw, scheme)
    out.append(0x00)  # terminator
    return _fill(bytes(out), block_size, memory_size)


def _fill(body: bytes, block_size: int, memory_size: int | None) -> bytes:
    size = len(body) + (-len(body) % block_size)
    if memory_size is not None:
        if size > memory_size:
            raise TagEncodeError(
                f"{len(body)} bytes of tag data (in blocks of {block_size}) do not fit "
                f"{memory_size} bytes of memory")
        size = memory_size
    return body + bytes(size - len(body))


#: The padding rule, shared with part3.
fill_memory = _fill
