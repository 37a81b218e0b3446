"""Cabinet config files (TOML) → validated, immutable config objects.

Why a separate module: the config is read once at start-up and every mistake in it should
stop the simulator with one message that names the file, the entry and the problem, instead
of surfacing later as a KeyError in a thread. Items are generated deterministically from a
seed, so every run of the same file has the same books with the same UIDs.
"""

from __future__ import annotations

import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_protocol.const import MAX_ADDRESS, MIN_ADDRESS, SERIAL_SIZE

from .errors import ConfigError

__all__ = [
    "BusConfig",
    "BoardConfig",
    "DoorConfig",
    "ItemConfig",
    "ReaderConfig",
    "FAMILIES",
    "CabinetConfig",
    "load_config",
    "parse_config",
    "DEFAULT_BAUD",
]

#: Default line rate per bus kind (SPEC.md §1).
DEFAULT_BAUD = {"rs485": 19200, "usb": 115200}
#: Protocol families a bus may speak, and whether their devices are lock boards or readers.
FAMILIES = {"lendbox": "board", "cn485": "board", "kerong": "board", "modbus": "board",
            "feig": "reader", "rr3036": "reader"}
#: Each family's factory line rate (docs/families.md), used when a bus names none.
FAMILY_BAUD = {"cn485": 9600, "kerong": 19200, "modbus": 9600, "feig": 38400, "rr3036": 19200}
DOOR_SIZES = ("small", "medium", "large")


@dataclass(frozen=True, slots=True)
class BusConfig:
    """One serial link; several boards may share an RS-485 bus."""

    name: str
    kind: str = "rs485"
    baudrate: int = 19200
    family: str = "lendbox"  # the protocol every device on this bus speaks


@dataclass(frozen=True, slots=True)
class BoardConfig:
    """One controller board: its address on its bus, identity and size."""

    address: int
    bus: str
    serial: str
    locks: int
    antennas: int
    firmware: tuple[int, int, int] = (1, 0, 0)
    hold_open_limit_s: float = 120.0
    options: Mapping[str, Any] = field(default_factory=dict)  # family-specific settings


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    """A stand-alone RFID reader (FEIG, RR3036 …) with its own antennas."""

    name: str
    bus: str
    address: int
    antennas: int
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DoorConfig:
    """One door (compartment) as numbered on the cabinet, and what drives it."""

    number: int
    board: int
    lock: int
    antenna: int
    size: str = "medium"
    capacity: int = 12
    spring: bool = True
    items: int = 0  # books generated into this door at start
    reader: str | None = None  # the stand-alone reader whose ``antenna`` this is; else the board's

    @property
    def antenna_source(self) -> int | str:
        """The key of the device owning this door's antenna: a board address or a reader name."""
        return self.reader if self.reader is not None else self.board


@dataclass(frozen=True, slots=True)
class ItemConfig:
    """One tagged item as placed at start."""

    item_id: str
    uid: bytes
    owner_library: str
    door: int
    rssi: int
    title: str | None = None


@dataclass(frozen=True, slots=True)
class CabinetConfig:
    """A whole cabinet: buses, boards, doors, items and optional peripherals."""

    id: str
    seed: int
    buses: tuple[BusConfig, ...]
    boards: tuple[BoardConfig, ...]
    doors: tuple[DoorConfig, ...]
    items: tuple[ItemConfig, ...]
    readers: tuple[ReaderConfig, ...] = ()
    card_reader: bool = False
    camera: bool = False
    source: str = "<config>"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def door(self, number: int) -> DoorConfig:
        """The door numbered ``number`` (KeyError if none)."""
        for d in self.doors:
            if d.number == number:
                return d
        raise KeyError(number)


