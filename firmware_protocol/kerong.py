"""Kerong CU-series lock control units (KR-CU12 / KR-CU16): a sans-IO codec.

Why a codec of its own: Kerong CU units are a common commercial lock controller for locker
walls; their frames carry an STX/ETX pair and a byte-sum check but no length byte, so the
decoder knows each command's fixed layout.

Facts used (hardware-limits.md §3.2; no code taken from any source):

* RS-485, 19200 Bd 8N1 factory default; 9600/19200/57600/115200 settable (command 0x40) —
  TypeScript "Kerong Lock Controller Module" (public code), CartWise "RS485 Controller Module
  - KR-CU16 Protocol" (public Python), ``jin0949/KR-CU16_locker``.
* Frame ``STX 0x02 | ADDR | CMD | [DATA] | ETX 0x03 | SUM``, SUM = sum of every byte before
  it & 0xFF; ADDR high nibble = unit (board), low nibble = lock − 1; 0xF0 = every unit.
  Worked example ``02 00 30 03 35`` (status of unit 0) — same sources.
* Commands: 0x30 get status, 0x31 unlock one, 0x32 status of every unit on the bus (sent to
  0xF0), 0x33 unlock all, 0x37 set the unlock (pulse) time 0..60000 ms in 10 ms units as two
  bytes high first (``02 ADDR 37 HI LO 03 SUM``), 0x39 delayed unlock 0..250 s
  (``02 ADDR 39 SS 03 SUM``) — TS module; CartWise's command table adds reply codes 0x35
  "return single CU data", 0x36 "return all CU data", 0x38 "return unlock time".
* Status reply, 9 bytes: ``02 ADDR 35 HOOK1-8 HOOK9-16 IR1-8 IR9-16 03 SUM``; bit 0 of the
  first byte of each pair = lock 1 (resp. 9); a hook bit set = lock hook closed (locked), an
  IR bit set = the infrared sensor sees an item — TS module ``getStatus``; CartWise
  ``is_lock_closed`` / ``has_cart_inside``. An unlock is answered with the same status frame
  (CartWise reads a 9-byte reply to 0x31).

Assumptions where the sources are silent (documented in docs/families.md): the reply to 0x32
is the 9-byte frame with CMD 0x36; the reply to 0x37 is ``02 ADDR 38 HI LO 03 SUM`` echoing the
time set. The host never decodes them to decide an unlock.

Theory of operation: like ``firmware_protocol.cn485`` — a candidate must start with STX; the
command byte fixes the length; ETX and SUM must fit, else only the STX byte is dropped
(``BadCrc`` when only SUM is wrong, ``Garbage`` otherwise) and decoding resumes at the next
STX; a well-framed request with an unknown command is ``UnknownCommand`` (5-byte form).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .codec import NEED_DATA, NeedData
from .stream import ByteStream
from .errors import (
    BadCrc,
    BadPayload,
    Garbage,
    LocalProtocolError,
    TruncatedFrame,
    UnknownCommand,
)

__all__ = [
    "ALL_UNITS",
    "CMD_GET_STATUS",
    "CMD_QUERY_BUS",
    "CMD_SET_PULSE",
    "CMD_UNLOCK",
    "CMD_UNLOCK_ALL",
    "ETX",
    "LINK_BAUDRATE",
    "MAX_PULSE_MS",
    "MAX_UNIT",
    "STX",
    "DelayedUnlock",
    "GetStatus",
    "KerongReply",
    "KerongRequest",
    "PulseReply",
    "QueryBus",
    "ReplyDecoder",
    "RequestDecoder",
    "SetPulse",
    "StatusReply",
    "Unlock",
    "UnlockAll",
    "checksum",
    "decode_reply",
    "decode_request",
    "encode_reply",
    "encode_request",
]

LINK_BAUDRATE = 19200
STX = 0x02
ETX = 0x03
ALL_UNITS = 0xF0
MAX_UNIT = 14  # 0xF_ is the broadcast address
LOCKS_PER_UNIT = 16
MAX_PULSE_MS = 60_000
MAX_DELAY_S = 250
CMD_GET_STATUS = 0x30
CMD_UNLOCK = 0x31
CMD_QUERY_BUS = 0x32
CMD_UNLOCK_ALL = 0x33
CMD_STATUS = 0x35
CMD_STATUS_ALL = 0x36
CMD_SET_PULSE = 0x37
CMD_PULSE = 0x38
CMD_DELAYED_UNLOCK = 0x39
_REQUEST_SIZE = {CMD_GET_STATUS: 5, CMD_UNLOCK: 5, CMD_QUERY_BUS: 5, CMD_UNLOCK_ALL: 5,
                 CMD_SET_PULSE: 7, CMD_DELAYED_UNLOCK: 6}
_REPLY_SIZE = {CMD_STATUS: 9, CMD_STATUS_ALL: 9, CMD_PULSE: 7}


def checksum(data: bytes | bytearray) -> int:
    """SUM: the sum of ``data`` (every byte before it) & 0xFF."""
    return sum(data) & 0xFF


def _int(name: str, value: int, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise LocalProtocolError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")


def _unit_lock(unit: int, lock: int) -> None:
    _int("unit", unit, 0, MAX_UNIT)
    _int("lock", lock, 1, LOCKS_PER_UNIT)


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True, kw_only=True)
class GetStatus:
    """Ask unit ``unit`` for every lock's hook and IR bits (``lock`` only fills the address
    nibble: the reply covers all 16)."""

    unit: int
    lock: int = 1

    def __post_init__(self) -> None:
        _unit_lock(self.unit, self.lock)


@dataclass(frozen=True, slots=True, kw_only=True)
class Unlock:
    """Pulse ``lock`` (1-based) of ``unit`` for the unit's unlock time."""

    unit: int
    lock: int

    def __post_init__(self) -> None:
        _unit_lock(self.unit, self.lock)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnlockAll:
    """Pulse every lock of ``unit``."""

    unit: int

    def __post_init__(self) -> None:
        _int("unit", self.unit, 0, MAX_UNIT)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryBus:
    """Status of every unit on the bus (0x32, sent to 0xF0 by the public drivers)."""

    address: int = ALL_UNITS

    def __post_init__(self) -> None:
        _int("address", self.address, 0, 0xFF)


