"""Typed messages of the lendbox controller-board protocol (SPEC.md §6).

A *message* is what a frame carries; the frame itself (board address, sequence number) is a
`Frame`. Requests go host → board, replies board → host. Every class is a frozen, slotted,
keyword-only dataclass validated on construction, so a message that exists can be encoded.
Locks and antennas are numbered from 1, as technicians count doors; 0 in an event means
"the whole board".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .const import (
    BROADCAST,
    MAX_ADDRESS,
    MAX_EVENTS_PER_REPLY,
    MAX_TAGS_PER_PAGE,
    MIN_ADDRESS,
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
from .errors import LocalProtocolError

__all__ = [
    "Message",
    "Request",
    "Reply",
    "Frame",
    "Identify",
    "GetStates",
    "Unlock",
    "ReadEvents",
    "Inventory",
    "ReadBlocks",
    "WriteAfi",
    "SetEas",
    "AntennaDiag",
    "GetCounters",
    "SelfTest",
    "SetAddress",
    "IdentifyReply",
    "StatesReply",
    "UnlockReply",
    "BoardEvent",
    "EventsReply",
    "TagReport",
    "InventoryReply",
    "ReadBlocksReply",
    "Ack",
    "AntennaDiagReply",
    "CountersReply",
    "PartResult",
    "SelfTestReply",
    "Nak",
]


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise LocalProtocolError(what)


def _u8(v: int, name: str, lo: int = 0) -> None:
    _check(isinstance(v, int) and lo <= v <= 0xFF, f"{name} must be an integer {lo}..255, got {v!r}")


def _u16(v: int, name: str, lo: int = 0) -> None:
    _check(isinstance(v, int) and lo <= v <= 0xFFFF, f"{name} must be {lo}..65535, got {v!r}")


def _u32(v: int, name: str) -> None:
    _check(isinstance(v, int) and 0 <= v <= 0xFFFFFFFF, f"{name} must be 0..2^32-1, got {v!r}")


def _uid(v: bytes) -> None:
    _check(isinstance(v, bytes) and len(v) == UID_SIZE, f"uid must be {UID_SIZE} bytes, got {v!r}")


class Message:
    """Base of every message. ``COMMAND`` is the request's command code."""

    COMMAND: ClassVar[Command]
    __slots__ = ()


class Request(Message):
    __slots__ = ()


