"""Payload layouts of SPEC.md §6: one encoder and one decoder per message type.

Decoders are strict on purpose: a payload that does not fit its command byte for byte — wrong
length, a count that disagrees with the length, an enum value or a flag bit this version does
not define, a bool that is neither 0 nor 1, a non-ASCII serial — is refused as a whole, so a
board never acts on a half-understood request and a host never records a half-understood
reply. The single exception is the capability word of IDENTIFY, whose unknown bits are kept:
announcing what an older peer does not know is the whole point of that field.

The frame layer (``codec.py``) adds the address and sequence number to the errors raised here.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import TypeVar

from .const import (
    MAX_EVENTS_PER_REPLY,
    MAX_PAYLOAD,
    MAX_TAGS_PER_PAGE,
    REPLY_BIT,
    SERIAL_SIZE,
    UID_SIZE,
    Capability,
    Command,
    DoorFlags,
    ErrorCode,
    EventType,
    PartKind,
    PartStatus,
    UnlockOutcome,
)
from .errors import BadPayload, LocalProtocolError, UnknownCommand
from .messages import (
    Ack,
    AntennaDiag,
    AntennaDiagReply,
    BoardEvent,
    CountersReply,
    EventsReply,
    GetCounters,
    GetStates,
    Identify,
    IdentifyReply,
    Inventory,
    InventoryReply,
    Message,
    Nak,
    PartResult,
    ReadBlocks,
    ReadBlocksReply,
    ReadEvents,
    Request,
    SelfTest,
    SelfTestReply,
    SetAddress,
    SetEas,
    StatesReply,
    TagReport,
    Unlock,
    UnlockReply,
    WriteAfi,
)

__all__ = [
    "ACK_COMMANDS",
    "DOOR_FLAGS_MASK",
    "NAK_CODE",
    "command_byte",
    "decode_payload",
    "encode_payload",
    "is_known_command",
]

NAK_CODE = 0xFF
DOOR_FLAGS_MASK = 0x1F  # bits 5..7 are reserved and must be 0
ACK_COMMANDS = frozenset({Command.WRITE_AFI, Command.SET_EAS, Command.SET_ADDRESS})

_E = TypeVar("_E", bound=enum.Enum)


class _Invalid(Exception):
    """A payload does not fit its layout; the frame layer turns it into BadPayload."""


# ------------------------------------------------------------------ small field helpers

_U8 = struct.Struct("<B")
_UNLOCK_REQ = struct.Struct("<BHH")
_READ_EVENTS_REQ = struct.Struct("<IB")
_INVENTORY_REQ = struct.Struct("<BB")
_INVENTORY_REQ_SIZED = struct.Struct("<BBB")
_TAG_REQ = struct.Struct(f"<B{UID_SIZE}sB")  # READ_BLOCKS head, WRITE_AFI, SET_EAS
_READ_BLOCKS_REQ = struct.Struct(f"<B{UID_SIZE}sBB")
_SET_ADDRESS_REQ = struct.Struct(f"<{SERIAL_SIZE}sB")
_IDENTIFY_REP = struct.Struct(f"<5B{SERIAL_SIZE}s3BH")
_UNLOCK_REP = struct.Struct("<BHBB")
_EVENTS_HEAD = struct.Struct("<IIB")
_EVENT = struct.Struct("<IBBI")
_INVENTORY_HEAD = struct.Struct("<BBBHB")
_TAG = struct.Struct(f"<{UID_SIZE}sBb")
_BLOCKS_HEAD = struct.Struct(f"<{UID_SIZE}sBBB")
_DIAG_REP = struct.Struct("<BHb")
_COUNTERS_HEAD = struct.Struct("<5IB")
_PART = struct.Struct("<BBB")
_NAK = struct.Struct("<BB")


def _length(payload: bytes, size: int, what: str) -> None:
    if len(payload) != size:
        raise _Invalid(f"{what} payload must be {size} bytes, got {len(payload)}")


def _counted(payload: bytes, head: int, item: int, count: int, limit: int, what: str) -> None:
    if count > limit:
        raise _Invalid(f"{what}: count {count} exceeds {limit}")
    if len(payload) != head + count * item:
        raise _Invalid(
            f"{what}: count {count} needs {head + count * item} payload bytes, got {len(payload)}"
        )


def _enum(cls: type[_E], value: int, what: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        raise _Invalid(f"{what}: unknown value 0x{value:02X}") from None


def _bool(value: int, what: str) -> bool:
    if value not in (0, 1):
        raise _Invalid(f"{what} must be 0 or 1, got {value}")
    return value == 1


def _door_flags(value: int) -> DoorFlags:
    if value & ~DOOR_FLAGS_MASK:
        raise _Invalid(f"door flags 0x{value:02X} set reserved bits")
    return DoorFlags(value)


def _serial_in(raw: bytes) -> str:
    text = raw.rstrip(b"\x00")
    if b"\x00" in text:
        raise _Invalid("serial has a NUL before its padding")
    if not text.isascii():
        raise _Invalid("serial is not ASCII")
    return text.decode("ascii")


def _serial_out(serial: str) -> bytes:
    return serial.encode("ascii").ljust(SERIAL_SIZE, b"\x00")


# ------------------------------------------------------------------ request decoders


def _empty(cls: Callable[[], Message], what: str) -> Callable[[bytes], Message]:
    def decode(payload: bytes) -> Message:
        _length(payload, 0, what)
        return cls()

    return decode


def _d_unlock(p: bytes) -> Message:
    _length(p, _UNLOCK_REQ.size, "UNLOCK")
    lock, pulse_ms, op_id = _UNLOCK_REQ.unpack(p)
    return Unlock(lock=lock, pulse_ms=pulse_ms, op_id=op_id)


def _d_read_events(p: bytes) -> Message:
    _length(p, _READ_EVENTS_REQ.size, "READ_EVENTS")
    cursor, max_events = _READ_EVENTS_REQ.unpack(p)
    return ReadEvents(cursor=cursor, max_events=max_events)


def _d_inventory(p: bytes) -> Message:
    # The page size byte is optional: a 2-byte request means full pages of 24 tags.
    if len(p) == _INVENTORY_REQ.size:
        antenna, page = _INVENTORY_REQ.unpack(p)
        return Inventory(antenna=antenna, page=page)
    _length(p, _INVENTORY_REQ_SIZED.size, "INVENTORY")
    antenna, page, page_size = _INVENTORY_REQ_SIZED.unpack(p)
    if not 1 <= page_size <= MAX_TAGS_PER_PAGE:
        raise _Invalid(f"INVENTORY page_size must be 1..{MAX_TAGS_PER_PAGE}, got {page_size}")
    return Inventory(antenna=antenna, page=page, page_size=page_size)


def _d_read_blocks(p: bytes) -> Message:
    _length(p, _READ_BLOCKS_REQ.size, "READ_BLOCKS")
    antenna, uid, first, count = _READ_BLOCKS_REQ.unpack(p)
    return ReadBlocks(antenna=antenna, uid=uid, first_block=first, count=count)


def _d_write_afi(p: bytes) -> Message:
    _length(p, _TAG_REQ.size, "WRITE_AFI")
    antenna, uid, afi = _TAG_REQ.unpack(p)
    return WriteAfi(antenna=antenna, uid=uid, afi=afi)


def _d_set_eas(p: bytes) -> Message:
    _length(p, _TAG_REQ.size, "SET_EAS")
    antenna, uid, enabled = _TAG_REQ.unpack(p)
    return SetEas(antenna=antenna, uid=uid, enabled=_bool(enabled, "SET_EAS enabled"))


def _d_antenna_diag(p: bytes) -> Message:
    _length(p, 1, "ANTENNA_DIAG")
    return AntennaDiag(antenna=p[0])


def _d_set_address(p: bytes) -> Message:
    _length(p, _SET_ADDRESS_REQ.size, "SET_ADDRESS")
    serial, new_address = _SET_ADDRESS_REQ.unpack(p)
    return SetAddress(serial=_serial_in(serial), new_address=new_address)


# ------------------------------------------------------------------ reply decoders


def _d_identify_reply(p: bytes) -> Message:
    _length(p, _IDENTIFY_REP.size, "IDENTIFY reply")
    pmaj, pmin, fmaj, fmin, fpat, serial, locks, sensors, antennas, caps = _IDENTIFY_REP.unpack(p)
    return IdentifyReply(
        protocol_version=(pmaj, pmin),
        firmware_version=(fmaj, fmin, fpat),
        serial=_serial_in(serial),
        locks=locks,
        sensors=sensors,
        antennas=antennas,
        capabilities=Capability(caps),
    )


def _d_states_reply(p: bytes) -> Message:
    if not p:
        raise _Invalid("GET_STATES reply payload is empty")
    _counted(p, 1, 1, p[0], MAX_PAYLOAD - 1, "GET_STATES reply")
    return StatesReply(doors=tuple(_door_flags(b) for b in p[1:]))


def _d_unlock_reply(p: bytes) -> Message:
    _length(p, _UNLOCK_REP.size, "UNLOCK reply")
    lock, op_id, outcome, door_open = _UNLOCK_REP.unpack(p)
    return UnlockReply(
        lock=lock,
        op_id=op_id,
        outcome=_enum(UnlockOutcome, outcome, "UNLOCK outcome"),
        door_open=_bool(door_open, "UNLOCK door_open"),
    )


def _d_events_reply(p: bytes) -> Message:
    if len(p) < _EVENTS_HEAD.size:
        raise _Invalid(f"READ_EVENTS reply payload shorter than {_EVENTS_HEAD.size} bytes")
    oldest, nxt, count = _EVENTS_HEAD.unpack_from(p)
    _counted(p, _EVENTS_HEAD.size, _EVENT.size, count, MAX_EVENTS_PER_REPLY, "READ_EVENTS reply")
    events = tuple(
        BoardEvent(seq=seq, kind=_enum(EventType, kind, "event kind"), lock=lock, uptime_ms=up)
        for seq, kind, lock, up in _EVENT.iter_unpack(p[_EVENTS_HEAD.size :])
    )
    return EventsReply(oldest_seq=oldest, next_seq=nxt, events=events)


def _d_inventory_reply(p: bytes) -> Message:
    if len(p) < _INVENTORY_HEAD.size:
        raise _Invalid(f"INVENTORY reply payload shorter than {_INVENTORY_HEAD.size} bytes")
    antenna, page, pages, total, count = _INVENTORY_HEAD.unpack_from(p)
    _counted(p, _INVENTORY_HEAD.size, _TAG.size, count, MAX_TAGS_PER_PAGE, "INVENTORY reply")
    tags = tuple(
        TagReport(uid=uid, dsfid=dsfid, rssi=rssi)
        for uid, dsfid, rssi in _TAG.iter_unpack(p[_INVENTORY_HEAD.size :])
    )
    return InventoryReply(antenna=antenna, page=page, pages=pages, total_tags=total, tags=tags)


def _d_read_blocks_reply(p: bytes) -> Message:
    if len(p) < _BLOCKS_HEAD.size:
        raise _Invalid(f"READ_BLOCKS reply payload shorter than {_BLOCKS_HEAD.size} bytes")
    uid, first, block_size, count = _BLOCKS_HEAD.unpack_from(p)
    if not 1 <= block_size <= 32:
        raise _Invalid(f"READ_BLOCKS reply block_size {block_size} is not 1..32")
    _counted(p, _BLOCKS_HEAD.size, block_size, count, 255, "READ_BLOCKS reply")
    return ReadBlocksReply(
        uid=uid, first_block=first, block_size=block_size, data=p[_BLOCKS_HEAD.size :]
    )


def _d_antenna_diag_reply(p: bytes) -> Message:
    _length(p, _DIAG_REP.size, "ANTENNA_DIAG reply")
    antenna, reflected, noise = _DIAG_REP.unpack(p)
    return AntennaDiagReply(antenna=antenna, reflected_permille=reflected, noise_floor_dbm=noise)


def _d_counters_reply(p: bytes) -> Message:
    if len(p) < _COUNTERS_HEAD.size:
        raise _Invalid(f"GET_COUNTERS reply payload shorter than {_COUNTERS_HEAD.size} bytes")
    uptime, ok, crc_err, retrans, power, n = _COUNTERS_HEAD.unpack_from(p)
    _counted(p, _COUNTERS_HEAD.size, 4, n, 57, "GET_COUNTERS reply")
    unlocks = struct.unpack_from(f"<{n}I", p, _COUNTERS_HEAD.size)
    return CountersReply(
        uptime_s=uptime,
        frames_ok=ok,
        crc_errors=crc_err,
        retransmissions=retrans,
        power_cycles=power,
        unlocks=unlocks,
    )


def _d_self_test_reply(p: bytes) -> Message:
    if not p:
        raise _Invalid("SELF_TEST reply payload is empty")
    _counted(p, 1, _PART.size, p[0], 83, "SELF_TEST reply")
    results = tuple(
        PartResult(
            part=_enum(PartKind, part, "part kind"),
            index=index,
            status=_enum(PartStatus, status, "part status"),
        )
        for part, index, status in _PART.iter_unpack(p[1:])
    )
    return SelfTestReply(results=results)


def _ack(command: Command) -> Callable[[bytes], Message]:
    def decode(payload: bytes) -> Message:
        _length(payload, 0, f"{command.name} reply")
        return Ack(command=command)

    return decode


def _d_nak(p: bytes) -> Message:
    _length(p, _NAK.size, "NAK")
    command, error = _NAK.unpack(p)
    return Nak(command=command, error=_enum(ErrorCode, error, "NAK error"))


_DECODERS: dict[int, Callable[[bytes], Message]] = {
    Command.IDENTIFY: _empty(Identify, "IDENTIFY"),
    Command.GET_STATES: _empty(GetStates, "GET_STATES"),
    Command.UNLOCK: _d_unlock,
    Command.READ_EVENTS: _d_read_events,
    Command.INVENTORY: _d_inventory,
    Command.READ_BLOCKS: _d_read_blocks,
    Command.WRITE_AFI: _d_write_afi,
    Command.SET_EAS: _d_set_eas,
    Command.ANTENNA_DIAG: _d_antenna_diag,
    Command.GET_COUNTERS: _empty(GetCounters, "GET_COUNTERS"),
    Command.SELF_TEST: _empty(SelfTest, "SELF_TEST"),
    Command.SET_ADDRESS: _d_set_address,
    REPLY_BIT | Command.IDENTIFY: _d_identify_reply,
    REPLY_BIT | Command.GET_STATES: _d_states_reply,
    REPLY_BIT | Command.UNLOCK: _d_unlock_reply,
    REPLY_BIT | Command.READ_EVENTS: _d_events_reply,
    REPLY_BIT | Command.INVENTORY: _d_inventory_reply,
    REPLY_BIT | Command.READ_BLOCKS: _d_read_blocks_reply,
    REPLY_BIT | Command.WRITE_AFI: _ack(Command.WRITE_AFI),
    REPLY_BIT | Command.SET_EAS: _ack(Command.SET_EAS),
    REPLY_BIT | Command.ANTENNA_DIAG: _d_antenna_diag_reply,
    REPLY_BIT | Command.GET_COUNTERS: _d_counters_reply,
    REPLY_BIT | Command.SELF_TEST: _d_self_test_reply,
    REPLY_BIT | Command.SET_ADDRESS: _ack(Command.SET_ADDRESS),
    NAK_CODE: _d_nak,
}


# ------------------------------------------------------------------ encoders


def _e_unlock(m: Unlock) -> bytes:
    return _UNLOCK_REQ.pack(m.lock, m.pulse_ms, m.op_id)


def _e_read_events(m: ReadEvents) -> bytes:
    return _READ_EVENTS_REQ.pack(m.cursor, m.max_events)


def _e_inventory(m: Inventory) -> bytes:
    if m.page_size == MAX_TAGS_PER_PAGE:
        return _INVENTORY_REQ.pack(m.antenna, m.page)
    return _INVENTORY_REQ_SIZED.pack(m.antenna, m.page, m.page_size)


def _e_read_blocks(m: ReadBlocks) -> bytes:
    return _READ_BLOCKS_REQ.pack(m.antenna, m.uid, m.first_block, m.count)


def _e_write_afi(m: WriteAfi) -> bytes:
    return _TAG_REQ.pack(m.antenna, m.uid, m.afi)


def _e_set_eas(m: SetEas) -> bytes:
    return _TAG_REQ.pack(m.antenna, m.uid, 1 if m.enabled else 0)


def _e_antenna_diag(m: AntennaDiag) -> bytes:
    return _U8.pack(m.antenna)


def _e_set_address(m: SetAddress) -> bytes:
    return _SET_ADDRESS_REQ.pack(_serial_out(m.serial), m.new_address)


def _e_identify_reply(m: IdentifyReply) -> bytes:
    return _IDENTIFY_REP.pack(
        *m.protocol_version,
        *m.firmware_version,
        _serial_out(m.serial),
        m.locks,
        m.sensors,
        m.antennas,
        int(m.capabilities),
    )


def _e_states_reply(m: StatesReply) -> bytes:
    for flags in m.doors:
        if int(flags) & ~DOOR_FLAGS_MASK:
            raise LocalProtocolError(f"door flags {int(flags):#04x} set reserved bits")
    return bytes((len(m.doors), *(int(d) for d in m.doors)))


def _e_unlock_reply(m: UnlockReply) -> bytes:
    return _UNLOCK_REP.pack(m.lock, m.op_id, int(m.outcome), 1 if m.door_open else 0)


def _e_events_reply(m: EventsReply) -> bytes:
    parts = [_EVENTS_HEAD.pack(m.oldest_seq, m.next_seq, len(m.events))]
    parts.extend(_EVENT.pack(e.seq, int(e.kind), e.lock, e.uptime_ms) for e in m.events)
    return b"".join(parts)


def _e_inventory_reply(m: InventoryReply) -> bytes:
    parts = [_INVENTORY_HEAD.pack(m.antenna, m.page, m.pages, m.total_tags, len(m.tags))]
    parts.extend(_TAG.pack(t.uid, t.dsfid, t.rssi) for t in m.tags)
    return b"".join(parts)


def _e_read_blocks_reply(m: ReadBlocksReply) -> bytes:
    count = len(m.data) // m.block_size
    return _BLOCKS_HEAD.pack(m.uid, m.first_block, m.block_size, count) + m.data


def _e_antenna_diag_reply(m: AntennaDiagReply) -> bytes:
    return _DIAG_REP.pack(m.antenna, m.reflected_permille, m.noise_floor_dbm)


def _e_counters_reply(m: CountersReply) -> bytes:
    return _COUNTERS_HEAD.pack(
        m.uptime_s, m.frames_ok, m.crc_errors, m.retransmissions, m.power_cycles, len(m.unlocks)
    ) + struct.pack(f"<{len(m.unlocks)}I", *m.unlocks)


def _e_self_test_reply(m: SelfTestReply) -> bytes:
    return bytes((len(m.results),)) + b"".join(
        _PART.pack(int(r.part), r.index, int(r.status)) for r in m.results
    )


def _e_nak(m: Nak) -> bytes:
    return _NAK.pack(m.command, int(m.error))


def _e_empty(m: Message) -> bytes:
    return b""


_ENCODERS: dict[type[Message], Callable[..., bytes]] = {
    Identify: _e_empty,
    GetStates: _e_empty,
    Unlock: _e_unlock,
    ReadEvents: _e_read_events,
    Inventory: _e_inventory,
    ReadBlocks: _e_read_blocks,
    WriteAfi: _e_write_afi,
    SetEas: _e_set_eas,
    AntennaDiag: _e_antenna_diag,
    GetCounters: _e_empty,
    SelfTest: _e_empty,
    SetAddress: _e_set_address,
    IdentifyReply: _e_identify_reply,
    StatesReply: _e_states_reply,
    UnlockReply: _e_unlock_reply,
    EventsReply: _e_events_reply,
    InventoryReply: _e_inventory_reply,
    ReadBlocksReply: _e_read_blocks_reply,
    Ack: _e_empty,
    AntennaDiagReply: _e_antenna_diag_reply,
    CountersReply: _e_counters_reply,
    SelfTestReply: _e_self_test_reply,
    Nak: _e_nak,
}


# ------------------------------------------------------------------ public entry points


def is_known_command(cmd: int) -> bool:
    """Whether ``cmd`` (a CMD byte off the wire) names a request, a reply or NAK of v1.0."""
    return cmd in _DECODERS


def command_byte(message: Message) -> int:
    """The CMD byte that carries ``message``: the code for a request, code | 0x80 for a
    reply (an Ack takes the code of the command it acknowledges), 0xFF for NAK.

    Raises:
        LocalProtocolError: ``message`` is not a message type of this protocol.
    """
    if type(message) not in _ENCODERS:
        raise LocalProtocolError(f"{type(message).__name__} is not a message of this protocol")
    if isinstance(message, Nak):
        return NAK_CODE
    if isinstance(message, Ack):
        return REPLY_BIT | int(message.command)
    code = int(message.COMMAND)
    return code if isinstance(message, Request) else REPLY_BIT | code


def encode_payload(message: Message) -> tuple[int, bytes]:
    """Lay ``message`` out per SPEC.md §6.

    Returns:
        ``(cmd, payload)``: the CMD byte and the payload bytes (at most 250).

    Raises:
        LocalProtocolError: not a message of this protocol, or a value the wire cannot carry
            (reserved door-flag bits). Nothing is half-encoded.
    """
    cmd = command_byte(message)
    try:
        payload = _ENCODERS[type(message)](message)
    except (struct.error, UnicodeEncodeError, TypeError, ValueError) as exc:
        raise LocalProtocolError(f"cannot encode {message!r}: {exc}") from exc
    if len(payload) > MAX_PAYLOAD:
        raise LocalProtocolError(f"{type(message).__name__} payload is {len(payload)} bytes")
    return cmd, payload


def decode_payload(cmd: int, payload: bytes, *, address: int = 0, seq: int = 0) -> Message:
    """Turn the CMD byte and payload of a frame whose CRC was good into a message.

    Args:
        cmd: the CMD byte.
        payload: the payload bytes.
        address, seq: copied into the error so that a board can address its NAK.

    Raises:
        UnknownCommand: ``cmd`` is no request, reply or NAK of this protocol version.
        BadPayload: the payload does not fit the command's layout or values.
    """
    raw = bytes(payload)
    decoder = _DECODERS.get(cmd)
    if decoder is None:
        raise UnknownCommand(
            f"unknown command 0x{cmd:02X}", raw, command=cmd, address=address, seq=seq
        )
    try:
        return decoder(raw)
    except (_Invalid, LocalProtocolError, ValueError, struct.error) as exc:
        raise BadPayload(
            f"command 0x{cmd:02X}: {exc}", raw, command=cmd, address=address, seq=seq
        ) from exc