@dataclass(frozen=True, slots=True, kw_only=True)
class SetPulse:
    """Set ``unit``'s unlock (coil) time; ``pulse_ms`` is sent in 10 ms units (rounded down)."""

    unit: int
    pulse_ms: int

    def __post_init__(self) -> None:
        _int("unit", self.unit, 0, MAX_UNIT)
        _int("pulse_ms", self.pulse_ms, 0, MAX_PULSE_MS)
        if self.pulse_ms % 10:
            raise LocalProtocolError("pulse_ms must be a multiple of 10 ms")


@dataclass(frozen=True, slots=True, kw_only=True)
class DelayedUnlock:
    """Set ``unit``'s delayed-unlock time, 0..250 s (decoded; the driver does not use it)."""

    unit: int
    delay_s: int

    def __post_init__(self) -> None:
        _int("unit", self.unit, 0, MAX_UNIT)
        _int("delay_s", self.delay_s, 0, MAX_DELAY_S)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReply:
    """A unit's hook and infrared bits; ``hooks[i]`` / ``infrared[i]`` are lock i + 1.
    ``address`` is the frame's ADDR byte (unit in the high nibble); ``all_units``: the 0x36
    form answering a bus-wide query."""

    address: int
    hooks: tuple[bool, ...]
    infrared: tuple[bool, ...]
    all_units: bool = False

    def __post_init__(self) -> None:
        _int("address", self.address, 0, 0xFF)
        if len(self.hooks) != LOCKS_PER_UNIT or len(self.infrared) != LOCKS_PER_UNIT:
            raise LocalProtocolError("hooks and infrared carry 16 locks each")

    @property
    def unit(self) -> int:
        return self.address >> 4


