"""The cabinet's hardware from its config file (docs/contracts.md): buses, boards, doors.

Why one place: the kiosk and ``lendbox diag`` must agree on which board and lock open door 7
and which antenna sees its books; a mistake in the file is reported once, at load, naming the
entry and the problem, never later as a KeyError in the middle of a loan.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_protocol.const import MAX_ADDRESS, MIN_ADDRESS

from .board import LendboxBoard
from .cursor import CursorStore, MemoryCursorStore
from .errors import ConfigError
from .rfid import LendboxRfidReader, TagCache
from .transport import BusTransport, PortFactory

__all__ = [
    "FAMILIES",
    "BoardSpec",
    "BusSpec",
    "DoorSpec",
    "Hardware",
    "HardwareSpec",
    "load_spec",
    "parse_spec",
]

#: Protocol families this version can drive.
FAMILIES = ("lendbox",)


@dataclass(frozen=True, slots=True, kw_only=True)
class BusSpec:
    name: str
    url: str
    baudrate: int = 19200
    family: str = "lendbox"


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardSpec:
    address: int
    bus: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DoorSpec:
    """Door ``number`` (as printed on the cabinet) → board address, lock, antenna."""

    number: int
    board: int
    lock: int
    antenna: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HardwareSpec:
    cabinet_id: str
    buses: tuple[BusSpec, ...]
    boards: tuple[BoardSpec, ...]
    doors: tuple[DoorSpec, ...]


def load_spec(path: str | os.PathLike[str]) -> HardwareSpec:
    """Read and validate a hardware config file.

    Raises:
        ConfigError: the file is missing, not TOML, or inconsistent; the message names the
            file, the entry and the problem.
    """
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: no such hardware config file") from exc
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    try:
        return parse_spec(raw)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def _field(entry: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in entry:
        raise ConfigError(f"{where}: missing field '{key}'")
    value = entry[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: '{key}' must be an integer, got {value!r}")
    if kind is str and (not isinstance(value, str) or not value):
        raise ConfigError(f"{where}: '{key}' must be a non-empty string, got {value!r}")
    return value


def _table_list(raw: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"'{key}' must be an array of tables ([[{key}]])")
    return value


def parse_spec(raw: Mapping[str, Any]) -> HardwareSpec:
    """Validate a parsed config (see ``load_spec``). Raises ConfigError."""
    cabinet = raw.get("cabinet", {})
    if not isinstance(cabinet, dict):
        raise ConfigError("[cabinet] must be a table")
    cabinet_id = str(cabinet.get("id", ""))

    buses: dict[str, BusSpec] = {}
    for i, b in enumerate(_table_list(raw, "buses"), 1):
        where = f"buses[{i}]"
        name = _field(b, "name", str, where)
        where = f"bus '{name}'"
        if name in buses:
            raise ConfigError(f"{where}: duplicate bus name")
        url = _field(b, "url", str, where)
        baud = b.get("baudrate", 19200)
        if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            raise ConfigError(f"{where}: 'baudrate' must be a positive integer, got {baud!r}")
        family = b.get("family", "lendbox")
        if family not in FAMILIES:
            raise ConfigError(f"{where}: unknown family {family!r} (known: "
                              f"{', '.join(FAMILIES)})")
        buses[name] = BusSpec(name=name, url=url, baudrate=baud, family=family)
    if not buses:
        raise ConfigError("no [[buses]] defined")

    boards: dict[int, BoardSpec] = {}
    for i, b in enumerate(_table_list(raw, "boards"), 1):
        where = f"boards[{i}]"
        address = _field(b, "address", int, where)
        bus = _field(b, "bus", str, where)
        where = f"board {address}"
        if not MIN_ADDRESS <= address <= MAX_ADDRESS:
            raise ConfigError(f"{where}: address must be {MIN_ADDRESS}..{MAX_ADDRESS}")
        if bus not in buses:
            raise ConfigError(f"{where}: unknown bus '{bus}' (defined: {', '.join(buses)})")
        if address in boards:
            raise ConfigError(
                f"{where}: duplicate board address (on '{boards[address].bus}' and '{bus}'; "
                f"doors name boards by address, so addresses must be unique in a cabinet)")
        boards[address] = BoardSpec(address=address, bus=bus)

    doors: dict[int, DoorSpec] = {}
    used: dict[tuple[int, int], int] = {}
    for i, d in enumerate(_table_list(raw, "doors"), 1):
        where = f"doors[{i}]"
        number = _field(d, "number", int, where)
        where = f"door {number}"
        if number < 1:
            raise ConfigError(f"{where}: door numbers start at 1")
        if number in doors:
            raise ConfigError(f"{where}: duplicate door number")
        board = _field(d, "board", int, where)
        if board not in boards:
            raise ConfigError(f"{where}: unknown board {board} (defined: "
                              f"{', '.join(str(a) for a in boards) or 'none'})")
        lock = _field(d, "lock", int, where)
        antenna = _field(d, "antenna", int, where)
        for key, value in (("lock", lock), ("antenna", antenna)):
            if not 1 <= value <= 255:
                raise ConfigError(f"{where}: '{key}' must be 1..255, got {value}")
        if (board, lock) in used:
            raise ConfigError(f"{where}: lock {lock} of board {board} already drives door "
                              f"{used[(board, lock)]}")
        used[(board, lock)] = number
        doors[number] = DoorSpec(number=number, board=board, lock=lock, antenna=antenna)
    return HardwareSpec(cabinet_id=cabinet_id, buses=tuple(buses.values()),
                        boards=tuple(boards.values()),
                        doors=tuple(sorted(doors.values(), key=lambda d: d.number)))


@dataclass(slots=True)
class Hardware:
    """The built devices. Nothing is opened until first used; ``close()`` closes every bus.

    Attributes:
        buses: bus name → transport.
        boards: board address → board.
        readers: board address → the RFID reader behind that board's antennas.
        doors: door number → its spec (board, lock, antenna).
        tag_cache: UID → decoded tag data, shared by every reader.
    """

    spec: HardwareSpec
    buses: dict[str, BusTransport]
    boards: dict[int, LendboxBoard]
    readers: dict[int, LendboxRfidReader]
    doors: dict[int, DoorSpec]
    tag_cache: TagCache = field(default_factory=TagCache)

    @classmethod
    def from_spec(cls, spec: HardwareSpec, *, cursor_store: CursorStore | None = None,
                  port_factory: PortFactory | None = None,
                  backoff_s: tuple[float, float] = (0.5, 10.0)) -> Hardware:
        """Build (not open) every device of ``spec``."""
        store = cursor_store if cursor_store is not None else MemoryCursorStore()
        buses: dict[str, BusTransport] = {}
        for b in spec.buses:
            kwargs: dict[str, Any] = {"baudrate": b.baudrate, "name": b.name,
                                      "backoff_s": backoff_s}
            if port_factory is not None:
                kwargs["port_factory"] = port_factory
            buses[b.name] = BusTransport(b.url, **kwargs)
        boards = {bd.address: LendboxBoard(buses[bd.bus], bd.address, cursor_store=store)
                  for bd in spec.boards}
        readers = {a: LendboxRfidReader(board) for a, board in boards.items()}
        return cls(spec=spec, buses=buses, boards=boards, readers=readers,
                   doors={d.number: d for d in spec.doors})

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], **kwargs: Any) -> Hardware:
        """``parse_spec`` + ``from_spec`` for a config already parsed (e.g. a simulator's
        ``hardware_config()``). Raises ConfigError."""
        return cls.from_spec(parse_spec(raw), **kwargs)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> Hardware:
        """``load_spec`` + ``from_spec``. Raises ConfigError."""
        return cls.from_spec(load_spec(path), **kwargs)

    def door(self, number: int) -> DoorSpec:
        """The door's spec. Raises ConfigError for a door the cabinet does not have."""
        try:
            return self.doors[number]
        except KeyError:
            raise ConfigError(f"no door {number} in this cabinet (doors: "
                              f"{_ranges(sorted(self.doors))})") from None

    def board_of(self, door: int) -> LendboxBoard:
        return self.boards[self.door(door).board]

    def reader_of(self, door: int) -> LendboxRfidReader:
        return self.readers[self.door(door).board]

    def bus_of(self, board: int) -> str:
        return self.boards[board].transport.name

    def doors_of(self, board: int, *, antenna: int | None = None,
                 lock: int | None = None) -> list[int]:
        """Door numbers driven by ``board`` (optionally by one antenna or lock)."""
        return [d.number for d in self.doors.values() if d.board == board
                and (antenna is None or d.antenna == antenna)
                and (lock is None or d.lock == lock)]

    def close(self) -> None:
        for bus in self.buses.values():
            bus.close()

    def __enter__(self) -> Hardware:  # noqa: PYI034 - slotted dataclass, no Self needed
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ranges(numbers: list[int]) -> str:
    if not numbers:
        return "none"
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)
