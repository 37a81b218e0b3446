"""Frames of the lendbox board protocol: encode, strict decode, and a streaming decoder.

Sans-IO in the h11 manner: the caller reads the port and hands bytes to
:meth:`FrameDecoder.feed`, pulls frames out with :meth:`FrameDecoder.next_event`, and tells the
decoder when the inter-byte gap has elapsed with :meth:`FrameDecoder.expire` — the decoder owns
no clock, so the same code runs in a board emulator, a host driver, a test and a fuzzer.

Theory of operation (SPEC.md §3). The buffer always starts at a *candidate*: a byte position
being judged. ``next_event`` decides the candidate and moves past what it decided:

- not SOF → every byte up to the next SOF is garbage: dropped, raised once as ``Garbage``;
- SOF, LEN > 250 → ``BadLength``; only the SOF byte is dropped, scanning resumes at LEN;
- SOF, LEN ok, not all 7 + LEN bytes here yet → ``NEED_DATA`` (nothing consumed);
- CRC mismatch → ``BadCrc``; only the SOF byte is dropped (a real frame may start inside);
- CRC good → the whole frame is consumed; it becomes a ``Frame``, or ``UnknownCommand`` /
  ``BadPayload`` carrying address, seq and command so that a board can answer with a NAK.

Every error is raised exactly once, after the decoder has already moved past the bytes, so
the next call simply continues. The decision at a position depends only on the bytes from
that position on, which is why any chunking of a stream yields the same frames.
"""

from __future__ import annotations

import enum

from .const import BROADCAST, CRC_SIZE, HEADER_SIZE, MAX_FRAME, MAX_PAYLOAD, SOF
from .crc import crc16
from .errors import (
    BadCrc,
    BadLength,
    BadPayload,
    FrameError,
    Garbage,
    LocalProtocolError,
    TruncatedFrame,
)
from .messages import Frame, Message, Reply
from .payloads import decode_payload, encode_payload

__all__ = [
    "DEFAULT_MAX_BUFFER",
    "NEED_DATA",
    "FrameDecoder",
    "NeedData",
    "decode_frame",
    "encode",
]

DEFAULT_MAX_BUFFER = 4096
_OVERHEAD = HEADER_SIZE + CRC_SIZE  # SOF LEN ADDR SEQ CMD ... CRC_lo CRC_hi