@dataclass(frozen=True, slots=True, kw_only=True)
class PulseReply:
    """The unit's unlock time (assumed reply to 0x37, CMD 0x38)."""

    address: int
    pulse_ms: int

    def __post_init__(self) -> None:
        _int("address", self.address, 0, 0xFF)
        _int("pulse_ms", self.pulse_ms, 0, 0xFFFF * 10)
        if self.pulse_ms % 10:
            raise LocalProtocolError("pulse_ms must be a multiple of 10 ms")

    @property
    def unit(self) -> int:
        return self.address >> 4


KerongRequest = GetStatus | Unlock | UnlockAll | QueryBus | SetPulse | DelayedUnlock
KerongReply = StatusReply | PulseReply


# ---------------------------------------------------------------- encoding


def _frame(address: int, cmd: int, data: bytes = b"") -> bytes:
    body = bytes((STX, address, cmd)) + data + bytes((ETX,))
    return body + bytes((checksum(body),))


def _addr(unit: int, lock: int = 1) -> int:
    return unit << 4 | (lock - 1)


def encode_request(message: KerongRequest) -> bytes:
    """The request's bytes on the wire.

    Raises:
        LocalProtocolError: not a request of this protocol.
    """
    if isinstance(message, GetStatus):
        return _frame(_addr(message.unit, message.lock), CMD_GET_STATUS)
    if isinstance(message, Unlock):
        return _frame(_addr(message.unit, message.lock), CMD_UNLOCK)
    if isinstance(message, UnlockAll):
        return _frame(_addr(message.unit), CMD_UNLOCK_ALL)
    if isinstance(message, QueryBus):
        return _frame(message.address, CMD_QUERY_BUS)
    if isinstance(message, SetPulse):
        units = message.pulse_ms // 10
        return _frame(_addr(message.unit), CMD_SET_PULSE, bytes((units >> 8, units & 0xFF)))
    if isinstance(message, DelayedUnlock):
        return _frame(_addr(message.unit), CMD_DELAYED_UNLOCK, bytes((message.delay_s,)))
    raise LocalProtocolError(f"{type(message).__name__} is not a Kerong request")


def _bits(flags: tuple[bool, ...]) -> bytes:
    return bytes(sum(1 << b for b in range(8) if flags[base + b]) for base in (0, 8))


def encode_reply(message: KerongReply) -> bytes:
    """The reply's bytes on the wire (unit side).

    Raises:
        LocalProtocolError: not a reply of this protocol.
    """
    if isinstance(message, StatusReply):
        cmd = CMD_STATUS_ALL if message.all_units else CMD_STATUS
        return _frame(message.address, cmd, _bits(message.hooks) + _bits(message.infrared))
    if isinstance(message, PulseReply):
        units = message.pulse_ms // 10
        return _frame(message.address, CMD_PULSE, bytes((units >> 8, units & 0xFF)))
    raise LocalProtocolError(f"{type(message).__name__} is not a Kerong reply")


def _flags(lo: int, hi: int) -> tuple[bool, ...]:
    return tuple(bool(lo >> b & 1) for b in range(8)) + tuple(bool(hi >> b & 1) for b in range(8))


# ---------------------------------------------------------------- decoding


class _Decoder(ByteStream):
    """Buffer handling of both directions (module docstring)."""

    _sizes: ClassVar[dict[int, int]] = {}

    def _candidate(self) -> bytes | NeedData:
        """The next well-framed candidate's bytes (consumed), or NEED_DATA; raises one
        FrameError per call for what does not fit."""
        buf = self._buf
        if not buf:
            return NEED_DATA
        if buf[0] != STX:
            stop = buf.find(STX, 1)
            stop = len(buf) if stop < 0 else stop
            raw = bytes(buf[:stop])
            del buf[:stop]
            self.errors += 1
            raise Garbage(f"{len(raw)} bytes before STX", raw)
        if len(buf) < 3:
            return NEED_DATA
        size = self._sizes.get(buf[2], 5)
        if len(buf) < size:
            return NEED_DATA
        candidate = bytes(buf[:size])
        framed = candidate[-2] == ETX
        if not framed or checksum(candidate[:-1]) != candidate[-1]:
            del buf[:1]
            self.errors += 1
            if framed:
                raise BadCrc("SUM mismatch", candidate)
            raise Garbage("STX without a fitting frame", candidate[:1])
        del buf[:size]
        if candidate[2] not in self._sizes:
            self.errors += 1
            raise UnknownCommand(f"unknown command 0x{candidate[2]:02X}", candidate,
                                 command=candidate[2], address=candidate[1])
        self.frames += 1
        return candidate


