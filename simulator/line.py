"""Serial line timing: how long bytes take on the wire, and writing them at that pace.

Why: over TCP or a pty, bytes arrive as fast as the kernel moves them; a driver measured against
that would look infinitely fast. The emulators therefore hold every reply until the request
would have finished arriving at the configured baud rate, and then send the reply no faster
than the line could carry it (8N1 = 10 bit times per character).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

__all__ = ["BITS_PER_CHAR_8N1", "char_time_s", "wire_time_s", "LinkStats", "pace"]

BITS_PER_CHAR_8N1 = 10


def char_time_s(baudrate: int, bits_per_char: int = BITS_PER_CHAR_8N1) -> float:
    """Seconds one character occupies the line."""
    if baudrate <= 0:
        raise ValueError("baudrate must be positive")
    return bits_per_char / baudrate


def wire_time_s(nbytes: int, baudrate: int, bits_per_char: int = BITS_PER_CHAR_8N1) -> float:
    """Seconds ``nbytes`` characters occupy the line back to back."""
    return nbytes * char_time_s(baudrate, bits_per_char)


@dataclass(slots=True)
class LinkStats:
    """What one bus spent, in emulated time, for the driver-overhead benchmark.

    ``wire_s`` counts request and reply characters at the bus's baud rate, ``air_s`` the RFID
    air time and ``busy_s`` the board's own time (unlock pulses, firmware processing) between
    request and reply. ``exchanges`` counts replies sent.
    """

    wire_s: float = 0.0
    air_s: float = 0.0
    busy_s: float = 0.0
    exchanges: int = 0
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    frame_errors: int = 0
    requests_dropped: int = 0
    replies_dropped: int = 0
    bytes_garbled: int = 0

    def as_dict(self) -> dict[str, float | int]:
        """A JSON-ready copy."""
        return asdict(self)


def pace(
    write: Callable[[bytes], None],
    data: bytes,
    baudrate: int,
    *,
    start: float | None = None,
    stop: threading.Event | None = None,
    chunk_s: float = 0.002,
    bits_per_char: int = BITS_PER_CHAR_8N1,
) -> float:
    """Write ``data`` through ``write`` no faster than ``baudrate`` allows (8N1 by default).

    Bytes go out in chunks of about ``chunk_s`` of line time, each one only once the line would
    have carried the previous ones, so the last byte leaves at ``start + wire time`` (never
    earlier). Uses deadlines on the monotonic clock, so a late wake-up never accumulates.

    Args:
        write: sends bytes (a socket's sendall, os.write on a pty master...).
        data: the bytes to send.
        baudrate: the emulated line rate.
        start: monotonic time the first character starts; default now.
        stop: if set while waiting, the rest is not sent.
        bits_per_char: 10 for 8N1, 11 for 8E1.
    Returns:
        the emulated wire time of ``data`` in seconds.
    """
    per_char = char_time_s(baudrate, bits_per_char)
    begin = time.monotonic() if start is None else start
    chunk = max(1, int(chunk_s / per_char))
    sent = 0
    while sent < len(data):
        piece = data[sent : sent + chunk]
        due = begin + (sent + len(piece)) * per_char  # when this piece has fully left the line
        wait = due - time.monotonic()
        if wait > 0:
            if stop is not None:
                if stop.wait(wait):
                    return len(data) * per_char
            else:
                time.sleep(wait)
        write(piece)
        sent += len(piece)
    return len(data) * per_char
