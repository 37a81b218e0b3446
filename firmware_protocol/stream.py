"""The byte buffer every family's sans-IO decoder stands on.

Why one class: each decoder (cn485, Kerong, Modbus RTU, FEIG, RR3036) must hold the bytes
received so far, stay bounded whatever the line sends, count frames and errors, and turn an
expired inter-byte gap into ``TruncatedFrame``; only how a frame is found and what it means
differ, and those stay in the family's module.
"""

from __future__ import annotations

from .errors import TruncatedFrame

__all__ = ["ByteStream"]


class ByteStream:
    """Received bytes not yet decided, bounded to ``max_buffer`` (the oldest are dropped;
    the decoder's resynchronisation decides what remains)."""

    def __init__(self, *, max_buffer: int = 4096) -> None:
        self.max_buffer = max_buffer
        self._buf = bytearray()
        self.frames = 0
        self.errors = 0

    @property
    def buffered(self) -> int:
        """Bytes held and not yet decided."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes (never raises on content)."""
        self._buf += data
        if len(self._buf) > self.max_buffer:
            del self._buf[: len(self._buf) - self.max_buffer]

    def expire(self) -> None:
        """The inter-byte gap passed: a partially received frame is dropped.

        Raises:
            TruncatedFrame: bytes of an unfinished frame were buffered.
        """
        self._drop_partial()

    def feed_eof(self) -> None:
        """The stream ended: the same as the gap passing."""
        self.expire()

    def _drop_partial(self) -> None:
        if not self._buf:
            return
        raw = bytes(self._buf)
        self._buf.clear()
        self.errors += 1
        raise TruncatedFrame(f"frame stopped after {len(raw)} bytes", raw)