class RequestDecoder(_Decoder):
    """Host → unit frames (what a unit hears)."""

    _sizes: ClassVar[dict[int, int]] = _REQUEST_SIZE

    def next_event(self) -> KerongRequest | NeedData:
        """The next request or ``NEED_DATA``.

        Raises:
            Garbage, BadCrc, UnknownCommand: one problem per call, bytes in ``.raw``; the
                decoder has moved past them.
        """
        raw = self._candidate()
        if raw is NEED_DATA:
            return NEED_DATA
        assert isinstance(raw, bytes)
        addr, cmd = raw[1], raw[2]
        unit, lock = addr >> 4, (addr & 0x0F) + 1
        try:
            if cmd == CMD_QUERY_BUS:
                return QueryBus(address=addr)
            if cmd == CMD_GET_STATUS:
                return GetStatus(unit=unit, lock=lock)
            if cmd == CMD_UNLOCK:
                return Unlock(unit=unit, lock=lock)
            if cmd == CMD_UNLOCK_ALL:
                return UnlockAll(unit=unit)
            if cmd == CMD_SET_PULSE:
                return SetPulse(unit=unit, pulse_ms=(raw[3] << 8 | raw[4]) * 10)
            return DelayedUnlock(unit=unit, delay_s=raw[3])
        except LocalProtocolError as exc:  # the broadcast unit nibble, a value out of range
            self.errors += 1
            self.frames -= 1
            raise BadPayload(f"command 0x{cmd:02X}: {exc}", raw, command=cmd,
                             address=addr) from exc


class ReplyDecoder(_Decoder):
    """Unit → host frames: ``StatusReply`` (0x35/0x36) and ``PulseReply`` (0x38). A request
    echoed back (a line that echoes) comes out as ``UnknownCommand`` unless it is 5 bytes
    with a reply code — it never looks like a status reply (9 bytes, CMD 0x35/0x36)."""

    _sizes: ClassVar[dict[int, int]] = _REPLY_SIZE

    def next_event(self) -> KerongReply | NeedData:
        """The next reply or ``NEED_DATA``.

        Raises:
            Garbage, BadCrc, UnknownCommand: as for :meth:`RequestDecoder.next_event`.
        """
        raw = self._candidate()
        if raw is NEED_DATA:
            return NEED_DATA
        assert isinstance(raw, bytes)
        if raw[2] == CMD_PULSE:
            return PulseReply(address=raw[1], pulse_ms=(raw[3] << 8 | raw[4]) * 10)
        return StatusReply(address=raw[1], hooks=_flags(raw[3], raw[4]),
                           infrared=_flags(raw[5], raw[6]), all_units=raw[2] == CMD_STATUS_ALL)


def _one(decoder: RequestDecoder | ReplyDecoder, data: bytes) -> object:
    decoder.feed(data)
    event = decoder.next_event()
    if event is NEED_DATA:
        raise TruncatedFrame(f"{len(data)} bytes do not complete a frame", bytes(data))
    if decoder.buffered:
        raise Garbage(f"{decoder.buffered} bytes follow the frame", bytes(data))
    return event


def decode_request(data: bytes) -> KerongRequest:
    """Decode exactly one request (vectors, logs). Raises FrameError subclasses."""
    event = _one(RequestDecoder(), bytes(data))
    return event  # type: ignore[return-value]


def decode_reply(data: bytes) -> KerongReply:
    """Decode exactly one reply (vectors, logs). Raises FrameError subclasses."""
    event = _one(ReplyDecoder(), bytes(data))
    return event  # type: ignore[return-value]