def load_config(path: str | Path) -> CabinetConfig:
    """Read and validate a cabinet TOML file.

    Raises:
        ConfigError: unreadable file, bad TOML or an invalid entry (the message says which).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read cabinet config: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    return parse_config(data, source=str(p))


class _Reader:
    """Typed access to one TOML table with errors that say where."""

    def __init__(self, table: Any, where: str) -> None:
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table")
        self.table = table
        self.where = where

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., *,
            lo: float | None = None, hi: float | None = None) -> Any:
        if key not in self.table:
            if default is ...:
                raise ConfigError(f"{self.where}: missing required key {key!r}")
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise ConfigError(f"{self.where}: {key} must be {_names(kinds)}, got {value!r}")
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds):
            raise ConfigError(f"{self.where}: {key} must be {_names(kinds)}, got {value!r}")
        if lo is not None and value < lo:
            raise ConfigError(f"{self.where}: {key} must be ≥ {lo}, got {value!r}")
        if hi is not None and value > hi:
            raise ConfigError(f"{self.where}: {key} must be ≤ {hi}, got {value!r}")
        return value

    def unknown(self, allowed: set[str]) -> None:
        extra = sorted(set(self.table) - allowed)
        if extra:
            raise ConfigError(f"{self.where}: unknown key(s) {', '.join(extra)}; "
                              f"allowed: {', '.join(sorted(allowed))}")


def _names(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false",
             list: "a list", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _tables(data: dict[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{where}: [[{key}]] must be an array of tables")
    return value


def parse_config(data: Mapping[str, Any], *, source: str = "<config>") -> CabinetConfig:
    """Validate a parsed TOML document (see simulator/README.md for the format).

    Raises:
        ConfigError: the first problem found, naming the entry.
    """
    top = _Reader(dict(data), source)
    top.unknown({"cabinet", "buses", "boards", "readers", "doors", "items", "card_reader",
                 "camera"})
    cab = _Reader(top.get("cabinet", dict), f"{source} [cabinet]")
    cab.unknown({"id", "seed", "name"})
    cabinet_id = cab.get("id", str)
    seed = cab.get("seed", int, 0)

    buses: list[BusConfig] = []
    for i, raw in enumerate(_tables(dict(data), "buses", source)):
        r = _Reader(raw, f"{source} [[buses]] #{i + 1}")
        r.unknown({"name", "kind", "baudrate", "family"})
        name = r.get("name", str)
        family = r.get("family", str, "lendbox")
        if family not in FAMILIES:
            raise ConfigError(f"{r.where}: family must be one of {', '.join(FAMILIES)}, "
                              f"got {family!r}")
        kind = r.get("kind", str, "rs485")
        if kind not in DEFAULT_BAUD:
            raise ConfigError(f"{r.where}: kind must be one of {', '.join(DEFAULT_BAUD)}, "
                              f"got {kind!r}")
        baud = r.get("baudrate", int, FAMILY_BAUD.get(family, DEFAULT_BAUD[kind]), lo=300,
                     hi=4_000_000)
        if any(b.name == name for b in buses):
            raise ConfigError(f"{r.where}: duplicate bus name {name!r}")
        buses.append(BusConfig(name=name, kind=kind, baudrate=baud, family=family))
    if not buses:
        raise ConfigError(f"{source}: at least one [[buses]] entry is needed")

    boards: list[BoardConfig] = []
    for i, raw in enumerate(_tables(dict(data), "boards", source)):
        r = _Reader(raw, f"{source} [[boards]] #{i + 1}")
        r.unknown({"address", "bus", "serial", "locks", "antennas", "firmware",
                   "hold_open_limit_s", "options"})
        address = r.get("address", int, lo=MIN_ADDRESS, hi=MAX_ADDRESS)
        bus = r.get("bus", str)
        bus_cfg = next((b for b in buses if b.name == bus), None)
        if bus_cfg is None:
            raise ConfigError(f"{r.where}: bus {bus!r} is not a declared [[buses]] name")
        if FAMILIES[bus_cfg.family] != "board":
            raise ConfigError(f"{r.where}: bus {bus!r} speaks {bus_cfg.family}, a reader "
                              "protocol: put the reader under [[readers]]")
        if any(b.address == address and b.bus == bus for b in boards):
            raise ConfigError(f"{r.where}: address {address} is used twice on bus {bus!r}")
        serial = r.get("serial", str, f"LB{seed % 10000:04d}{address:06d}")
        if not (serial.isascii() and 1 <= len(serial) <= SERIAL_SIZE and "\x00" not in serial):
            raise ConfigError(f"{r.where}: serial must be 1..{SERIAL_SIZE} ASCII characters")
        fw = r.get("firmware", str, "1.0.0")
        try:
            fw_parts = tuple(int(x) for x in fw.split("."))
            if len(fw_parts) != 3 or not all(0 <= x <= 255 for x in fw_parts):
                raise ValueError
        except ValueError:
            raise ConfigError(f"{r.where}: firmware must look like '1.0.0', got {fw!r}") from None
        boards.append(BoardConfig(
            address=address, bus=bus, serial=serial,
            locks=r.get("locks", int, lo=1, hi=57),
            antennas=r.get("antennas", int, 0, lo=0, hi=24),
            firmware=(fw_parts[0], fw_parts[1], fw_parts[2]),
            hold_open_limit_s=r.get("hold_open_limit_s", float, 120.0, lo=0.01),
            options=dict(r.get("options", dict, {})),
        ))
        if bus_cfg.family != "lendbox" and boards[-1].antennas:
            raise ConfigError(f"{r.where}: a {bus_cfg.family} lock board has no antennas; "
                              "put the RFID reader under [[readers]]")
    if not boards:
        raise ConfigError(f"{source}: at least one [[boards]] entry is needed")
    if len({b.serial for b in boards}) != len(boards):
        raise ConfigError(f"{source}: board serials must be unique")
    if len({b.address for b in boards}) != len(boards):
        raise ConfigError(f"{source}: board addresses must be unique in the cabinet "
                          "(doors name their board by address)")

    readers: list[ReaderConfig] = []
    for i, raw in enumerate(_tables(dict(data), "readers", source)):
        r = _Reader(raw, f"{source} [[readers]] #{i + 1}")
        r.unknown({"name", "bus", "address", "antennas", "options"})
        name = r.get("name", str)
        r.where = f"{source} reader {name!r}"
        if any(x.name == name for x in readers):
            raise ConfigError(f"{r.where}: duplicate reader name")
        bus = r.get("bus", str)
        bus_cfg = next((b for b in buses if b.name == bus), None)
        if bus_cfg is None:
            raise ConfigError(f"{r.where}: bus {bus!r} is not a declared [[buses]] name")
        if FAMILIES[bus_cfg.family] != "reader":
            raise ConfigError(f"{r.where}: bus {bus!r} speaks {bus_cfg.family}, which is not "
                              "a reader protocol")
        address = r.get("address", int, 0, lo=0, hi=255)
        if any(x.bus == bus and x.address == address for x in readers):
            raise ConfigError(f"{r.where}: address {address} is used twice on bus {bus!r}")
        readers.append(ReaderConfig(name=name, bus=bus, address=address,
                                    antennas=r.get("antennas", int, 1, lo=1, hi=64),
                                    options=dict(r.get("options", dict, {}))))

    doors: list[DoorConfig] = []
    used: set[tuple[int, int]] = set()
    for i, raw in enumerate(_tables(dict(data), "doors", source)):
        r = _Reader(raw, f"{source} [[doors]] #{i + 1}")
        r.unknown({"number", "board", "lock", "antenna", "reader", "size", "capacity", "spring",
                   "items"})
        number = r.get("number", int, lo=1, hi=9999)
        r.where = f"{source} door {number}"
        if any(d.number == number for d in doors):
            raise ConfigError(f"{r.where}: door number {number} appears twice")
        board_addr = r.get("board", int)
        board = next((b for b in boards if b.address == board_addr), None)
        if board is None:
            raise ConfigError(f"{r.where}: board {board_addr} is not a declared [[boards]] address")
        lock = r.get("lock", int, lo=1, hi=board.locks)
        if (board_addr, lock) in used:
            raise ConfigError(f"{r.where}: lock {lock} of board {board_addr} drives two doors")
        used.add((board_addr, lock))
        reader_name = r.get("reader", str, None) if "reader" in r.table else None
        antenna = r.get("antenna", int, lock if reader_name is None else 1)
        if reader_name is None:
            if not 1 <= antenna <= board.antennas:
                raise ConfigError(f"{r.where}: antenna {antenna} does not exist on board "
                                  f"{board_addr} (it has {board.antennas}); a door read by a "
                                  "stand-alone reader names it with reader = \"…\"")
        else:
            reader = next((x for x in readers if x.name == reader_name), None)
            if reader is None:
                raise ConfigError(f"{r.where}: reader {reader_name!r} is not a declared "
                                  "[[readers]] name")
            if not 1 <= antenna <= reader.antennas:
                raise ConfigError(f"{r.where}: antenna {antenna} does not exist on reader "
                                  f"{reader_name!r} (it has {reader.antennas})")
        size = r.get("size", str, "medium")
        if size not in DOOR_SIZES:
            raise ConfigError(f"{r.where}: size must be one of {', '.join(DOOR_SIZES)}")
        capacity = r.get("capacity", int, 12, lo=1, hi=200)
        items = r.get("items", int, 0, lo=0)
        if items > capacity:
            raise ConfigError(f"{r.where}: items ({items}) exceed capacity ({capacity})")
        doors.append(DoorConfig(number=number, board=board_addr, lock=lock, antenna=antenna,
                                size=size, capacity=capacity, spring=r.get("spring", bool, True),
                                items=items, reader=reader_name))
    if not doors:
        raise ConfigError(f"{source}: at least one [[doors]] entry is needed")

    items_table = _Reader(top.get("items", dict, {}), f"{source} [items]")
    items = _generate_items(items_table, doors, seed)

    def _flag(key: str) -> bool:
        value = top.get(key, dict, {})
        r = _Reader(value, f"{source} [{key}]")
        r.unknown({"enabled"})
        return bool(r.get("enabled", bool, bool(value)))

    return CabinetConfig(
        id=cabinet_id, seed=seed, buses=tuple(buses), boards=tuple(boards), doors=tuple(doors),
        items=items, readers=tuple(readers), card_reader=_flag("card_reader"),
        camera=_flag("camera"), source=source,
    )


def _generate_items(r: _Reader, doors: list[DoorConfig], cabinet_seed: int
                    ) -> tuple[ItemConfig, ...]:
    """Deterministic books: barcodes, owners, UIDs and RSSI from one seed."""
    r.unknown({"seed", "id_prefix", "owner_library", "other_libraries", "other_share",
               "titles"})
    rng = random.Random(r.get("seed", int, cabinet_seed))
    prefix = r.get("id_prefix", str, "390100")
    if not (prefix.isdigit() and 1 <= len(prefix) <= 10):
        raise ConfigError(f"{r.where}: id_prefix must be 1..10 digits, got {prefix!r}")
    owner = r.get("owner_library", str, "CN-440300")
    others = r.get("other_libraries", list, [])
    if not all(isinstance(o, str) and o for o in others):
        raise ConfigError(f"{r.where}: other_libraries must be a list of ISIL strings")
    share = r.get("other_share", float, 0.05 if others else 0.0, lo=0.0, hi=1.0)
    titles = r.get("titles", list, [])
    if not all(isinstance(t, str) for t in titles):
        raise ConfigError(f"{r.where}: titles must be a list of strings")
    digits = 13 - len(prefix)
    out: list[ItemConfig] = []
    serial = rng.randrange(10 ** (digits - 2))
    seen_uids: set[bytes] = set()
    for door in doors:
        for _ in range(door.items):
            serial += rng.randint(1, 97)
            item_id = f"{prefix}{serial % 10 ** digits:0{digits}d}"
            while True:
                uid = bytes([0xE0, 0x04, 0x01]) + rng.randbytes(5)  # E0, NXP, ICODE SLIX
                if uid not in seen_uids:
                    seen_uids.add(uid)
                    break
            lib = rng.choice(others) if others and rng.random() < share else owner
            title = titles[len(out) % len(titles)] if titles else None
            out.append(ItemConfig(item_id=item_id, uid=uid, owner_library=lib, door=door.number,
                                  rssi=rng.randint(-62, -38), title=title))
    return tuple(out)
