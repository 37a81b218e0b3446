"""Entry points: recognise the layout of tag memory, decode it, and encode for the simulator.

Recognition without a DSFID (many readers do not report it, and legacy tags carry 0x00):

1. empty memory is truncated; all 0x00 or all 0xFF is blank;
2. a first 32-byte block whose CRC matches is ISO 28560-3 (a random block passes with
   probability 1/65536, and a 28560-2 tag cannot normally be mistaken: its byte 0 is a
   precursor of OID 1);
3. otherwise the memory is parsed as ISO 28560-2. If that fails, or parses but not cleanly,
   while the bytes look like a 28560-3 block (version nibble, printable item id, country
   letters), the error is :class:`TagCrcError` (or :class:`TruncatedTagData` below 32
   bytes), because a damaged 28560-3 block is the likelier story.
"""

from __future__ import annotations

from firmware_protocol.errors import TagDataError

from . import part2, part3
from .errors import BlankTag, TagCrcError, TagEncodeError, TruncatedTagData, UnknownLayout
from .model import STANDARD_PART2, STANDARD_PART3, TagData

__all__ = ["DSFID_28560_2", "DSFID_28560_3", "decode_tag", "encode_tag"]

DSFID_28560_2 = part2.DSFID
DSFID_28560_3 = part3.DSFID


def decode_tag(memory: bytes, dsfid: int | None = None) -> TagData:
    """Decode the user memory of a library tag.

    Args:
        memory: user memory as read, from block 0 (any length).
        dsfid: the tag's DSFID if the reader reported it. 0x06 forces ISO 28560-2, 0x3E
            forces ISO 28560-3; None or any other value (0x00 is common on legacy tags)
            recognises the layout from the memory itself.

    Returns:
        The decoded :class:`TagData`.

    Raises:
        TagDataError: always a specific subclass (BlankTag, TruncatedTagData, TagCrcError,
            UnknownLayout, BadPrecursor, BadCompaction, BadDataElement, BadExtensionBlock);
            never another exception.
    """
    try:
        mem = bytes(memory)
    except (TypeError, ValueError) as exc:
        raise UnknownLayout(f"tag memory must be bytes, not {type(memory).__name__}") from exc
    if not mem:
        raise TruncatedTagData("no tag memory was read")
    if all(b == 0x00 for b in mem) or all(b == 0xFF for b in mem):
        raise BlankTag(f"{len(mem)} bytes of blank tag memory")
    if dsfid == DSFID_28560_2:
        return part2.decode_part2(mem)
    if dsfid == DSFID_28560_3:
        return part3.decode_part3(mem)
    if part3.crc_ok(mem):
        return part3.decode_part3(mem)
    suspect3 = part3.looks_like_part3(mem)
    try:
        data, clean = part2.decode_part2_checked(mem)
    except TagDataError as exc:
        if suspect3:
            raise _part3_failure(mem) from exc
        if mem[0] & 0x0F != 1:
            raise UnknownLayout(
                f"memory starts {mem[:4].hex()}: neither an ISO 28560-3 block with a valid "
                f"CRC nor an ISO 28560-2 primary item identifier") from exc
        raise
    if suspect3 and not clean:
        raise _part3_failure(mem)
    return data


def _part3_failure(mem: bytes) -> TagDataError:
    if len(mem) < part3.BASIC_BLOCK:
        return TruncatedTagData(
            f"looks like ISO 28560-3 but only {len(mem)} of {part3.BASIC_BLOCK} bytes were read")
    stored = int.from_bytes(mem[19:21], "little")
    return TagCrcError(f"looks like ISO 28560-3 but the CRC {stored:#06x} does not match "
                       f"(contents give {part3.block_crc(mem):#06x})")


def encode_tag(data: TagData, *, block_size: int = 4, memory_size: int | None = None,
               align_data_sets: bool = False) -> tuple[int, bytes]:
    """Encode ``data`` in the layout named by ``data.standard``.

    Args:
        data: what to write.
        block_size: memory is padded with 0x00 to a multiple of this (4 for ICODE SLIX).
        memory_size: if given, the memory is padded to exactly this size.
        align_data_sets: ISO 28560-2 only: start every data set on a block boundary, using
            the precursor's offset byte and pad bytes (as for data that will be locked).

    Returns:
        ``(dsfid, memory)``.

    Raises:
        TagEncodeError: the data cannot be stored in that layout or that memory size.
    """
    if block_size < 1:
        raise TagEncodeError("block_size must be at least 1")
    if data.standard == STANDARD_PART3:
        return DSFID_28560_3, part3.encode_part3(data, block_size=block_size,
                                                 memory_size=memory_size)
    assert data.standard == STANDARD_PART2
    return DSFID_28560_2, part2.encode_part2(data, block_size=block_size,
                                             memory_size=memory_size,
                                             align_data_sets=align_data_sets)
