"""CRC-16/CCITT-FALSE, the frame check of SPEC.md §2; and CRC-16/MCRF4XX, the frame check of
the FEIG ISO host protocol and of RR3036-style reader modules.

Written out here (table-driven, one table lookup per byte) rather than borrowed from
``binascii.crc_hqx`` so that the tests can hold our CRC against that independent
implementation, and so that the C reference in SPEC.md reads like this code.
"""

from __future__ import annotations

__all__ = ["CRC_INIT", "CRC_POLY", "MCRF4XX_POLY", "crc16", "crc16_mcrf4xx"]

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


#: Reflected CCITT polynomial (x^16 + x^12 + x^5 + 1) as FEIG and the RR3036 modules print it.
MCRF4XX_POLY = 0x8408


def _make_reflected_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ MCRF4XX_POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_REFLECTED_TABLE = _make_reflected_table()


def crc16_mcrf4xx(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/MCRF4XX of ``data``: reflected poly 0x8408, preset 0xFFFF, LSB-first (right
    shift) algorithm, no final XOR; check value over ``b"123456789"`` is 0x6F91.

    Sources: FEIG ID ISC.LRU3000 manual p.20-21 (CRC16 over bytes 1..n-2, preset 0xFFFF,
    polynomial 0x8408, sent LSB first); the RR3036 Ruby driver 545ch4/RR3036
    ``lib/RR3036/connection.rb`` (same preset and polynomial, ``LSB-CRC16, MSB-CRC16``).

    Returns:
        the CRC 0..0xFFFF; both protocols send the low byte first.
    """
    table = _REFLECTED_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc
