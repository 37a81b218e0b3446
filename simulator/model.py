"""The physical cabinet: doors, locks, door sensors, antennas, tagged books and people.

Why apart from the boards: the model is what a technician could touch; the boards only see it
through their sensors. A broken door sensor therefore hides a door from its board while the
door is, physically, open; a jammed lock takes a pulse and stays latched. Every transition the
board's sensors can notice is reported through ``sink(board_address, kind, lock, at)`` so the
board logs it in its event ring. Times come from an injectable monotonic clock. The model is not
thread-safe by itself: the Simulator holds one lock around every call.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from firmware_protocol.const import DoorFlags, EventType, UnlockOutcome

from .config import CabinetConfig, DoorConfig
from .errors import Conflict, NotFound

__all__ = ["SimItem", "Door", "Antenna", "CabinetModel", "EventSink", "Clock", "tag_memory",
           "TAG_MEMORY_SIZE"]

Clock = Callable[[], float]
EventSink = Callable[[int, EventType, int, float], None]

#: User memory of the modelled tag (ICODE SLIX: 28 blocks of 4 bytes).
TAG_MEMORY_SIZE = 112
BLOCK_SIZE = 4
#: XOR applied to a corrupted tag's memory (an involution: applying it twice restores it).
_CORRUPTION_MASK = 0x5A


def tag_memory(item_id: str, owner_library: str | None) -> tuple[int, bytes]:
    """DSFID and user memory of a library tag for this item (ISO 28560-2 layout).

    One function so the encoding has one home; if the ISO 28560 codec is missing, placeholder
    bytes (DSFID 0x06, the item id in ASCII) keep the simulator usable.
    """
    try:
        from firmware_protocol.iso28560 import TagData, encode_tag
    except ImportError:  # pragma: no cover - only while the codec is being written
        raw = item_id.encode("ascii", "replace")[: TAG_MEMORY_SIZE]
        return 0x06, raw.ljust(TAG_MEMORY_SIZE, b"\x00")
    data = TagData(primary_item_id=item_id, owner_library=owner_library, type_of_usage=None,
                   standard="28560-2")
    try:
        return encode_tag(data, block_size=BLOCK_SIZE, memory_size=TAG_MEMORY_SIZE)
    except ValueError:
        dsfid, memory = encode_tag(data, block_size=BLOCK_SIZE)
        return dsfid, memory


@dataclass(slots=True, eq=False)
class SimItem:
    """A tagged book. ``door`` is None while the book is in a person's hands."""

    item_id: str
    uid: bytes
    dsfid: int
    memory: bytes
    owner_library: str
    rssi: int
    door: int | None
    title: str | None = None
    afi: int = 0x07  # ISO 28560: 0x07 on the shelf, 0xC2 checked out
    eas: bool = True
    unreadable: bool = False
    miss_rate: float = 0.0
    memory_corrupted: bool = False  # fault: answers, but its user memory is garbage

    def as_json(self) -> dict[str, object]:
        """JSON-ready view for the control API."""
        return {
            "item_id": self.item_id, "uid": self.uid.hex().upper(), "dsfid": self.dsfid,
            "owner_library": self.owner_library, "door": self.door, "title": self.title,
            "afi": self.afi, "eas": self.eas, "rssi": self.rssi, "unreadable": self.unreadable,
            "miss_rate": self.miss_rate, "memory_corrupted": self.memory_corrupted,
        }

    def corrupt_memory(self, corrupted: bool = True) -> None:
        """Scramble (or restore) the user memory: every byte XOR 0x5A, so the tag still
        answers inventories and READ_BLOCKS but its ISO 28560 data no longer decodes."""
        if bool(corrupted) != self.memory_corrupted:
            self.memory = bytes(b ^ _CORRUPTION_MASK for b in self.memory)
            self.memory_corrupted = bool(corrupted)


@dataclass(slots=True, eq=False)
class Antenna:
    """One reader antenna (one per door in our cabinets)."""

    board: int | str  # the owning device: a board address, or a stand-alone reader's name
    number: int
    reflected_permille: int = 40
    noise_floor_dbm: int = -95

    @property
    def detuned(self) -> bool:
        return self.reflected_permille > 300

    @property
    def noisy(self) -> bool:
        return self.noise_floor_dbm > -70


@dataclass(slots=True, eq=False)
class Door:
    """One compartment: door leaf, lock, door sensor and the config that placed them."""

    config: DoorConfig
    hold_open_limit_s: float
    open: bool = False
    latched: bool = True
    opened_at: float = 0.0
    forced: bool = False
    held_open: bool = False
    jammed_flag: bool = False  # last pulse found the bolt stuck
    lock_jammed: bool = False  # fault: bolt stuck
    wiring_broken: bool = False  # fault: coil open circuit
    sensor_broken: bool = False  # fault: sensor reads closed
    released_until: float = 0.0
    items: list[str] = field(default_factory=list)

    @property
    def number(self) -> int:
        return self.config.number

    @property
    def sensed_open(self) -> bool:
        """What the board's door sensor reads."""
        return self.open and not self.sensor_broken


