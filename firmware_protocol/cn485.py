"""The generic Chinese RS-485 lock board ("锁控板", 8A/80 XOR protocol): a sans-IO codec.

Why a codec of its own: most commercial parcel and book lockers are built from cheap 8-50
channel boards speaking this 5-byte hex protocol. It has no start-of-frame marker that cannot
also be data, no length byte, no sequence number and a one-byte XOR check; the decoder must
therefore know the frame shapes (and, for one reply, what was asked) to find frames.

Facts used (hardware-limits.md §3.1; no code taken from any source):

* 9600 Bd 8N1; board address set by DIP switch (1..31 on Open-Locker, "up to 32 boards").
* Open one lock ``8A BB LL 11 BCC``; open every lock ``8A BB 00 11 BCC``; open with a hold
  time of 1..9 s ``8A BB LL 11 SS BCC`` (default pulse 300 ms). BCC = XOR of every byte before
  it; worked example ``8A 01 01 11 9B`` — CSDN 147892413, CSDN 50717517, FaceLocker
  ``LockControlService`` (《485锁控板24路通讯协议2021》).
* Reply to an open ``8A BB LL VV BCC``, VV = 0x11 or 0x00: the lock's feedback contact after
  the pulse (which of the two means "open" depends on the lock: Open-Locker ``feedback_type``).
* Read one lock ``80 BB LL 33 BCC`` → ``80 BB LL VV BCC`` (e.g. ``80 01 01 33 B3``).
* Read the whole board ``80 BB 00 33 BCC`` → ``80 BB S… 33 BCC`` with 3 status bytes on a
  24-channel board, 4 on a 32-channel one, **highest channel group first** and, inside a byte,
  bit 0 = the group's lowest channel (FaceLocker ``ReadAllStatusAsync``: "80 AA S3 S2 S1 33";
  Open-Locker codec test "decodes highest channel group first": a 12-channel board answers with
  2 status bytes). The number of status bytes is a property of the board.

Theory of operation (both decoders). The buffer starts at a candidate byte:

- not a head byte (0x8A, 0x80) → every byte up to the next head byte is ``Garbage``;
- a head byte whose layout is not complete yet → ``NEED_DATA``;
- a complete layout whose fixed bytes or BCC do not fit → only the head byte is dropped
  (``BadCrc`` when only the BCC is wrong, else ``Garbage``), so a real frame starting inside
  is still found;
- a fitting layout → the whole frame is consumed and returned as a typed message.

A whole-board reply cannot be told from a one-lock reply by its bytes alone when it has two or
more status bytes (``80 BB S1 S2 …`` may pass as ``80 BB LL VV BCC``). The reply decoder is
therefore told, per board, what was asked (``expect``) and how many status bytes the board
sends (``status_bytes``) — as every real host does, since it knows what it sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from .codec import NEED_DATA, NeedData
from .stream import ByteStream
from .errors import BadCrc, FrameError, Garbage, LocalProtocolError, TruncatedFrame

__all__ = [
    "HEAD_OPEN",
    "HEAD_READ",
    "LINK_BAUDRATE",
    "MAX_HOLD_S",
    "OPEN_CMD",
    "READ_CMD",
    "SIGNAL_HIGH",
    "SIGNAL_LOW",
    "BoardStatus",
    "BoardStatusReply",
    "Cn485Reply",
    "Cn485Request",
    "LockStatus",
    "LockStatusReply",
    "Open",
    "OpenReply",
    "ReadBoard",
    "ReadLock",
    "ReplyDecoder",
    "RequestDecoder",
    "bcc",
    "decode_reply",
    "decode_request",
    "encode_reply",
    "encode_request",
]

LINK_BAUDRATE = 9600
HEAD_OPEN = 0x8A
HEAD_READ = 0x80
OPEN_CMD = 0x11
READ_CMD = 0x33
SIGNAL_HIGH = 0x11  # feedback contact "high" (what it means depends on the lock type)
SIGNAL_LOW = 0x00
MAX_HOLD_S = 9
_HEADS = bytes((HEAD_OPEN, HEAD_READ))
#: Status bytes a whole-board reply carries when nothing else is known (24-channel board).
DEFAULT_STATUS_BYTES = 3
MAX_STATUS_BYTES = 8  # 64 channels: more than any board sold (8..50 channels)


def bcc(data: bytes | bytearray) -> int:
    """The block check: XOR of ``data`` (the frame without its last byte)."""
    x = 0
    for b in data:
        x ^= b
    return x


def _byte(name: str, value: int, lo: int = 0, hi: int = 0xFF) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise LocalProtocolError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True, kw_only=True)
class Open:
    """Pulse ``lock`` (1-based; 0 = every lock) of ``board``; ``hold_s`` 1..9 keeps the lock
    energised that many seconds instead of the board's default pulse (~300 ms)."""

    board: int
    lock: int
    hold_s: int | None = None

    def __post_init__(self) -> None:
        _byte("board", self.board)
        _byte("lock", self.lock)
        if self.hold_s is not None:
            _byte("hold_s", self.hold_s, 1, MAX_HOLD_S)
            if self.lock == 0:
                raise LocalProtocolError("a hold time applies to one lock, not to open-all")
            if self.board > 0x7F or self.lock > 0x7F:
                # 8A^11^BB^LL may then equal SS (1..9): the 6-byte form would read as a 5-byte
                # open followed by a stray byte. Real boards: addresses ≤ 99, ≤ 50 channels.
                raise LocalProtocolError("the timed open needs board and lock ≤ 127")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadLock:
    """Ask one lock's feedback signal."""

    board: int
    lock: int

    def __post_init__(self) -> None:
        _byte("board", self.board)
        _byte("lock", self.lock, 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadBoard:
    """Ask every lock's feedback signal of ``board``."""

    board: int

    def __post_init__(self) -> None:
        _byte("board", self.board)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenReply:
    """The board pulsed ``lock`` and then read its feedback: ``high`` = 0x11."""

    board: int
    lock: int
    high: bool

    def __post_init__(self) -> None:
        _byte("board", self.board)
        _byte("lock", self.lock)


@dataclass(frozen=True, slots=True, kw_only=True)
class LockStatusReply:
    """One lock's feedback signal: ``high`` = 0x11."""

    board: int
    lock: int
    high: bool

    def __post_init__(self) -> None:
        _byte("board", self.board)
        _byte("lock", self.lock, 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardStatusReply:
    """Every channel's feedback signal: ``signals[i]`` is channel i + 1 (True = bit set).
    Its length is 8 × the board's status bytes."""

    board: int
    signals: tuple[bool, ...]

    def __post_init__(self) -> None:
        _byte("board", self.board)
        n = len(self.signals)
        if n == 0 or n % 8 or n // 8 > MAX_STATUS_BYTES:
            raise LocalProtocolError(f"signals must be 8..{8 * MAX_STATUS_BYTES} channels in "
                                     f"whole bytes, got {n}")

    @property
    def status_bytes(self) -> int:
        return len(self.signals) // 8


# Aliases that read better in drivers.
LockStatus = LockStatusReply
BoardStatus = BoardStatusReply
Cn485Request = Open | ReadLock | ReadBoard
Cn485Reply = OpenReply | LockStatusReply | BoardStatusReply


# ---------------------------------------------------------------- encoding


def _seal(body: bytes) -> bytes:
    return body + bytes((bcc(body),))


def encode_request(message: Cn485Request) -> bytes:
    """The request's bytes on the wire.

    Raises:
        LocalProtocolError: ``message`` is not a request of this protocol.
    """
    if isinstance(message, Open):
        body = bytes((HEAD_OPEN, message.board, message.lock, OPEN_CMD))
        if message.hold_s is not None:
            body += bytes((message.hold_s,))
        return _seal(body)
    if isinstance(message, ReadLock):
        return _seal(bytes((HEAD_READ, message.board, message.lock, READ_CMD)))
    if isinstance(message, ReadBoard):
        return _seal(bytes((HEAD_READ, message.board, 0, READ_CMD)))
    raise LocalProtocolError(f"{type(message).__name__} is not a cn485 request")


def _signal(high: bool) -> int:
    return SIGNAL_HIGH if high else SIGNAL_LOW


def encode_reply(message: Cn485Reply) -> bytes:
    """The reply's bytes on the wire (board side).

    Raises:
        LocalProtocolError: ``message`` is not a reply of this protocol.
    """
    if isinstance(message, OpenReply):
        return _seal(bytes((HEAD_OPEN, message.board, message.lock, _signal(message.high))))
    if isinstance(message, LockStatusReply):
        return _seal(bytes((HEAD_READ, message.board, message.lock, _signal(message.high))))
    if isinstance(message, BoardStatusReply):
        groups = [message.signals[i : i + 8] for i in range(0, len(message.signals), 8)]
        status = bytes(sum(1 << b for b, on in enumerate(g) if on) for g in reversed(groups))
        return _seal(bytes((HEAD_READ, message.board)) + status + bytes((READ_CMD,)))
    raise LocalProtocolError(f"{type(message).__name__} is not a cn485 reply")


def _signals(status: bytes) -> tuple[bool, ...]:
    """Status bytes (highest group first) → per-channel signals, channel 1 first."""
    out: list[bool] = []
    for byte in reversed(status):
        out.extend(bool(byte >> bit & 1) for bit in range(8))
    return tuple(out)


# ---------------------------------------------------------------- decoding

Expect = Literal["lock", "board"]


class _Decoder(ByteStream):
    """Buffer handling shared by both directions (see the module docstring); a silence of
    the inter-byte gap ends a frame (Open-Locker: 25 ms of line quiet)."""

    def _garbage(self) -> Garbage:
        buf = self._buf
        stop = next((i for i in range(1, len(buf)) if buf[i] in _HEADS), len(buf))
        raw = bytes(buf[:stop])
        del buf[:stop]
        self.errors += 1
        return Garbage(f"{len(raw)} bytes before a head byte", raw)

    def _reject(self, candidate: bytes, bcc_only: bool) -> FrameError:
        """Drop only the head byte of a candidate that does not fit."""
        del self._buf[:1]
        self.errors += 1
        if bcc_only:
            return BadCrc("BCC mismatch", candidate)
        return Garbage("head byte without a fitting frame", candidate[:1])

    def _take(self, n: int) -> bytes:
        raw = bytes(self._buf[:n])
        del self._buf[:n]
        self.frames += 1
        return raw

    def _ok(self, n: int) -> bool:
        return bcc(self._buf[: n - 1]) == self._buf[n - 1]


class RequestDecoder(_Decoder):
    """Host → board frames (what a board hears): ``Open``, ``ReadLock``, ``ReadBoard``."""

    def next_event(self) -> Cn485Request | NeedData:
        """The next request or ``NEED_DATA``.

        Raises:
            Garbage, BadCrc: one problem per call with the dropped bytes in ``.raw``; the
                decoder has moved past them and stays usable.
        """
        buf = self._buf
        if not buf:
            return NEED_DATA
        head = buf[0]
        if head not in _HEADS:
            raise self._garbage()
        if len(buf) < 5:
            return NEED_DATA
        if head == HEAD_READ:
            shape = buf[3] == READ_CMD
            if shape and self._ok(5):
                raw = self._take(5)
                if raw[2] == 0:
                    return ReadBoard(board=raw[1])
                return ReadLock(board=raw[1], lock=raw[2])
            raise self._reject(bytes(buf[:5]), shape)
        # HEAD_OPEN: 5 bytes, or 6 with a hold time (BCC at byte 4 cannot be 1..9 then)
        shape = buf[3] == OPEN_CMD
        if shape and self._ok(5):
            raw = self._take(5)
            return Open(board=raw[1], lock=raw[2])
        if shape and 1 <= buf[4] <= MAX_HOLD_S and buf[2] != 0:
            if len(buf) < 6:
                return NEED_DATA
            if self._ok(6):
                raw = self._take(6)
                return Open(board=raw[1], lock=raw[2], hold_s=raw[4])
            raise self._reject(bytes(buf[:6]), True)
        raise self._reject(bytes(buf[:5]), shape)


class ReplyDecoder(_Decoder):
    """Board → host frames: ``OpenReply``, ``LockStatusReply``, ``BoardStatusReply``.

    Args:
        status_bytes: how many status bytes a board's whole-board reply carries: one number
            for every board, a mapping board → number (others: 3), or a function of the board.
        expect: what the host asked a board (``"lock"`` or ``"board"``), as a function of the
            board address returning None when unknown. With None a 0x80 frame is read as a
            one-lock reply when it fits one, else as a whole-board reply (a sniffer's guess).
    """

    def __init__(self, *, status_bytes: int | Mapping[int, int] | Callable[[int], int]
                 = DEFAULT_STATUS_BYTES,
                 expect: Callable[[int], Expect | None] | None = None,
                 max_buffer: int = 4096) -> None:
        super().__init__(max_buffer=max_buffer)
        if isinstance(status_bytes, int):
            n = status_bytes
            _byte("status_bytes", n, 1, MAX_STATUS_BYTES)
            self._status_bytes: Callable[[int], int] = lambda board: n
        elif isinstance(status_bytes, Mapping):
            table = dict(status_bytes)
            self._status_bytes = lambda board: table.get(board, DEFAULT_STATUS_BYTES)
        else:
            self._status_bytes = status_bytes
        self._expect = expect or (lambda board: None)

    def next_event(self) -> Cn485Reply | ReadLock | ReadBoard | NeedData:
        """The next reply or ``NEED_DATA``. A read request echoed back (a line that echoes)
        is returned as the request when the expectation tells it apart.

        Raises:
            Garbage, BadCrc: as for :meth:`RequestDecoder.next_event`.
        """
        buf = self._buf
        if not buf:
            return NEED_DATA
        head = buf[0]
        if head not in _HEADS:
            raise self._garbage()
        if head == HEAD_OPEN:
            if len(buf) < 5:
                return NEED_DATA
            shape = buf[3] in (SIGNAL_HIGH, SIGNAL_LOW)
            if shape and self._ok(5):
                raw = self._take(5)
                return OpenReply(board=raw[1], lock=raw[2], high=raw[3] == SIGNAL_HIGH)
            raise self._reject(bytes(buf[:5]), shape)
        if len(buf) < 2:
            return NEED_DATA
        board = buf[1]
        expect = self._expect(board)
        n = max(1, min(MAX_STATUS_BYTES, self._status_bytes(board)))
        if expect != "board":
            if len(buf) < 5:
                return NEED_DATA
            lock_shape = buf[3] in (SIGNAL_HIGH, SIGNAL_LOW) and buf[2] != 0
            if lock_shape and self._ok(5):
                raw = self._take(5)
                return LockStatusReply(board=raw[1], lock=raw[2], high=raw[3] == SIGNAL_HIGH)
            if expect == "lock":
                if buf[3] == READ_CMD and buf[2] != 0 and self._ok(5):
                    raw = self._take(5)  # our own ReadLock, echoed
                    return ReadLock(board=raw[1], lock=raw[2])
                raise self._reject(bytes(buf[:5]), lock_shape)
        size = 4 + n
        if len(buf) < size:
            return NEED_DATA
        shape = buf[size - 2] == READ_CMD
        if shape and self._ok(size):
            raw = self._take(size)
            return BoardStatusReply(board=raw[1], signals=_signals(raw[2 : 2 + n]))
        raise self._reject(bytes(buf[:size]), shape)


def _one(decoder: RequestDecoder | ReplyDecoder, data: bytes) -> object:
    decoder.feed(data)
    event = decoder.next_event()
    if event is NEED_DATA:
        raise TruncatedFrame(f"{len(data)} bytes do not complete a frame", bytes(data))
    if decoder.buffered:
        raise Garbage(f"{decoder.buffered} bytes follow the frame", bytes(data))
    return event


def decode_request(data: bytes) -> Cn485Request:
    """Decode exactly one request (for vectors and logs, not streams).

    Raises:
        FrameError subclasses: not exactly one valid request.
    """
    event = _one(RequestDecoder(), bytes(data))
    assert isinstance(event, (Open, ReadLock, ReadBoard))
    return event


def decode_reply(data: bytes, *, expect: Expect | None = None,
                 status_bytes: int | None = None) -> Cn485Reply:
    """Decode exactly one reply (for vectors and logs). A whole-board reply needs
    ``expect="board"``; its status-byte count is taken from ``data`` unless given.

    Raises:
        FrameError subclasses: not exactly one valid reply.
    """
    data = bytes(data)
    if status_bytes is None:
        status_bytes = max(1, min(MAX_STATUS_BYTES, len(data) - 4))
    event = _one(ReplyDecoder(status_bytes=status_bytes, expect=lambda board: expect), data)
    if not isinstance(event, (OpenReply, LockStatusReply, BoardStatusReply)):
        raise Garbage("a request, not a reply", data)
    return event
