"""RR3036-style HF reader modules (widely resold ISO 15693 / 14443 modules): frames, the ISO
15693 commands lendbox uses, and sans-IO request/reply decoders.

Frames, CRC-16/MCRF4XX (poly 0x8408, preset 0xFFFF) over every byte before the CRC, sent
LSB first; ``Len`` counts every byte after itself (CRC included):

* host → module: ``Len | ComAdr | Cmd | State | Data… | CRC-LSB | CRC-MSB`` (Len = 5 + data);
* module → host: ``Len | ComAdr | Status | Data… | CRC-LSB | CRC-MSB`` (Len = 4 + data).
  The reply does **not** repeat the command: the host pairs it with the request it sent.

Commands (Cmd, State): ``(0x00, 0x00)`` init device (reply: version 2, RFU 2, reader type 1,
supported protocols 2, inventory scan time 1), ``(0x00, 0x01)`` close RF, ``(0x00, 0x02)`` open
RF, ``(0x01, 0x06)`` ISO 15693 inventory (reply: 9 bytes per tag, DSFID + UID), ``(0x20, 0x00)``
read one 4-byte block (data UID + block number; reply: block security byte + 4 bytes).
The Cmd codes 0x01, 0x20, 0x21, 0x2B are the ISO 15693-3 command codes, so this module also uses
**[derived]** ``(0x02, 0x00)`` Stay Quiet (data UID, no reply data) and ``(0x27, 0x00)`` Write
AFI (data UID + AFI). Status 0x00 OK; 0x01..0x06 command errors; 0x0A / 0x0B inventory scan
time overflowed before one / all UIDs were collected; 0x0C tag response error; 0x0E no tag;
0x0F ISO 15693 error (data = tag error code); 0x1F protocol model error.

Inventory continuation **[assumption, no source found]**: one reply carries at most 27 UIDs
(Len is one byte: 4 + 27 × 9 = 247). A module that found more tags than fit answers status
0x0B ("not all tags' UIDs collected") with the 27 it has. The host puts those tags to Stay
Quiet and inventories again until the status is 0x00 or 0x0E, then an RF reset (close + open
RF, both sourced) wakes every tag — see ``drivers/families/rr3036.py``.

UID byte order **[assumption]**: the module returns the UID in ISO 15693 air order (least
significant byte first, like the TI S6350 and B&R readers, hardware-limits §2.3); the codec
keeps wire bytes and the driver reverses them.

Sources: 545ch4/RR3036 (MIT) ``lib/RR3036/connection.rb`` — commands, states, frame layout
(``len | com_addr | cmd | state | data | lsb-crc16 | msb-crc16``; reply read as Len, address,
status, Len − 4 data bytes, CRC), 19200 8N1, CRC, error table; facts only, no code copied.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .codec import NEED_DATA
from .crc import crc16_mcrf4xx
from .stream import ByteStream
from .errors import (
    BadCrc,
    BadLength,
    BadPayload,
    FrameError,
    LocalProtocolError,
    UnknownCommand,
)

__all__ = [
    "MAX_UIDS_PER_REPLY", "TAG_RECORD", "UID_SIZE", "CloseRf", "InitDevice", "InitReply",
    "Inventory", "InventoryReply", "OpenRf", "ReadBlock", "ReadBlockReply", "Reply",
    "ReplyDecoder", "RequestDecoder", "Status", "StatusReply", "StayQuiet", "WriteAfi",
    "decode_reply", "encode_reply", "encode_request", "request_key",
]

UID_SIZE = 8
TAG_RECORD = 1 + UID_SIZE
MAX_UIDS_PER_REPLY = (255 - 4) // TAG_RECORD  # 27
_MAX_LEN = 255


class Status(enum.IntEnum):
    """Reply status bytes (545ch4/RR3036 ERROR_MSG)."""

    OK = 0x00
    OPERAND_LENGTH = 0x01
    NOT_SUPPORTED = 0x02
    OUT_OF_RANGE = 0x03
    NOT_AVAILABLE = 0x04
    FIELD_CLOSED = 0x05
    EEPROM = 0x06
    SCAN_TIME_ONE = 0x0A
    SCAN_TIME_ALL = 0x0B
    TAG_RESPONSE = 0x0C
    NO_TAG = 0x0E
    ISO_ERROR = 0x0F
    PROTOCOL_MODEL = 0x1F


def _byte(name: str, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise LocalProtocolError(f"{name} must be 0..255, got {value!r}")


def _uid(uid: bytes) -> None:
    if not isinstance(uid, bytes) or len(uid) != UID_SIZE:
        raise LocalProtocolError("UID must be 8 bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class InitDevice:
    address: int = 0

    def __post_init__(self) -> None:
        _byte("ComAdr", self.address)


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseRf:
    address: int = 0

    def __post_init__(self) -> None:
        _byte("ComAdr", self.address)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenRf:
    address: int = 0

    def __post_init__(self) -> None:
        _byte("ComAdr", self.address)


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    address: int = 0

    def __post_init__(self) -> None:
        _byte("ComAdr", self.address)


@dataclass(frozen=True, slots=True, kw_only=True)
class StayQuiet:
    address: int = 0
    uid: bytes

    def __post_init__(self) -> None:
        _byte("ComAdr", self.address)
        _uid(self.uid)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadBlock:
    address: int = 0
    uid: bytes
    block: int

    def __post_init__(self) -> None:
        _byte("ComAdr", self.address)
        _uid(self.uid)
        _byte("block", self.block)


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteAfi:
    address: int = 0
    uid: bytes
    afi: int

    def __post_init__(self) -> None:
        _byte("ComAdr", self.address)
        _uid(self.uid)
        _byte("AFI", self.afi)


RrRequest = InitDevice | CloseRf | OpenRf | Inventory | StayQuiet | ReadBlock | WriteAfi
_KEYS: dict[type, tuple[int, int]] = {
    InitDevice: (0x00, 0x00), CloseRf: (0x00, 0x01), OpenRf: (0x00, 0x02),
    Inventory: (0x01, 0x06), StayQuiet: (0x02, 0x00), ReadBlock: (0x20, 0x00),
    WriteAfi: (0x27, 0x00),
}


def request_key(msg: object) -> tuple[int, int]:
    """(Cmd, State) of a request."""
    try:
        return _KEYS[type(msg)]
    except KeyError:
        raise LocalProtocolError(f"{type(msg).__name__} is not an RR3036 request") from None


def _request_data(msg: object) -> bytes:
    if isinstance(msg, (StayQuiet,)):
        return msg.uid
    if isinstance(msg, ReadBlock):
        return msg.uid + bytes((msg.block,))
    if isinstance(msg, WriteAfi):
        return msg.uid + bytes((msg.afi,))
    return b""


def _frame(body: bytes) -> bytes:
    frame = bytes((len(body) + 2,)) + body
    crc = crc16_mcrf4xx(frame)
    return frame + bytes((crc & 0xFF, crc >> 8))


def encode_request(msg: object) -> bytes:
    cmd, state = request_key(msg)
    return _frame(bytes((msg.address, cmd, state)) + _request_data(msg))  # type: ignore[union-attr]


# ------------------------------------------------------------------ replies


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """One reply frame, untyped (what the reply decoder yields)."""

    address: int
    status: int
    data: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryReply:
    """Tags as (DSFID, UID wire bytes); status 0x00, or 0x0A/0x0B with the UIDs collected."""

    address: int
    status: int = Status.OK
    tags: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadBlockReply:
    address: int
    status: int = Status.OK
    security: int = 0
    block: bytes = b"\x00\x00\x00\x00"


@dataclass(frozen=True, slots=True, kw_only=True)
class InitReply:
    address: int
    status: int = Status.OK
    version: int = 0
    reader_type: int = 0
    protocols: int = 0
    scan_time: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReply:
    """Any other reply; ``data`` e.g. the ISO error code of status 0x0F."""

    address: int
    status: int = Status.OK
    data: bytes = b""


RrReply = InventoryReply | ReadBlockReply | InitReply | StatusReply


def _reply_fields(reply: object) -> tuple[int, int, bytes]:
    if isinstance(reply, InventoryReply):
        if len(reply.tags) > MAX_UIDS_PER_REPLY:
            raise LocalProtocolError(f"at most {MAX_UIDS_PER_REPLY} UIDs per reply")
        out = bytearray()
        for dsfid, uid in reply.tags:
            _byte("DSFID", dsfid)
            _uid(uid)
            out.append(dsfid)
            out += uid
        return reply.address, reply.status, bytes(out)
    if isinstance(reply, ReadBlockReply):
        _byte("security", reply.security)
        if len(reply.block) != 4:
            raise LocalProtocolError("a block is 4 bytes")
        return reply.address, reply.status, bytes((reply.security,)) + reply.block
    if isinstance(reply, InitReply):
        for name, v, hi in (("version", reply.version, 0xFFFF),
                            ("reader_type", reply.reader_type, 0xFF),
                            ("protocols", reply.protocols, 0xFFFF),
                            ("scan_time", reply.scan_time, 0xFF)):
            if not isinstance(v, int) or not 0 <= v <= hi:
                raise LocalProtocolError(f"{name} out of range")
        data = (reply.version.to_bytes(2, "big") + b"\x00\x00" + bytes((reply.reader_type,))
                + reply.protocols.to_bytes(2, "big") + bytes((reply.scan_time,)))
        return reply.address, reply.status, data
    if isinstance(reply, (StatusReply, Reply)):
        return reply.address, reply.status, bytes(reply.data)
    raise LocalProtocolError(f"{type(reply).__name__} is not an RR3036 reply")


def encode_reply(reply: object) -> bytes:
    address, status, data = _reply_fields(reply)
    _byte("ComAdr", address)
    _byte("Status", status)
    if len(data) + 4 > _MAX_LEN:
        raise LocalProtocolError("reply data exceed 251 bytes")
    return _frame(bytes((address, status)) + data)


def decode_reply(reply: Reply, request: object) -> RrReply:
    """The typed reply ``reply`` is to ``request`` (raises BadPayload)."""
    data, status = reply.data, reply.status

    def bad(msg: str) -> BadPayload:
        return BadPayload(msg, command=request_key(request)[0], address=reply.address)

    if isinstance(request, Inventory) and status in (0x00, 0x0A, 0x0B):
        if len(data) % TAG_RECORD:
            raise bad("inventory data is not a multiple of 9 bytes")
        tags = tuple((data[i], bytes(data[i + 1 : i + TAG_RECORD]))
                     for i in range(0, len(data), TAG_RECORD))
        return InventoryReply(address=reply.address, status=status, tags=tags)
    if isinstance(request, ReadBlock) and status == 0x00:
        if len(data) != 5:
            raise bad("read block reply needs 5 data bytes")
        return ReadBlockReply(address=reply.address, status=status, security=data[0],
                              block=bytes(data[1:]))
    if isinstance(request, InitDevice) and status == 0x00:
        if len(data) != 8:
            raise bad("init device reply needs 8 data bytes")
        return InitReply(address=reply.address, status=status,
                         version=int.from_bytes(data[0:2], "big"), reader_type=data[4],
                         protocols=int.from_bytes(data[5:7], "big"), scan_time=data[7])
    return StatusReply(address=reply.address, status=status, data=bytes(data))


# ------------------------------------------------------------------ decoding


class _Decoder(ByteStream):
    """``Len``-prefixed frames: the buffer starts at a candidate whose first byte is Len.

    Len below the minimum → ``BadLength``, one byte dropped; CRC mismatch → ``BadCrc``, one
    byte dropped (a real frame may start inside); a good frame is consumed whole.
    """

    _min_len = 4

    def next_event(self) -> object:
        buf = self._buf
        if not buf:
            return NEED_DATA
        size = buf[0] + 1
        if buf[0] < self._min_len:
            raw = bytes(buf[:1])
            del buf[:1]
            self.errors += 1
            raise BadLength(f"Len {raw[0]} below {self._min_len}", raw)
        if len(buf) < size:
            return NEED_DATA
        frame = bytes(buf[:size])
        if crc16_mcrf4xx(frame[:-2]) != frame[-2] | (frame[-1] << 8):
            del buf[:1]
            self.errors += 1
            raise BadCrc("CRC mismatch", frame)
        del buf[:size]
        try:
            event = self._decode(frame)
        except FrameError:
            self.errors += 1
            raise
        self.frames += 1
        return event

    def expire(self) -> None:
        buf = self._buf
        if buf and (buf[0] < self._min_len or len(buf) >= buf[0] + 1):
            raise LocalProtocolError("drain next_event() until NEED_DATA before expire()")
        self._drop_partial()

    def _decode(self, frame: bytes) -> object:  # pragma: no cover - overridden
        raise NotImplementedError


_BY_KEY = {v: k for k, v in _KEYS.items()}


class RequestDecoder(_Decoder):
    """Module side: host frames → typed requests."""

    _min_len = 5

    def _decode(self, frame: bytes) -> object:
        address, cmd, state, data = frame[1], frame[2], frame[3], frame[4:-2]
        kind = _BY_KEY.get((cmd, state))
        if kind is None:
            raise UnknownCommand(f"Cmd 0x{cmd:02X} State 0x{state:02X} not supported", frame,
                                 command=cmd, address=address)
        need = {StayQuiet: 8, ReadBlock: 9, WriteAfi: 9}.get(kind, 0)
        if len(data) != need:
            raise BadPayload(f"{kind.__name__} takes {need} data bytes", frame, command=cmd,
                             address=address)
        if kind is StayQuiet:
            return StayQuiet(address=address, uid=bytes(data))
        if kind is ReadBlock:
            return ReadBlock(address=address, uid=bytes(data[:8]), block=data[8])
        if kind is WriteAfi:
            return WriteAfi(address=address, uid=bytes(data[:8]), afi=data[8])
        return kind(address=address)


class ReplyDecoder(_Decoder):
    """Host side: module frames → :class:`Reply`."""

    _min_len = 4

    def _decode(self, frame: bytes) -> object:
        return Reply(address=frame[1], status=frame[2], data=bytes(frame[3:-2]))
