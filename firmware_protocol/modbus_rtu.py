"""Modbus RTU framing, sans-IO: the frames of generic Modbus digital I/O modules.

Why our own splitter when pymodbus exists: the lendbox fault/pacing proxy
(``simulator.transport.BusServer``) and diagnostics need to know where one RTU frame ends
inside a byte stream *before* anything answers it, with the same h11-style decoder contract
and ``FrameError`` tree as every other family (docs/families.md). pymodbus stays the device
(the emulator) and the host client; this module only cuts and checks frames.

Frame layout (Modbus over Serial Line V1.02, §2.5.1)::

    [unit 1] [function 1] [data 0..252] [CRC-16/MODBUS 2, low byte first]

RTU frames carry no length field and no start byte: the length follows from the function
code and, for some functions, a byte-count field. Rules implemented (request / reply side):

=====  ====================================  ==========================================
 FC     request                               reply
=====  ====================================  ==========================================
 1, 2   8 bytes (address, quantity)           5 + byte count (byte count at offset 2)
 3, 4   8 bytes (address, quantity)           5 + byte count
 5, 6   8 bytes (address, value)              8 bytes (echo)
15, 16  9 + byte count (byte count at 6)      8 bytes (address, quantity)
 |0x80  —                                     5 bytes (exception code)
=====  ====================================  ==========================================

Decoding rules (both directions):

- fewer bytes than the rule needs → ``NEED_DATA`` (nothing consumed);
- a known function with a CRC mismatch over its computed length → ``BadCrc``, those bytes
  dropped (on a half-duplex bus the rest of a broken frame is junk too; the line's silence
  ends it);
- a byte-count field that no valid frame can have → ``BadLength``, one byte dropped;
- an unknown function code: if some prefix of the buffer ends in a matching CRC, that prefix
  is an ``UnknownCommand`` (a peer may speak functions we do not); otherwise wait for more
  bytes or for ``expire()`` (the 3.5-character silence), which drops them as
  ``TruncatedFrame``;
- a good CRC with fields out of range (e.g. a coil value other than 0xFF00/0x0000, a
  quantity above the spec's maximum) → ``BadPayload`` carrying the unit and function.

The decoder stays usable after raising. No I/O, threads or clocks here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .codec import NEED_DATA, NeedData
from .stream import ByteStream
from .errors import (
    BadCrc,
    BadLength,
    BadPayload,
    LocalProtocolError,
    UnknownCommand,
)

__all__ = [
    "FC_READ_COILS",
    "FC_READ_DISCRETE_INPUTS",
    "FC_READ_HOLDING_REGISTERS",
    "FC_READ_INPUT_REGISTERS",
    "FC_WRITE_MULTIPLE_COILS",
    "FC_WRITE_MULTIPLE_REGISTERS",
    "FC_WRITE_SINGLE_COIL",
    "FC_WRITE_SINGLE_REGISTER",
    "MAX_FRAME",
    "BitsReply",
    "ExceptionReply",
    "ModbusReply",
    "ModbusRequest",
    "ReadBits",
    "ReadRegisters",
    "RegistersReply",
    "ReplyDecoder",
    "RequestDecoder",
    "WriteMultipleCoils",
    "WriteMultipleRegisters",
    "WriteReply",
    "WriteSingle",
    "crc16_modbus",
    "encode_reply",
    "encode_request",
]

FC_READ_COILS = 0x01
FC_READ_DISCRETE_INPUTS = 0x02
FC_READ_HOLDING_REGISTERS = 0x03
FC_READ_INPUT_REGISTERS = 0x04
FC_WRITE_SINGLE_COIL = 0x05
FC_WRITE_SINGLE_REGISTER = 0x06
FC_WRITE_MULTIPLE_COILS = 0x0F
FC_WRITE_MULTIPLE_REGISTERS = 0x10

#: The longest RTU frame (unit + PDU of 253 + CRC).
MAX_FRAME = 256
#: Quantity limits of the Modbus Application Protocol V1.1b3 §6.
_MAX_READ_BITS = 2000
_MAX_READ_REGS = 125
_MAX_WRITE_BITS = 1968
_MAX_WRITE_REGS = 123
_COIL_ON = 0xFF00
_COIL_OFF = 0x0000

_READ_BITS = (FC_READ_COILS, FC_READ_DISCRETE_INPUTS)
_READ_REGS = (FC_READ_HOLDING_REGISTERS, FC_READ_INPUT_REGISTERS)
_WRITE_SINGLE = (FC_WRITE_SINGLE_COIL, FC_WRITE_SINGLE_REGISTER)
_WRITE_MULTI = (FC_WRITE_MULTIPLE_COILS, FC_WRITE_MULTIPLE_REGISTERS)


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _make_table()


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (reflected poly 0xA001, init 0xFFFF, no final xor).

    On the wire the low byte goes first: ``01 03 00 00 00 0A`` has CRC 0xCDC5, sent
    ``C5 CD``.
    """
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def _with_crc(body: bytes) -> bytes:
    return body + crc16_modbus(body).to_bytes(2, "little")


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadBits:
    """FC 1 (coils) or FC 2 (discrete inputs): ``count`` bits from ``address``."""

    unit: int
    function: Literal[1, 2]
    address: int
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadRegisters:
    """FC 3 (holding) or FC 4 (input registers)."""

    unit: int
    function: Literal[3, 4]
    address: int
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteSingle:
    """FC 5 (one coil: ``value`` 0xFF00 on / 0x0000 off) or FC 6 (one register).

    The reply of both is the identical frame, so the same class serves as the reply.
    """

    unit: int
    function: Literal[5, 6]
    address: int
    value: int

    @property
    def on(self) -> bool:
        """For FC 5: is the coil switched on?"""
        return self.value == _COIL_ON


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteMultipleCoils:
    """FC 15: ``len(values)`` coils from ``address``."""

    unit: int
    address: int
    values: tuple[bool, ...]
    function: Literal[15] = 15


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteMultipleRegisters:
    """FC 16: ``len(values)`` registers from ``address``."""

    unit: int
    address: int
    values: tuple[int, ...]
    function: Literal[16] = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class BitsReply:
    """Reply to FC 1/2. ``bits`` holds every bit of the data bytes (a multiple of 8, bit 0 of
    the first byte first); the requester knows how many it asked for."""

    unit: int
    function: Literal[1, 2]
    bits: tuple[bool, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistersReply:
    """Reply to FC 3/4."""

    unit: int
    function: Literal[3, 4]
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteReply:
    """Reply to FC 15/16: where and how many were written."""

    unit: int
    function: Literal[15, 16]
    address: int
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExceptionReply:
    """The device refused ``function`` with an exception ``code`` (1 illegal function,
    2 illegal data address, 3 illegal data value, 4 device failure, ...)."""

    unit: int
    function: int
    code: int


ModbusRequest = ReadBits | ReadRegisters | WriteSingle | WriteMultipleCoils | WriteMultipleRegisters
ModbusReply = BitsReply | RegistersReply | WriteSingle | WriteReply | ExceptionReply


# ---------------------------------------------------------------- encoding


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise LocalProtocolError(what)


def _u16(value: int, name: str) -> bytes:
    _check(isinstance(value, int) and 0 <= value <= 0xFFFF, f"{name} {value!r} is not 0..65535")
    return value.to_bytes(2, "big")


def _unit(unit: int) -> bytes:
    _check(isinstance(unit, int) and 0 <= unit <= 255, f"unit {unit!r} is not 0..255")
    return bytes([unit])


def _pack_bits(bits: tuple[bool, ...]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def _unpack_bits(data: bytes) -> tuple[bool, ...]:
    return tuple(bool(b >> i & 1) for b in data for i in range(8))


def encode_request(msg: ModbusRequest) -> bytes:
    """The RTU frame of a request; raises ``LocalProtocolError`` for fields out of range."""
    if isinstance(msg, ReadBits):
        _check(msg.function in _READ_BITS, f"ReadBits function {msg.function}")
        _check(1 <= msg.count <= _MAX_READ_BITS, f"bit count {msg.count} not 1..2000")
        body = _unit(msg.unit) + bytes([msg.function]) + _u16(msg.address, "address") \
            + _u16(msg.count, "count")
    elif isinstance(msg, ReadRegisters):
        _check(msg.function in _READ_REGS, f"ReadRegisters function {msg.function}")
        _check(1 <= msg.count <= _MAX_READ_REGS, f"register count {msg.count} not 1..125")
        body = _unit(msg.unit) + bytes([msg.function]) + _u16(msg.address, "address") \
            + _u16(msg.count, "count")
    elif isinstance(msg, WriteSingle):
        _check(msg.function in _WRITE_SINGLE, f"WriteSingle function {msg.function}")
        if msg.function == FC_WRITE_SINGLE_COIL:
            _check(msg.value in (_COIL_ON, _COIL_OFF), f"coil value {msg.value:#x}")
        body = _unit(msg.unit) + bytes([msg.function]) + _u16(msg.address, "address") \
            + _u16(msg.value, "value")
    elif isinstance(msg, WriteMultipleCoils):
        n = len(msg.values)
        _check(1 <= n <= _MAX_WRITE_BITS, f"coil count {n} not 1..1968")
        data = _pack_bits(msg.values)
        body = _unit(msg.unit) + bytes([FC_WRITE_MULTIPLE_COILS]) \
            + _u16(msg.address, "address") + _u16(n, "count") + bytes([len(data)]) + data
    elif isinstance(msg, WriteMultipleRegisters):
        n = len(msg.values)
        _check(1 <= n <= _MAX_WRITE_REGS, f"register count {n} not 1..123")
        data = b"".join(_u16(v, "register") for v in msg.values)
        body = _unit(msg.unit) + bytes([FC_WRITE_MULTIPLE_REGISTERS]) \
            + _u16(msg.address, "address") + _u16(n, "count") + bytes([len(data)]) + data
    else:
        raise LocalProtocolError(f"{type(msg).__name__} is not a Modbus request")
    return _with_crc(body)


def encode_reply(msg: ModbusReply) -> bytes:
    """The RTU frame of a reply; raises ``LocalProtocolError`` for fields out of range."""
    if isinstance(msg, BitsReply):
        _check(msg.function in _READ_BITS, f"BitsReply function {msg.function}")
        _check(len(msg.bits) % 8 == 0 and 8 <= len(msg.bits) <= 250 * 8,
               f"{len(msg.bits)} bits is not 1..250 whole bytes")
        data = _pack_bits(msg.bits)
        body = _unit(msg.unit) + bytes([msg.function, len(data)]) + data
    elif isinstance(msg, RegistersReply):
        _check(msg.function in _READ_REGS, f"RegistersReply function {msg.function}")
        _check(1 <= len(msg.values) <= _MAX_READ_REGS, f"{len(msg.values)} registers")
        data = b"".join(_u16(v, "register") for v in msg.values)
        body = _unit(msg.unit) + bytes([msg.function, len(data)]) + data
    elif isinstance(msg, WriteSingle):
        return encode_request(msg)
    elif isinstance(msg, WriteReply):
        _check(msg.function in _WRITE_MULTI, f"WriteReply function {msg.function}")
        body = _unit(msg.unit) + bytes([msg.function]) + _u16(msg.address, "address") \
            + _u16(msg.count, "count")
    elif isinstance(msg, ExceptionReply):
        _check(1 <= msg.function <= 0x7F, f"exception for function {msg.function}")
        _check(0 <= msg.code <= 0xFF, f"exception code {msg.code}")
        body = _unit(msg.unit) + bytes([msg.function | 0x80, msg.code])
    else:
        raise LocalProtocolError(f"{type(msg).__name__} is not a Modbus reply")
    return _with_crc(body)


# ---------------------------------------------------------------- decoding


class _Decoder(ByteStream):
    """Shared buffer handling; subclasses say how long a frame is and what it means."""

    def _size(self, function: int) -> int | None | NeedData:
        """Frame length for this function code (``NEED_DATA`` until the byte count is in,
        None for an unknown function). Raises BadLength for an impossible byte count."""
        raise NotImplementedError

    def _parse(self, unit: int, function: int, pdu: bytes) -> object:
        raise NotImplementedError

    def _take(self, n: int) -> bytes:
        raw = bytes(self._buf[:n])
        del self._buf[:n]
        return raw

    def next_event(self) -> object:
        """The next whole frame's message, or ``NEED_DATA``; raises ``FrameError``
        subclasses (the offending bytes are consumed first, so the decoder moves on)."""
        buf = self._buf
        if len(buf) < 2:
            return NEED_DATA
        function = buf[1]
        try:
            size = self._size(function)
        except BadLength as exc:
            raise BadLength(str(exc), self._take(1)) from None
        if size is NEED_DATA:
            return NEED_DATA
        if size is None:
            return self._unknown(function)
        assert isinstance(size, int)
        if len(buf) < size:
            return NEED_DATA
        raw = self._take(size)
        body = raw[:-2]
        if crc16_modbus(body) != int.from_bytes(raw[-2:], "little"):
            raise BadCrc(f"CRC mismatch in a {size}-byte frame (function {function})", raw)
        try:
            return self._parse(raw[0], function, body[2:])
        except ValueError as exc:
            raise BadPayload(str(exc), raw, command=function, address=raw[0]) from None

    def _unknown(self, function: int) -> object:
        buf = self._buf
        for n in range(4, min(len(buf), MAX_FRAME) + 1):
            if crc16_modbus(bytes(buf[:n - 2])) == int.from_bytes(buf[n - 2:n], "little"):
                raw = self._take(n)
                raise UnknownCommand(f"unknown function code {function:#04x}", raw,
                                     command=function, address=raw[0])
        if len(buf) >= MAX_FRAME:
            raw = self._take(1)
            raise BadLength(f"no frame of function {function:#04x} fits {MAX_FRAME} bytes",
                            raw)
        return NEED_DATA


def _count_bytes(buf: bytearray, at: int, lo: int, hi: int) -> int | NeedData:
    if len(buf) <= at:
        return NEED_DATA
    n = buf[at]
    if not lo <= n <= hi:
        raise BadLength(f"byte count {n} is not {lo}..{hi}", bytes(buf[at:at + 1]))
    return n


class RequestDecoder(_Decoder):
    """Splits requests (what a device hears)."""

    def _size(self, function: int) -> int | None | NeedData:
        if function in _READ_BITS or function in _READ_REGS or function in _WRITE_SINGLE:
            return 8
        if function in _WRITE_MULTI:
            n = _count_bytes(self._buf, 6, 1, 246)  # 1968 coils or 123 registers
            return n if n is NEED_DATA else 9 + n  # type: ignore[operator]
        return None

    def _parse(self, unit: int, function: int, pdu: bytes) -> ModbusRequest:
        address = int.from_bytes(pdu[0:2], "big")
        value = int.from_bytes(pdu[2:4], "big")
        if function in _READ_BITS:
            if not 1 <= value <= _MAX_READ_BITS:
                raise ValueError(f"bit count {value} not 1..2000")
            return ReadBits(unit=unit, function=function, address=address,  # type: ignore[arg-type]
                            count=value)
        if function in _READ_REGS:
            if not 1 <= value <= _MAX_READ_REGS:
                raise ValueError(f"register count {value} not 1..125")
            return ReadRegisters(unit=unit, function=function,  # type: ignore[arg-type]
                                 address=address, count=value)
        if function in _WRITE_SINGLE:
            if function == FC_WRITE_SINGLE_COIL and value not in (_COIL_ON, _COIL_OFF):
                raise ValueError(f"coil value {value:#06x} is neither 0xFF00 nor 0x0000")
            return WriteSingle(unit=unit, function=function,  # type: ignore[arg-type]
                               address=address, value=value)
        data = pdu[5:]
        if function == FC_WRITE_MULTIPLE_COILS:
            if not 1 <= value <= _MAX_WRITE_BITS or len(data) != (value + 7) // 8:
                raise ValueError(f"{value} coils in {len(data)} data bytes")
            return WriteMultipleCoils(unit=unit, address=address,
                                      values=_unpack_bits(data)[:value])
        if not 1 <= value <= _MAX_WRITE_REGS or len(data) != 2 * value:
            raise ValueError(f"{value} registers in {len(data)} data bytes")
        return WriteMultipleRegisters(
            unit=unit, address=address,
            values=tuple(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)))


class ReplyDecoder(_Decoder):
    """Splits replies (what a host hears)."""

    def _size(self, function: int) -> int | None | NeedData:
        if function & 0x80:
            return 5 if 1 <= function & 0x7F <= 0x7F else None
        if function in _READ_BITS:
            n = _count_bytes(self._buf, 2, 1, 250)
            return n if n is NEED_DATA else 5 + n  # type: ignore[operator]
        if function in _READ_REGS:
            n = _count_bytes(self._buf, 2, 2, 250)
            return n if n is NEED_DATA else 5 + n  # type: ignore[operator]
        if function in _WRITE_SINGLE or function in _WRITE_MULTI:
            return 8
        return None

    def _parse(self, unit: int, function: int, pdu: bytes) -> ModbusReply:
        if function & 0x80:
            return ExceptionReply(unit=unit, function=function & 0x7F, code=pdu[0])
        if function in _READ_BITS:
            return BitsReply(unit=unit, function=function,  # type: ignore[arg-type]
                             bits=_unpack_bits(pdu[1:]))
        if function in _READ_REGS:
            data = pdu[1:]
            if len(data) % 2:
                raise ValueError(f"odd register byte count {len(data)}")
            return RegistersReply(
                unit=unit, function=function,  # type: ignore[arg-type]
                values=tuple(int.from_bytes(data[i:i + 2], "big")
                             for i in range(0, len(data), 2)))
        address = int.from_bytes(pdu[0:2], "big")
        value = int.from_bytes(pdu[2:4], "big")
        if function in _WRITE_SINGLE:
            if function == FC_WRITE_SINGLE_COIL and value not in (_COIL_ON, _COIL_OFF):
                raise ValueError(f"coil value {value:#06x} is neither 0xFF00 nor 0x0000")
            return WriteSingle(unit=unit, function=function,  # type: ignore[arg-type]
                               address=address, value=value)
        return WriteReply(unit=unit, function=function,  # type: ignore[arg-type]
                          address=address, count=value)
