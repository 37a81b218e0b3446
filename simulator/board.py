"""One lendbox controller board's firmware, as a sans-IO state machine (SPEC.md §3–§6).

Why sans-IO: every rule of the protocol (address matching, NAKs, the retransmission cache, the
op_id cache, the non-volatile event ring, inventory paging, power cuts) is tested here by
handing in decoded frames and looking at the reply frames, without sockets or sleeps. The
transport (``transport.py``) decodes bytes, calls :meth:`BoardEmulator.handle`, waits
``delay_s`` and sends the reply's bytes at the line rate.

Rules as implemented:

* A frame addressed to another board, or any reply frame, is ignored. A broadcast request is
  executed (SET_ADDRESS is the one that matters) and never answered.
* ``BadCrc``: counted in ``crc_errors`` and not answered. ``UnknownCommand`` / ``BadPayload``
  on a request addressed to this board: NAK UNKNOWN_COMMAND / BAD_PAYLOAD.
* The last request and its reply are kept: the identical frame again is answered from that
  cache without executing (counted in ``retransmissions``). UNLOCK additionally keeps the
  replies of the last 16 op_ids: a known op_id never pulses again.
* Event ring: 256 entries with 32-bit seqs, non-volatile; READ_EVENTS(cursor) frees seq < cursor.
* A power cut loses RAM (caches, stored inventories, volatile counters, uptime) and keeps the
  ring, its next seq, unlock counts, power_cycles and the address. While cut: no answers.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from firmware_protocol.const import (
    BROADCAST,
    EVENT_RING_SIZE,
    PROTOCOL_VERSION,
    REPLY_BIT,
    UNLOCK_CACHE_SIZE,
    Capability,
    Command,
    ErrorCode,
    EventType,
    PartKind,
    PartStatus,
)
from firmware_protocol.errors import BadCrc, BadPayload, FrameError, UnknownCommand
from firmware_protocol.messages import (
    Ack,
    AntennaDiag,
    AntennaDiagReply,
    BoardEvent,
    CountersReply,
    EventsReply,
    Frame,
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

from . import air
from .config import BoardConfig
from .model import BLOCK_SIZE, CabinetModel, SimItem

__all__ = ["BoardEmulator", "BoardResult", "FIRMWARE_PROCESSING_S", "FEEDBACK_SAMPLE_S"]

#: Time the firmware takes to parse a request and start its reply (plain commands).
FIRMWARE_PROCESSING_S = 0.002
#: After an unlock pulse the board samples bolt feedback and the door sensor.
FEEDBACK_SAMPLE_S = 0.005
#: Self-test: a fixed part plus a coil/sensor/antenna measurement each.
SELF_TEST_BASE_S = 0.1
SELF_TEST_PER_PART_S = 0.01
_CAPABILITIES = (Capability.EVENT_RING | Capability.RFID | Capability.ANTENNA_DIAG
                 | Capability.EAS | Capability.SELF_TEST)


@dataclass(frozen=True, slots=True)
class BoardResult:
    """What the board does with one incoming frame.

    Attributes:
        reply: the frame to send, or None (no answer).
        delay_s: board time between the end of the request and the first reply byte
            (firmware processing, unlock pulse, RFID air time).
        air_s: the part of ``delay_s`` spent on RFID air time.
        retransmission: the reply came from the last-request cache.
    """

    reply: Frame | None
    delay_s: float = 0.0
    air_s: float = 0.0
    retransmission: bool = False


_SILENT = BoardResult(reply=None)


@dataclass(slots=True)
class _Ram:
    """Everything lost on a power cut."""

    boot_at: float
    last_request: Frame | None = None
    last_result: BoardResult | None = None
    op_cache: OrderedDict[int, UnlockReply] = field(default_factory=OrderedDict)
    inventories: dict[int, list[TagReport]] = field(default_factory=dict)
    frames_ok: int = 0
    crc_errors: int = 0
    retransmissions: int = 0


class BoardEmulator:
    """The firmware of one board on a bus, reading the cabinet through ``model``.

    Args:
        config: address, serial and size of the board.
        model: the physical cabinet (doors are found by the board's *config* address).
        clock: monotonic seconds (injectable for tests); normally the model's clock.
    """

    def __init__(self, config: BoardConfig, model: CabinetModel) -> None:
        self.config = config
        self.model = model
        self.clock = model.clock
        self.address = config.address  # non-volatile, changed by SET_ADDRESS
        self.powered = True
        # non-volatile memory
        self.ring: deque[BoardEvent] = deque(maxlen=EVENT_RING_SIZE)
        self.next_seq = 0
        self.power_cycles = 0
        self.unlocks = [0] * config.locks
        self._ram = _Ram(boot_at=self.clock())
        self._sensed: dict[int, bool] = {}  # door sensors at the moment power was cut

    # ------------------------------------------------------------ events
    @property
    def oldest_seq(self) -> int:
        """Seq of the oldest event still in the ring (``next_seq`` when empty)."""
        return self.ring[0].seq if self.ring else self.next_seq

    def record_event(self, kind: EventType, lock: int, at: float | None = None) -> None:
        """Append an event to the ring (the oldest is overwritten when full). Ignored while
        the board is unpowered: it cannot see anything then."""
        if not self.powered:
            return
        when = self.clock() if at is None else at
        uptime_ms = max(0, round((when - self._ram.boot_at) * 1000)) & 0xFFFFFFFF
        self.ring.append(BoardEvent(seq=self.next_seq, kind=kind, lock=lock, uptime_ms=uptime_ms))
        self.next_seq = (self.next_seq + 1) & 0xFFFFFFFF

    # ------------------------------------------------------------ power
    def power_cut(self) -> None:
        """Cut power: log POWER_LOST (the supercap lets the board write it), lose RAM."""
        if not self.powered:
            return
        self.record_event(EventType.POWER_LOST, 0)
        self.powered = False
        self._sensed = {n: self._door_open(n) for n in range(1, self.config.locks + 1)}

    def power_restore(self) -> None:
        """Restore power: a fresh boot, POWER_RESTORED, and door changes seen while cut."""
        if self.powered:
            return
        self.powered = True
        self.power_cycles += 1
        self._ram = _Ram(boot_at=self.clock())
        self.record_event(EventType.POWER_RESTORED, 0)
        before = self._sensed
        for lock in range(1, self.config.locks + 1):
            now_open = self._door_open(lock)
            if before.get(lock, False) != now_open:
                self.record_event(EventType.DOOR_OPENED if now_open else EventType.DOOR_CLOSED,
                                  lock)

    def _door_open(self, lock: int) -> bool:
        door = self.model.board_door(self.config.address, lock)
        return bool(door and door.sensed_open)

    # ------------------------------------------------------------ frames
    def handle(self, item: Frame | FrameError) -> BoardResult:
        """React to one decoded frame or one decoding error heard on the bus.

        Returns:
            the reply (or none) and the board time before it; never raises for any input.
        """
        if not self.powered:
            return _SILENT
        if isinstance(item, BadCrc):
            self._ram.crc_errors += 1
            return _SILENT
        if isinstance(item, (UnknownCommand, BadPayload)):
            if item.address != self.address or item.command & REPLY_BIT:
                return _SILENT
            error = (ErrorCode.UNKNOWN_COMMAND if isinstance(item, UnknownCommand)
                     else ErrorCode.BAD_PAYLOAD)
            self._ram.frames_ok += 1
            return self._remember(None, self._nak(item.seq, item.command, error))
        if isinstance(item, FrameError) or not isinstance(item, Frame):
            return _SILENT  # garbage, truncated frames: nothing to answer
        if not isinstance(item.message, Request):
            return _SILENT  # another board's reply
        if item.address not in (self.address, BROADCAST):
            return _SILENT
        self._ram.frames_ok += 1
        if item.address == BROADCAST:
            self._execute(item)
            return _SILENT
        ram = self._ram
        if ram.last_request == item and ram.last_result is not None:
            ram.retransmissions += 1
            cached = ram.last_result
            return BoardResult(reply=cached.reply, delay_s=FIRMWARE_PROCESSING_S,
                               retransmission=True)
        return self._remember(item, self._execute(item))

    def _remember(self, request: Frame | None, result: BoardResult) -> BoardResult:
        self._ram.last_request = request
        self._ram.last_result = result
        return result

    def _reply(self, seq: int, message: Message, delay_s: float = FIRMWARE_PROCESSING_S,
               air_s: float = 0.0) -> BoardResult:
        return BoardResult(reply=Frame(address=self.address, seq=seq, message=message),
                           delay_s=delay_s, air_s=air_s)

    def _nak(self, seq: int, command: int, error: ErrorCode, delay_s: float = FIRMWARE_PROCESSING_S,
             air_s: float = 0.0) -> BoardResult:
        return self._reply(seq, Nak(command=command & 0xFF, error=error), delay_s, air_s)

    def _execute(self, frame: Frame) -> BoardResult:
        msg = frame.message
        seq = frame.seq
        self.model.tick()
        try:
            handler = _HANDLERS[type(msg)]
        except KeyError:
            return self._nak(seq, int(msg.COMMAND), ErrorCode.UNSUPPORTED)
        return handler(self, seq, msg)

    # ------------------------------------------------------------ commands
    def _identify(self, seq: int, msg: Identify) -> BoardResult:
        return self._reply(seq, IdentifyReply(
            protocol_version=PROTOCOL_VERSION, firmware_version=self.config.firmware,
            serial=self.config.serial, locks=self.config.locks, sensors=self.config.locks,
            antennas=self.config.antennas, capabilities=_CAPABILITIES))

    def _get_states(self, seq: int, msg: GetStates) -> BoardResult:
        flags = tuple(self.model.door_flags(self.config.address, n)
                      for n in range(1, self.config.locks + 1))
        return self._reply(seq, StatesReply(doors=flags))

    def _unlock(self, seq: int, msg: Unlock) -> BoardResult:
        if msg.lock > self.config.locks:
            return self._nak(seq, Command.UNLOCK, ErrorCode.BAD_INDEX)
        cached = self._ram.op_cache.get(msg.op_id)
        if cached is not None:
            self._ram.retransmissions += 1
            return self._reply(seq, cached)
        pulse_s = msg.pulse_ms / 1000.0
        outcome, door_open = self.model.pulse(self.config.address, msg.lock, pulse_s)
        self.unlocks[msg.lock - 1] += 1
        reply = UnlockReply(lock=msg.lock, op_id=msg.op_id, outcome=outcome, door_open=door_open)
        cache = self._ram.op_cache
        cache[msg.op_id] = reply
        while len(cache) > UNLOCK_CACHE_SIZE:
            cache.popitem(last=False)
        return self._reply(seq, reply, delay_s=pulse_s + FEEDBACK_SAMPLE_S)

    def _read_events(self, seq: int, msg: ReadEvents) -> BoardResult:
        ack = min(msg.cursor, self.next_seq)
        while self.ring and self.ring[0].seq < ack:
            self.ring.popleft()
        start = max(msg.cursor, self.oldest_seq)
        events = tuple(e for e in self.ring if e.seq >= start)[: msg.max_events]
        return self._reply(seq, EventsReply(oldest_seq=self.oldest_seq, next_seq=self.next_seq,
                                            events=events))

    def _antenna_ok(self, antenna: int) -> bool:
        return 1 <= antenna <= self.config.antennas

    def _inventory(self, seq: int, msg: Inventory) -> BoardResult:
        if not self._antenna_ok(msg.antenna):
            return self._nak(seq, Command.INVENTORY, ErrorCode.BAD_INDEX)
        air_s = 0.0
        if msg.page == 0:
            ant = self.model.antennas[(self.config.address, msg.antenna)]
            seen: dict[bytes, TagReport] = {}
            for item in self.model.items_in_field(self.config.address, msg.antenna):
                answers, rssi = self.model.answers(item, ant)
                if answers:
                    seen[item.uid] = TagReport(uid=item.uid, dsfid=item.dsfid, rssi=rssi)
            result = air.inventory(list(seen))
            air_s = result.air_s
            self._ram.inventories[msg.antenna] = [seen[u] for u in result.order]
        tags = self._ram.inventories.get(msg.antenna)
        if tags is None:
            return self._nak(seq, Command.INVENTORY, ErrorCode.NO_INVENTORY)
        size = msg.page_size
        pages = max(1, math.ceil(len(tags) / size))
        if msg.page >= pages:
            return self._nak(seq, Command.INVENTORY, ErrorCode.NO_INVENTORY)
        chunk = tags[msg.page * size : (msg.page + 1) * size]
        return self._reply(seq, InventoryReply(antenna=msg.antenna, page=msg.page, pages=pages,
                                               total_tags=len(tags), tags=tuple(chunk)),
                           delay_s=FIRMWARE_PROCESSING_S + air_s, air_s=air_s)

    def _find_tag(self, antenna: int, uid: bytes) -> SimItem | None:
        ant = self.model.antennas[(self.config.address, antenna)]
        for item in self.model.items_in_field(self.config.address, antenna):
            if item.uid == uid:
                return item if self.model.answers(item, ant)[0] else None
        return None

    def _read_blocks(self, seq: int, msg: ReadBlocks) -> BoardResult:
        if not self._antenna_ok(msg.antenna):
            return self._nak(seq, Command.READ_BLOCKS, ErrorCode.BAD_INDEX)
        item = self._find_tag(msg.antenna, msg.uid)
        if item is None:
            miss = air.no_response_s()
            return self._nak(seq, Command.READ_BLOCKS, ErrorCode.TAG_NOT_FOUND,
                             FIRMWARE_PROCESSING_S + miss, miss)
        blocks = len(item.memory) // BLOCK_SIZE
        if msg.first_block + msg.count > blocks:
            return self._nak(seq, Command.READ_BLOCKS, ErrorCode.BAD_INDEX)
        start = msg.first_block * BLOCK_SIZE
        data = item.memory[start : start + msg.count * BLOCK_SIZE]
        air_s = air.read_blocks_s(msg.count, BLOCK_SIZE)
        return self._reply(seq, ReadBlocksReply(uid=msg.uid, first_block=msg.first_block,
                                                block_size=BLOCK_SIZE, data=data),
                           FIRMWARE_PROCESSING_S + air_s, air_s)

    def _write(self, seq: int, msg: WriteAfi | SetEas) -> BoardResult:
        command = Command.WRITE_AFI if isinstance(msg, WriteAfi) else Command.SET_EAS
        if not self._antenna_ok(msg.antenna):
            return self._nak(seq, command, ErrorCode.BAD_INDEX)
        item = self._find_tag(msg.antenna, msg.uid)
        if item is None:
            miss = air.no_response_s(13)
            return self._nak(seq, command, ErrorCode.TAG_NOT_FOUND,
                             FIRMWARE_PROCESSING_S + miss, miss)
        if isinstance(msg, WriteAfi):
            item.afi = msg.afi
        else:
            item.eas = msg.enabled
        air_s = air.write_s()
        return self._reply(seq, Ack(command=command), FIRMWARE_PROCESSING_S + air_s, air_s)

    def _antenna_diag(self, seq: int, msg: AntennaDiag) -> BoardResult:
        if not self._antenna_ok(msg.antenna):
            return self._nak(seq, Command.ANTENNA_DIAG, ErrorCode.BAD_INDEX)
        ant = self.model.antennas[(self.config.address, msg.antenna)]
        return self._reply(seq, AntennaDiagReply(
            antenna=msg.antenna, reflected_permille=ant.reflected_permille,
            noise_floor_dbm=ant.noise_floor_dbm), FIRMWARE_PROCESSING_S + 0.01)

    def _get_counters(self, seq: int, msg: GetCounters) -> BoardResult:
        ram = self._ram
        uptime = max(0, int(self.clock() - ram.boot_at)) & 0xFFFFFFFF
        return self._reply(seq, CountersReply(
            uptime_s=uptime, frames_ok=ram.frames_ok & 0xFFFFFFFF,
            crc_errors=ram.crc_errors & 0xFFFFFFFF,
            retransmissions=ram.retransmissions & 0xFFFFFFFF,
            power_cycles=self.power_cycles, unlocks=tuple(self.unlocks[:57])))

    def self_test_results(self) -> list[PartResult]:
        """What SELF_TEST measures, part by part."""
        out = [PartResult(part=PartKind.BOARD, index=0, status=PartStatus.OK),
               PartResult(part=PartKind.MEMORY, index=0, status=PartStatus.OK),
               PartResult(part=PartKind.POWER, index=0, status=PartStatus.OK)]
        for lock in range(1, self.config.locks + 1):
            door = self.model.board_door(self.config.address, lock)
            status = PartStatus.OPEN_CIRCUIT if door and door.wiring_broken else PartStatus.OK
            out.append(PartResult(part=PartKind.LOCK, index=lock, status=status))
        for lock in range(1, self.config.locks + 1):
            door = self.model.board_door(self.config.address, lock)
            status = PartStatus.OPEN_CIRCUIT if door and door.sensor_broken else PartStatus.OK
            out.append(PartResult(part=PartKind.DOOR_SENSOR, index=lock, status=status))
        for n in range(1, self.config.antennas + 1):
            ant = self.model.antennas[(self.config.address, n)]
            status = (PartStatus.DETUNED if ant.detuned else
                      PartStatus.NOISY if ant.noisy else PartStatus.OK)
            out.append(PartResult(part=PartKind.ANTENNA, index=n, status=status))
        return out[:83]

    def _self_test(self, seq: int, msg: SelfTest) -> BoardResult:
        results = self.self_test_results()
        delay = SELF_TEST_BASE_S + SELF_TEST_PER_PART_S * len(results)
        return self._reply(seq, SelfTestReply(results=tuple(results)), delay)

    def _set_address(self, seq: int, msg: SetAddress) -> BoardResult:
        if msg.serial != self.config.serial:
            return self._nak(seq, Command.SET_ADDRESS, ErrorCode.BAD_PAYLOAD)
        self.address = msg.new_address
        return self._reply(seq, Ack(command=Command.SET_ADDRESS))

    # ------------------------------------------------------------ diagnostics
    def diagnostics(self) -> dict[str, object]:
        """Board state for the control API (JSON-ready)."""
        ram = self._ram
        return {
            "address": self.address, "config_address": self.config.address,
            "serial": self.config.serial, "powered": self.powered,
            "oldest_seq": self.oldest_seq, "next_seq": self.next_seq,
            "events_in_ring": len(self.ring), "power_cycles": self.power_cycles,
            "unlocks": list(self.unlocks), "frames_ok": ram.frames_ok,
            "crc_errors": ram.crc_errors, "retransmissions": ram.retransmissions,
            "stored_inventories": sorted(ram.inventories),
        }


_HANDLERS = {
    Identify: BoardEmulator._identify,
    GetStates: BoardEmulator._get_states,
    Unlock: BoardEmulator._unlock,
    ReadEvents: BoardEmulator._read_events,
    Inventory: BoardEmulator._inventory,
    ReadBlocks: BoardEmulator._read_blocks,
    WriteAfi: BoardEmulator._write,
    SetEas: BoardEmulator._write,
    AntennaDiag: BoardEmulator._antenna_diag,
    GetCounters: BoardEmulator._get_counters,
    SelfTest: BoardEmulator._self_test,
    SetAddress: BoardEmulator._set_address,
}