class Reply(Message):
    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One frame: who it is for (or from), its sequence number, and its message."""

    address: int
    seq: int
    message: Message

    def __post_init__(self) -> None:
        _check(
            isinstance(self.address, int)
            and (MIN_ADDRESS <= self.address <= MAX_ADDRESS or self.address == BROADCAST),
            f"address must be {MIN_ADDRESS}..{MAX_ADDRESS} or broadcast 0x{BROADCAST:02X}, "
            f"got {self.address!r}",
        )
        _u8(self.seq, "seq")
        _check(isinstance(self.message, Message), "message must be a Message")


# ---------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True, kw_only=True)
class Identify(Request):
    COMMAND: ClassVar[Command] = Command.IDENTIFY


@dataclass(frozen=True, slots=True, kw_only=True)
class GetStates(Request):
    COMMAND: ClassVar[Command] = Command.GET_STATES


@dataclass(frozen=True, slots=True, kw_only=True)
class Unlock(Request):
    """Pulse lock ``lock`` for ``pulse_ms``. ``op_id`` is the operation's identity: a board
    that sees an op_id again (within its cache) answers from cache and never pulses twice."""

    COMMAND: ClassVar[Command] = Command.UNLOCK
    lock: int
    pulse_ms: int
    op_id: int

    def __post_init__(self) -> None:
        _u8(self.lock, "lock", 1)
        _u16(self.pulse_ms, "pulse_ms", 1)
        _u16(self.op_id, "op_id")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadEvents(Request):
    """Acknowledge every event with seq < ``cursor`` and fetch events from ``cursor`` on."""

    COMMAND: ClassVar[Command] = Command.READ_EVENTS
    cursor: int
    max_events: int = MAX_EVENTS_PER_REPLY

    def __post_init__(self) -> None:
        _u32(self.cursor, "cursor")
        _check(
            isinstance(self.max_events, int) and 1 <= self.max_events <= MAX_EVENTS_PER_REPLY,
            f"max_events must be 1..{MAX_EVENTS_PER_REPLY}",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory(Request):
    """Page 0 runs a new inventory round on ``antenna``; page k > 0 fetches page k of the
    last round's result without a new round (so a re-sent page request is harmless)."""

    COMMAND: ClassVar[Command] = Command.INVENTORY
    antenna: int
    page: int = 0
    page_size: int = MAX_TAGS_PER_PAGE  # tags per page; smaller pages survive a noisy line

    def __post_init__(self) -> None:
        _u8(self.antenna, "antenna", 1)
        _u8(self.page, "page")
        _check(
            isinstance(self.page_size, int) and 1 <= self.page_size <= MAX_TAGS_PER_PAGE,
            f"page_size must be 1..{MAX_TAGS_PER_PAGE}",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadBlocks(Request):
    COMMAND: ClassVar[Command] = Command.READ_BLOCKS
    antenna: int
    uid: bytes
    first_block: int
    count: int

    def __post_init__(self) -> None:
        _u8(self.antenna, "antenna", 1)
        _uid(self.uid)
        _u8(self.first_block, "first_block")
        _check(isinstance(self.count, int) and 1 <= self.count <= 32, "count must be 1..32")


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteAfi(Request):
    COMMAND: ClassVar[Command] = Command.WRITE_AFI
    antenna: int
    uid: bytes
    afi: int

    def __post_init__(self) -> None:
        _u8(self.antenna, "antenna", 1)
        _uid(self.uid)
        _u8(self.afi, "afi")


@dataclass(frozen=True, slots=True, kw_only=True)
class SetEas(Request):
    COMMAND: ClassVar[Command] = Command.SET_EAS
    antenna: int
    uid: bytes
    enabled: bool

    def __post_init__(self) -> None:
        _u8(self.antenna, "antenna", 1)
        _uid(self.uid)
        _check(isinstance(self.enabled, bool), "enabled must be a bool")


@dataclass(frozen=True, slots=True, kw_only=True)
class AntennaDiag(Request):
    COMMAND: ClassVar[Command] = Command.ANTENNA_DIAG
    antenna: int

    def __post_init__(self) -> None:
        _u8(self.antenna, "antenna", 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class GetCounters(Request):
    COMMAND: ClassVar[Command] = Command.GET_COUNTERS


@dataclass(frozen=True, slots=True, kw_only=True)
class SelfTest(Request):
    COMMAND: ClassVar[Command] = Command.SELF_TEST


@dataclass(frozen=True, slots=True, kw_only=True)
class SetAddress(Request):
    """Give the board whose serial number is ``serial`` the address ``new_address``.
    Keyed by serial so it works when sent to the broadcast address."""

    COMMAND: ClassVar[Command] = Command.SET_ADDRESS
    serial: str
    new_address: int

    def __post_init__(self) -> None:
        _check(
            isinstance(self.serial, str)
            and self.serial.isascii()
            and 1 <= len(self.serial) <= SERIAL_SIZE
            and "\x00" not in self.serial,
            f"serial must be 1..{SERIAL_SIZE} ASCII characters",
        )
        _check(
            isinstance(self.new_address, int) and MIN_ADDRESS <= self.new_address <= MAX_ADDRESS,
            f"new_address must be {MIN_ADDRESS}..{MAX_ADDRESS}",
        )


# ---------------------------------------------------------------- replies


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentifyReply(Reply):
    COMMAND: ClassVar[Command] = Command.IDENTIFY
    protocol_version: tuple[int, int]
    firmware_version: tuple[int, int, int]
    serial: str
    locks: int
    sensors: int
    antennas: int
    capabilities: Capability = Capability.NONE

    def __post_init__(self) -> None:
        _check(len(self.protocol_version) == 2, "protocol_version is (major, minor)")
        for v in self.protocol_version:
            _u8(v, "protocol_version")
        _check(len(self.firmware_version) == 3, "firmware_version is (major, minor, patch)")
        for v in self.firmware_version:
            _u8(v, "firmware_version")
        _check(
            isinstance(self.serial, str)
            and self.serial.isascii()
            and len(self.serial) <= SERIAL_SIZE
            and "\x00" not in self.serial,
            f"serial must be at most {SERIAL_SIZE} ASCII characters",
        )
        _u8(self.locks, "locks")
        _u8(self.sensors, "sensors")
        _u8(self.antennas, "antennas")
        _u16(int(self.capabilities), "capabilities")
        object.__setattr__(self, "capabilities", Capability(int(self.capabilities)))

    @property
    def firmware(self) -> str:
        return ".".join(str(v) for v in self.firmware_version)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatesReply(Reply):
    """``doors[i]`` is the state of lock/door ``i + 1``."""

    COMMAND: ClassVar[Command] = Command.GET_STATES
    doors: tuple[DoorFlags, ...]

    def __post_init__(self) -> None:
        _check(len(self.doors) <= 248, "at most 248 doors per board")
        flags = tuple(DoorFlags(int(d)) for d in self.doors)
        for d in flags:
            _u8(int(d), "door flags")
        object.__setattr__(self, "doors", flags)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnlockReply(Reply):
    COMMAND: ClassVar[Command] = Command.UNLOCK
    lock: int
    op_id: int
    outcome: UnlockOutcome
    door_open: bool

    def __post_init__(self) -> None:
        _u8(self.lock, "lock", 1)
        _u16(self.op_id, "op_id")
        object.__setattr__(self, "outcome", UnlockOutcome(self.outcome))
        _check(isinstance(self.door_open, bool), "door_open must be a bool")


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardEvent:
    """One entry of the board's event ring. ``lock`` 0 = the whole board."""

    seq: int
    kind: EventType
    lock: int
    uptime_ms: int

    def __post_init__(self) -> None:
        _u32(self.seq, "event seq")
        object.__setattr__(self, "kind", EventType(self.kind))
        _u8(self.lock, "event lock")
        _u32(self.uptime_ms, "uptime_ms")


@dataclass(frozen=True, slots=True, kw_only=True)
class EventsReply(Reply):
    """``oldest_seq``: first event still in the ring; ``next_seq``: the seq the next event
    will get. Events in ``[cursor, oldest_seq)`` were overwritten before being acknowledged."""

    COMMAND: ClassVar[Command] = Command.READ_EVENTS
    oldest_seq: int
    next_seq: int
    events: tuple[BoardEvent, ...] = ()

    def __post_init__(self) -> None:
        _u32(self.oldest_seq, "oldest_seq")
        _u32(self.next_seq, "next_seq")
        _check(len(self.events) <= MAX_EVENTS_PER_REPLY, "too many events for one reply")
        _check(all(isinstance(e, BoardEvent) for e in self.events), "events are BoardEvent")
        object.__setattr__(self, "events", tuple(self.events))


@dataclass(frozen=True, slots=True, kw_only=True)
class TagReport:
    uid: bytes
    dsfid: int
    rssi: int  # dBm, signed

    def __post_init__(self) -> None:
        _uid(self.uid)
        _u8(self.dsfid, "dsfid")
        _check(isinstance(self.rssi, int) and -128 <= self.rssi <= 127, "rssi is -128..127 dBm")


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryReply(Reply):
    """Page ``page`` (0-based) of ``pages`` of the last round on ``antenna``, which saw
    ``total_tags`` tags in all."""

    COMMAND: ClassVar[Command] = Command.INVENTORY
    antenna: int
    page: int
    pages: int
    total_tags: int
    tags: tuple[TagReport, ...] = ()

    def __post_init__(self) -> None:
        _u8(self.antenna, "antenna", 1)
        _u8(self.page, "page")
        _u8(self.pages, "pages")
        _u16(self.total_tags, "total_tags")
        _check(len(self.tags) <= MAX_TAGS_PER_PAGE, "too many tags for one page")
        _check(all(isinstance(t, TagReport) for t in self.tags), "tags are TagReport")
        object.__setattr__(self, "tags", tuple(self.tags))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadBlocksReply(Reply):
    COMMAND: ClassVar[Command] = Command.READ_BLOCKS
    uid: bytes
    first_block: int
    block_size: int
    data: bytes

    def __post_init__(self) -> None:
        _uid(self.uid)
        _u8(self.first_block, "first_block")
        _check(isinstance(self.block_size, int) and 1 <= self.block_size <= 32, "block_size 1..32")
        _check(isinstance(self.data, bytes), "data must be bytes")
        _check(len(self.data) % self.block_size == 0, "data must be whole blocks")
        _check(len(self.data) <= 236, "at most 236 data bytes per reply")


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack(Reply):
    """Empty success reply to WRITE_AFI, SET_EAS and SET_ADDRESS."""

    command: Command

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", Command(self.command))
        _check(
            self.command in (Command.WRITE_AFI, Command.SET_EAS, Command.SET_ADDRESS),
            "only WRITE_AFI, SET_EAS and SET_ADDRESS are acknowledged with an empty reply",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AntennaDiagReply(Reply):
    """``reflected_permille``: reflected/forward power × 1000 (a well-tuned antenna < 100);
    ``noise_floor_dbm``: receiver noise with the carrier off."""

    COMMAND: ClassVar[Command] = Command.ANTENNA_DIAG
    antenna: int
    reflected_permille: int
    noise_floor_dbm: int

    def __post_init__(self) -> None:
        _u8(self.antenna, "antenna", 1)
        _check(
            isinstance(self.reflected_permille, int) and 0 <= self.reflected_permille <= 1000,
            "reflected_permille is 0..1000",
        )
        _check(
            isinstance(self.noise_floor_dbm, int) and -128 <= self.noise_floor_dbm <= 127,
            "noise_floor_dbm is -128..127",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CountersReply(Reply):
    COMMAND: ClassVar[Command] = Command.GET_COUNTERS
    uptime_s: int
    frames_ok: int
    crc_errors: int
    retransmissions: int
    power_cycles: int
    unlocks: tuple[int, ...]  # unlocks[i] = pulses given to lock i + 1

    def __post_init__(self) -> None:
        for name in ("uptime_s", "frames_ok", "crc_errors", "retransmissions", "power_cycles"):
            _u32(getattr(self, name), name)
        _check(len(self.unlocks) <= 57, "at most 57 lock counters per reply")
        for v in self.unlocks:
            _u32(v, "unlocks")
        object.__setattr__(self, "unlocks", tuple(self.unlocks))


@dataclass(frozen=True, slots=True, kw_only=True)
class PartResult:
    part: PartKind
    index: int  # 1-based lock/sensor/antenna number; 0 for board-wide parts
    status: PartStatus

    def __post_init__(self) -> None:
        object.__setattr__(self, "part", PartKind(self.part))
        _u8(self.index, "index")
        object.__setattr__(self, "status", PartStatus(self.status))


@dataclass(frozen=True, slots=True, kw_only=True)
class SelfTestReply(Reply):
    COMMAND: ClassVar[Command] = Command.SELF_TEST
    results: tuple[PartResult, ...]

    def __post_init__(self) -> None:
        _check(len(self.results) <= 83, "at most 83 part results per reply")
        _check(all(isinstance(r, PartResult) for r in self.results), "results are PartResult")
        object.__setattr__(self, "results", tuple(self.results))

    @property
    def passed(self) -> bool:
        return all(r.status is PartStatus.OK for r in self.results)


@dataclass(frozen=True, slots=True, kw_only=True)
class Nak(Reply):
    """The board refused request ``command`` with ``error``."""

    COMMAND: ClassVar[Command] = Command.NAK
    command: int
    error: ErrorCode

    def __post_init__(self) -> None:
        _u8(self.command, "command")
        object.__setattr__(self, "error", ErrorCode(self.error))
