"""CRC-16/CCITT-FALSE, the frame check of SPEC.md §2.

Written out here (table-driven, one table lookup per byte) rather than borrowed from
``binascii.crc_hqx`` so that the tests can hold our CRC against that independent
implementation, and so that the C reference in SPEC.md reads like this code.
"""

from __future__ import annotations

__all__ = ["CRC_INIT", "CRC_POLY", "crc16"]

CRC_POLY = 0x1021
CRC_INIT = 0xFFFF


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _make_table()


def crc16(data: bytes | bytearray | memoryview, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (poly 0x1021, init 0xFFFF, no reflection, no xorout).

    Args:
        data: the bytes to check; for a frame, LEN through the last payload byte.
        crc: a previous result, to continue a CRC over data that arrives in pieces.

    Returns:
        The CRC as an integer 0..0xFFFF; it goes on the wire low byte first.
    """
    table = _TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFF00) ^ table[(crc >> 8) ^ byte]
    return crc