class NeedData(enum.Enum):
    """Returned (never raised) when the buffered bytes do not yet decide the next frame."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData.NEED_DATA


def encode(frame: Frame) -> bytes:
    """The bytes of ``frame`` on the wire, CRC included.

    Raises:
        LocalProtocolError: ``frame`` is not a Frame, its message is not a message of this
            protocol or carries a value the wire cannot (reserved door-flag bits), or it is a
            reply addressed to broadcast (boards answer from their own address).
    """
    if not isinstance(frame, Frame):
        raise LocalProtocolError(f"encode() takes a Frame, got {type(frame).__name__}")
    if isinstance(frame.message, Reply) and frame.address == BROADCAST:
        raise LocalProtocolError("a reply carries the board's own address, never broadcast")
    cmd, payload = encode_payload(frame.message)
    body = bytes((len(payload), frame.address, frame.seq, cmd)) + payload
    crc = crc16(body)
    return b"%c%b%c%c" % (SOF, body, crc & 0xFF, crc >> 8)


def _frame_from(candidate: bytes) -> Frame:
    """Decode a candidate whose SOF, LEN and CRC were already checked."""
    address, seq, cmd = candidate[2], candidate[3], candidate[4]
    try:
        message: Message = decode_payload(cmd, candidate[HEADER_SIZE:-CRC_SIZE],
                                          address=address, seq=seq)
    except FrameError as exc:
        exc.raw = bytes(candidate)  # the whole frame, as for every frame-level error
        raise
    if isinstance(message, Reply) and address == BROADCAST:
        raise BadPayload("a reply from the broadcast address", candidate, command=cmd,
                         address=address, seq=seq)
    try:
        return Frame(address=address, seq=seq, message=message)
    except LocalProtocolError as exc:  # reserved address: the sender's fault, not ours
        raise BadPayload(f"frame address: {exc}", candidate, command=cmd, address=address,
                         seq=seq) from exc


def _crc_ok(candidate: bytes | bytearray) -> bool:
    return crc16(candidate[1:-CRC_SIZE]) == candidate[-2] | (candidate[-1] << 8)


def decode_frame(data: bytes) -> Frame:
    """Decode exactly one whole frame — for vectors, tests and logs, not for streams.

    Raises:
        Garbage: ``data`` does not start with SOF.
        TruncatedFrame: ``data`` ends before the frame its LEN announces.
        BadLength: LEN > 250, or bytes follow the frame.
        BadCrc: the CRC does not match.
        UnknownCommand, BadPayload: as for :meth:`FrameDecoder.next_event`.
    """
    data = bytes(data)
    if not data or data[0] != SOF:
        raise Garbage("frame does not start with SOF 0xA5", data[:1])
    if len(data) < 2:
        raise TruncatedFrame("frame ends after SOF", data)
    length = data[1]
    if length > MAX_PAYLOAD:
        raise BadLength(f"LEN {length} exceeds {MAX_PAYLOAD}", data[:2])
    total = length + _OVERHEAD
    if len(data) < total:
        raise TruncatedFrame(f"frame needs {total} bytes, got {len(data)}", data)
    if len(data) > total:
        raise BadLength(f"{len(data) - total} bytes follow a {total}-byte frame", data)
    if not _crc_ok(data):
        raise BadCrc("CRC mismatch", data)
    return _frame_from(data)


class FrameDecoder:
    """Turns a byte stream (either direction) into frames and typed errors.

    Args:
        max_buffer: most bytes held at once (at least one maximal frame, 257). A caller that
            feeds more without draining ``next_event`` loses the oldest bytes, reported as
            ``Garbage``; one who drains after every feed never comes near it.

    Attributes:
        frames: frames decoded so far.
        errors: errors raised so far (each problem counts once).
    """

    def __init__(self, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        if not isinstance(max_buffer, int) or max_buffer < MAX_FRAME:
            raise LocalProtocolError(f"max_buffer must be at least {MAX_FRAME}")
        self.max_buffer = max_buffer
        self.frames = 0
        self.errors = 0
        self._buf = bytearray()
        self._pos = 0  # start of the current candidate in _buf
        self._overflow = bytearray()  # bytes pushed out by feed(), reported as Garbage

    @property
    def buffered(self) -> int:
        """Bytes held and not yet decided (at most ``max_buffer``)."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes received from the link. Never raises on content; decide with
        ``next_event``. Overflow beyond ``max_buffer`` drops the oldest bytes (reported as
        ``Garbage`` by the next ``next_event``)."""
        self._buf += data
        excess = len(self._buf) - self._pos - self.max_buffer
        if excess > 0:
            self._overflow += self._buf[self._pos : self._pos + excess]
            del self._overflow[: -self.max_buffer]  # keep the report bounded too
            self._advance(self._pos + excess)

    def next_event(self) -> Frame | NeedData:
        """The next frame, or ``NEED_DATA`` if the buffered bytes do not decide one yet.

        Raises:
            Garbage, BadLength, BadCrc, UnknownCommand, BadPayload: one problem per call, with
                the offending bytes in ``.raw``. The bytes are already skipped (only the SOF for
                BadLength and BadCrc), so the decoder stays usable: call again to continue.
        """
        if self._overflow:
            raw = bytes(self._overflow)
            self._overflow.clear()
            self.errors += 1
            raise Garbage(f"buffer overflow: {len(raw)} oldest bytes dropped", raw)
        buf, pos = self._buf, self._pos
        available = len(buf) - pos
        if available == 0:
            return NEED_DATA
        if buf[pos] != SOF:
            stop = buf.find(SOF, pos)
            if stop < 0:
                stop = len(buf)
            raw = bytes(buf[pos:stop])
            self._advance(stop)
            self.errors += 1
            raise Garbage(f"{len(raw)} bytes before SOF", raw)
        if available < 2:
            return NEED_DATA
        length = buf[pos + 1]
        if length > MAX_PAYLOAD:
            raw = bytes(buf[pos : pos + 2])
            self._advance(pos + 1)
            self.errors += 1
            raise BadLength(f"LEN {length} exceeds {MAX_PAYLOAD}", raw)
        total = length + _OVERHEAD
        if available < total:
            return NEED_DATA
        candidate = bytes(buf[pos : pos + total])
        if not _crc_ok(candidate):
            self._advance(pos + 1)
            self.errors += 1
            raise BadCrc("CRC mismatch", candidate)
        self._advance(pos + total)
        try:
            frame = _frame_from(candidate)
        except FrameError:  # UnknownCommand, BadPayload: the whole frame is consumed
            self.errors += 1
            raise
        self.frames += 1
        return frame

    def expire(self) -> None:
        """The inter-byte gap elapsed (SPEC.md §4): drop a partial frame, if one is buffered.

        Call it after ``next_event`` returned ``NEED_DATA`` and no byte arrived for the gap.

        Raises:
            TruncatedFrame: a partial frame was buffered; its bytes (in ``.raw``) are dropped
                and the buffer is empty.
            LocalProtocolError: bytes that decide something are still buffered — drain
                ``next_event`` first. Nothing is dropped.
        """
        if self._overflow or self._decidable():
            raise LocalProtocolError("drain next_event() until NEED_DATA before expire()")
        if self.buffered == 0:
            return
        raw = bytes(self._buf[self._pos :])
        self._advance(len(self._buf))
        self.errors += 1
        raise TruncatedFrame(f"frame stopped after {len(raw)} bytes", raw)

    def feed_eof(self) -> None:
        """The stream ended (port closed): same as the gap elapsing. Raises like ``expire``."""
        self.expire()

    def _decidable(self) -> bool:
        available = self.buffered
        if available == 0:
            return False
        buf, pos = self._buf, self._pos
        if buf[pos] != SOF:
            return True
        if available < 2:
            return False
        return buf[pos + 1] > MAX_PAYLOAD or available >= buf[pos + 1] + _OVERHEAD

    def _advance(self, pos: int) -> None:
        if pos >= len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif pos > 2048:
            del self._buf[:pos]
            self._pos = 0
        else:
            self._pos = pos

    def __repr__(self) -> str:
        return (f"<FrameDecoder buffered={self.buffered} frames={self.frames} "
                f"errors={self.errors}>")