class CabinetModel:
    """Doors, items and antennas of one cabinet, built from its config."""

    def __init__(self, config: CabinetConfig, clock: Clock, sink: EventSink | None = None
                 ) -> None:
        self.config = config
        self.clock = clock
        self.sink: EventSink = sink or (lambda board, kind, lock, at: None)
        self.rng = random.Random(config.seed ^ 0x5EED)
        hold = {b.address: b.hold_open_limit_s for b in config.boards}
        self.doors: dict[int, Door] = {
            d.number: Door(config=d, hold_open_limit_s=hold[d.board]) for d in config.doors
        }
        self.antennas: dict[tuple[int | str, int], Antenna] = {}
        arng = random.Random(config.seed ^ 0xA11)
        owners: list[tuple[int | str, int]] = [(b.address, b.antennas) for b in config.boards]
        owners += [(r.name, r.antennas) for r in config.readers]
        for source, count in owners:
            for n in range(1, count + 1):
                self.antennas[(source, n)] = Antenna(
                    board=source, number=n, reflected_permille=arng.randint(20, 80),
                    noise_floor_dbm=arng.randint(-98, -90))
        self.items: dict[str, SimItem] = {}
        for ic in config.items:
            dsfid, memory = tag_memory(ic.item_id, ic.owner_library)
            self.items[ic.item_id] = SimItem(
                item_id=ic.item_id, uid=ic.uid, dsfid=dsfid, memory=memory,
                owner_library=ic.owner_library, rssi=ic.rssi, door=ic.door, title=ic.title)
            self.doors[ic.door].items.append(ic.item_id)

    # ------------------------------------------------------------ look-ups
    def door(self, number: int) -> Door:
        """The door numbered ``number``; NotFound otherwise."""
        try:
            return self.doors[int(number)]
        except (KeyError, ValueError, TypeError):
            raise NotFound(f"no door {number!r} in this cabinet") from None

    def item(self, item_id: str) -> SimItem:
        """The item with this id; NotFound otherwise."""
        try:
            return self.items[str(item_id)]
        except KeyError:
            raise NotFound(f"no item {item_id!r} in this simulation") from None

    def board_door(self, board: int, lock: int) -> Door | None:
        """The door driven by lock ``lock`` of board ``board`` (config address)."""
        for d in self.doors.values():
            if d.config.board == board and d.config.lock == lock:
                return d
        return None

    def antenna_for_door(self, number: int) -> Antenna:
        """The antenna that reads door ``number``."""
        d = self.door(number).config
        return self.antennas[(d.antenna_source, d.antenna)]

    # ------------------------------------------------------------ events
    def _emit(self, door: Door, kind: EventType, at: float | None = None) -> None:
        self.sink(door.config.board, kind, door.config.lock, self.clock() if at is None else at)

    def _opened(self, door: Door, *, forced: bool) -> None:
        now = self.clock()
        door.open = True
        door.opened_at = now
        door.held_open = False
        if door.sensor_broken:
            return
        if forced:
            door.forced = True
            self._emit(door, EventType.DOOR_FORCED, now)
        self._emit(door, EventType.DOOR_OPENED, now)

    def tick(self) -> None:
        """Advance time-driven transitions (held-open) to the clock's now."""
        now = self.clock()
        for door in self.doors.values():
            if door.open and not door.held_open and not door.sensor_broken:
                due = door.opened_at + door.hold_open_limit_s
                if now >= due:
                    door.held_open = True
                    self._emit(door, EventType.DOOR_HELD_OPEN, due)

    # ------------------------------------------------------------ people
    def open_door(self, number: int) -> None:
        """A person opens an unlatched door (after a pulse of a door without spring)."""
        door = self.door(number)
        self.tick()
        if door.open:
            return
        if door.latched:
            raise Conflict(f"door {number} is locked (pulse its lock first, or force it)")
        self._opened(door, forced=False)

    def close_door(self, number: int) -> None:
        """A person shuts a door; the latch catches it."""
        door = self.door(number)
        self.tick()
        if not door.open:
            return
        door.open = False
        door.latched = True
        door.forced = False
        door.held_open = False
        if not door.sensor_broken:
            self._emit(door, EventType.DOOR_CLOSED)

    def leave_door_open(self, number: int) -> None:
        """A person walks away from an open (or unlatched) door: held-open fires later."""
        door = self.door(number)
        if not door.open:
            self.open_door(number)

    def force_door(self, number: int) -> None:
        """Someone pries a door open without a pulse (DOOR_FORCED if the sensor works)."""
        door = self.door(number)
        self.tick()
        if door.open:
            return
        forced = door.latched and not self._released(door)
        door.latched = False
        self._opened(door, forced=forced)

    def _released(self, door: Door) -> bool:
        return self.clock() < door.released_until

    def take_item(self, item_id: str) -> SimItem:
        """A person takes a book out of its (open) door."""
        item = self.item(item_id)
        if item.door is None:
            raise Conflict(f"item {item_id} is already in someone's hands")
        door = self.doors[item.door]
        if not door.open:
            raise Conflict(f"door {door.number} is closed: item {item_id} cannot be taken")
        door.items.remove(item.item_id)
        item.door = None
        return item

    def put_item(self, item_id: str, number: int) -> SimItem:
        """A person puts a book (from their hands, or another open door) into an open door."""
        item = self.item(item_id)
        door = self.door(number)
        if not door.open:
            raise Conflict(f"door {number} is closed: open it before putting item {item_id}")
        if item.door == number:
            return item
        if len(door.items) >= door.config.capacity:
            raise Conflict(f"door {number} is full ({door.config.capacity} items)")
        if item.door is not None:
            self.take_item(item_id)
        door.items.append(item.item_id)
        item.door = number
        return item

    # ------------------------------------------------------------ board side
    def pulse(self, board: int, lock: int, pulse_s: float) -> tuple[UnlockOutcome, bool]:
        """The board energises a lock coil for ``pulse_s``.

        Returns:
            the outcome (bolt moved or not) and whether the sensor reads open after the pulse.
        """
        door = self.board_door(board, lock)
        if door is None:  # a lock output with no door wired: the coil clicks, nothing moves
            return UnlockOutcome.PULSED, False
        now = self.clock()
        self.tick()
        if door.lock_jammed or door.wiring_broken:
            door.jammed_flag = True
            self._emit(door, EventType.LOCK_JAMMED, now + pulse_s)
            return UnlockOutcome.JAMMED, door.sensed_open
        door.jammed_flag = False
        door.latched = False
        door.released_until = now + pulse_s
        self._emit(door, EventType.UNLOCKED, now)
        if door.config.spring and not door.open:
            self._opened(door, forced=False)
        return UnlockOutcome.PULSED, door.sensed_open

    def door_flags(self, board: int, lock: int) -> DoorFlags:
        """The flags a board reports for one lock (GET_STATES)."""
        door = self.board_door(board, lock)
        if door is None:
            return DoorFlags.NONE
        self.tick()
        flags = DoorFlags.NONE
        if door.sensed_open:
            flags |= DoorFlags.DOOR_OPEN
        if not door.latched:
            flags |= DoorFlags.LOCK_RELEASED
        if door.jammed_flag:
            flags |= DoorFlags.JAMMED
        if door.forced and door.sensed_open:
            flags |= DoorFlags.FORCED
        if door.held_open and door.sensed_open:
            flags |= DoorFlags.HELD_OPEN
        return flags

    def items_in_field(self, source: int | str, antenna: int) -> list[SimItem]:
        """Books inside the doors that antenna ``antenna`` of ``source`` reads (a board
        address, or a stand-alone reader's name)."""
        out: list[SimItem] = []
        for door in self.doors.values():
            if door.config.antenna_source == source and door.config.antenna == antenna:
                out.extend(self.items[i] for i in door.items)
        return out

    def answers(self, item: SimItem, antenna: Antenna) -> tuple[bool, int]:
        """Whether a tag answers this time on this antenna, and the RSSI the reader measures.

        An unreadable tag never answers; a detuned tag misses with its ``miss_rate``; a detuned
        antenna loses signal (up to 20 dB); a tag below the noise floor + 8 dB is not decoded.
        """
        if item.unreadable:
            return False, 0
        if item.miss_rate > 0 and self.rng.random() < item.miss_rate:
            return False, 0
        rssi = item.rssi - (antenna.reflected_permille * 20) // 1000
        floor = max(antenna.noise_floor_dbm + 8, -75)
        if rssi < floor:
            return False, 0
        return True, max(-128, min(127, rssi))

    def state(self) -> dict[str, object]:
        """Everything a test or a technician wants to see, JSON-ready."""
        self.tick()
        doors = []
        for d in sorted(self.doors.values(), key=lambda x: x.number):
            ant = self.antennas[(d.config.antenna_source, d.config.antenna)]
            doors.append({
                "number": d.number, "board": d.config.board, "lock": d.config.lock,
                "antenna": d.config.antenna, "reader": d.config.reader, "size": d.config.size,
                "capacity": d.config.capacity, "spring": d.config.spring,
                "open": d.open, "latched": d.latched, "forced": d.forced,
                "held_open": d.held_open, "items": list(d.items),
                "faults": {
                    "lock_jammed": d.lock_jammed, "lock_wiring_broken": d.wiring_broken,
                    "door_sensor_broken": d.sensor_broken,
                    "antenna_reflected_permille": ant.reflected_permille,
                    "antenna_noise_floor_dbm": ant.noise_floor_dbm,
                },
            })
        return {
            "doors": doors,
            "in_hands": sorted(i.item_id for i in self.items.values() if i.door is None),
            "items": len(self.items),
        }
