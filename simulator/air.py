"""Air time of ISO/IEC 15693 operations, so that an emulated reader spends realistic time.

Why a model and not a constant: the time of an inventory grows with the number of tags and
depends on how their UIDs collide in the 16 slots; benchmarks compare driver overhead with this
floor (docs: /work/shared/reference/hardware-limits.md §1.3 and §6). The model uses the ISO
minimum timings at the high data rate with one subcarrier and 1-out-of-4 coding:

* reader → tag: SOF 75.52 µs, 302.08 µs per byte, EOF 37.76 µs;
* tag → reader: SOF and EOF 151 µs each, 37.76 µs per bit;
* t1 = 320.9 µs (reader EOF → tag reply), t2 = 309.1 µs (after a reply), empty slot t3 = 474.3 µs.

Inventory is the recursive 16-slot algorithm: a tag answers in the slot given by the next UID
nibble above the mask (least significant nibble first, as ISO 15693-3 specifies); every slot
where several tags answered is re-inventoried with that slot's nibble appended to the mask.
Slot assignment therefore follows from the UIDs: the same tags always cost the same air time.
A collided slot costs as much as an occupied one (the overlapping replies run their full length).
This module is pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "READER_SOF_S",
    "READER_BYTE_S",
    "READER_EOF_S",
    "TAG_SOF_S",
    "TAG_EOF_S",
    "TAG_BIT_S",
    "T1_S",
    "T2_S",
    "T3_S",
    "WRITE_PROGRAM_S",
    "InventoryRound",
    "reader_frame_s",
    "tag_frame_s",
    "inventory",
    "read_blocks_s",
    "write_s",
    "no_response_s",
]

READER_SOF_S = 75.52e-6
READER_BYTE_S = 302.08e-6
READER_EOF_S = 37.76e-6
TAG_SOF_S = 151e-6
TAG_EOF_S = 151e-6
TAG_BIT_S = 37.76e-6
T1_S = 320.9e-6
T2_S = 309.1e-6
T3_S = 474.3e-6
#: EEPROM programming time modelled for write-type commands (ISO allows up to 20 ms).
WRITE_PROGRAM_S = 6e-3

_INVENTORY_REPLY_BYTES = 12  # flags, DSFID, UID 8, CRC 2
_SLOTS = 16


def reader_frame_s(nbytes: int) -> float:
    """Air time of a reader → tag frame of ``nbytes`` bytes (CRC included), SOF to EOF."""
    return READER_SOF_S + nbytes * READER_BYTE_S + READER_EOF_S


def tag_frame_s(nbytes: int) -> float:
    """Air time of a tag → reader frame of ``nbytes`` bytes (CRC included), SOF to EOF."""
    return TAG_SOF_S + nbytes * 8 * TAG_BIT_S + TAG_EOF_S


@dataclass(frozen=True, slots=True)
class InventoryRound:
    """Result of one inventory: UIDs in the order they were singulated, total air time and the
    number of 16-slot rounds the reader needed."""

    order: tuple[bytes, ...]
    air_s: float
    rounds: int


def _nibble(uid: bytes, index: int) -> int:
    value = int.from_bytes(uid, "big")
    return (value >> (4 * index)) & 0xF


def inventory(uids: Sequence[bytes]) -> InventoryRound:
    """Air time of a complete inventory of the tags ``uids`` (those that answer).

    Args:
        uids: 8-byte UIDs of the tags in the field that answer this round; duplicates ignored.
    Returns:
        the singulation order, air time in seconds and the number of rounds.
    """
    order: list[bytes] = []
    total = 0.0
    rounds = 0
    # (mask depth in nibbles, tags matching the mask)
    pending: list[tuple[int, list[bytes]]] = [(0, sorted(set(uids)))]
    while pending:
        depth, tags = pending.pop(0)
        rounds += 1
        mask_bytes = (depth * 4 + 7) // 8
        total += reader_frame_s(5 + mask_bytes)  # flags, cmd, mask len, mask, CRC 2
        slots: list[list[bytes]] = [[] for _ in range(_SLOTS)]
        if depth < 16:
            for uid in tags:
                slots[_nibble(uid, depth)].append(uid)
        for slot_no, answering in enumerate(slots):
            if slot_no:
                total += READER_EOF_S  # the reader's EOF that opens the next slot
            if not answering:
                total += T3_S
                continue
            total += T1_S + tag_frame_s(_INVENTORY_REPLY_BYTES) + T2_S
            if len(answering) == 1:
                order.append(answering[0])
            else:
                pending.append((depth + 1, answering))
    return InventoryRound(order=tuple(order), air_s=total, rounds=rounds)


def read_blocks_s(count: int, block_size: int = 4) -> float:
    """Air time of an addressed Read Multiple Blocks of ``count`` blocks (one tag)."""
    request = reader_frame_s(14)  # flags, cmd, uid 8, first, count-1, CRC 2
    reply = tag_frame_s(1 + count * block_size + 2)
    return request + T1_S + reply + T2_S


def write_s() -> float:
    """Air time of an addressed write-type command (Write AFI, EAS set/reset)."""
    request = reader_frame_s(13)  # flags, cmd, (mfg), uid 8, value, CRC 2
    return request + T1_S + WRITE_PROGRAM_S + tag_frame_s(3) + T2_S


def no_response_s(request_bytes: int = 14) -> float:
    """Air time the reader spends on an addressed command no tag answers (timeout = 20 ms)."""
    return reader_frame_s(request_bytes) + 20e-3
