"""The cabinet's hardware from its config file (docs/contracts.md): buses, boards, readers,
doors — of any mix of device families (docs/families.md).

Why one place: the kiosk and ``lendbox diag`` must agree on which board and lock open door 7
and which antenna sees its books; a mistake in the file is reported once, at load, naming the
entry and the problem, never later as a KeyError in the middle of a loan.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware_protocol.const import MAX_ADDRESS, MIN_ADDRESS

from .board import ControllerBoard
from .cursor import CursorStore, MemoryCursorStore
from .errors import ConfigError, DriverError
from .families.registry import FAMILIES, family
from .rfid import RfidReader, TagCache
from .transport import PortFactory

if TYPE_CHECKING:
    from .camera import Camera
    from .card_reader import CardReader

__all__ = [
    "FAMILIES",
    "PCSC_SOCKET_ENV",
    "BoardSpec",
    "BusSpec",
    "CameraSpec",
    "CardReaderSpec",
    "DoorSpec",
    "Hardware",
    "HardwareSpec",
    "ReaderSpec",
    "bind_pcsc_socket",
    "load_spec",
    "parse_spec",
]

#: The environment variable libpcsclite reads (once per process) for pcscd's client socket.
PCSC_SOCKET_ENV = "PCSCLITE_CSOCK_NAME"
#: The socket libpcsclite uses when the variable is not set.
DEFAULT_PCSC_SOCKET = "/run/pcscd/pcscd.comm"

@dataclass(frozen=True, slots=True, kw_only=True)
class BusSpec:
    """One serial link and the protocol family every device on it speaks.

    ``kind`` "rs485" (half duplex: the host keeps SPEC's turnaround) or "usb" (one device on a
    point-to-point link). ``parity`` None = the family's default (FEIG: even)."""

    name: str
    url: str
    baudrate: int = 19200
    family: str = "lendbox"
    kind: str = "rs485"
    parity: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardSpec:
    """A lock board; ``options`` are its family's settings (e.g. a Modbus register map)."""

    address: int
    bus: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderSpec:
    """A stand-alone RFID reader (FEIG, RR3036 …), named so doors can refer to it."""

    name: str
    bus: str
    address: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class DoorSpec:
    """Door ``number`` (as printed on the cabinet) → board address and lock; antenna of the
    stand-alone ``reader`` if named, else of the board (our own boards carry the RFID)."""

    number: int
    board: int
    lock: int
    antenna: int
    reader: str | None = None

    @property
    def antenna_source(self) -> int | str:
        """The key of ``Hardware.readers`` that reads this door."""
        return self.reader if self.reader is not None else self.board


@dataclass(frozen=True, slots=True, kw_only=True)
class CardReaderSpec:
    """``[card_reader]``: the contactless reader, by a substring of its PC/SC name.

    ``pcsc_socket`` is the client socket of a private pcscd (the simulator's); None = the
    system's pcscd (libpcsclite's default, or whatever ``PCSCLITE_CSOCK_NAME`` says).
    """

    reader: str = ""
    pcsc_socket: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraSpec:
    """``[camera]``: a device index, an image/video file or a stream URL, and its decoders."""

    source: int | str
    decoder: str = "auto"
    isbn_decoder: str = "auto"


@dataclass(frozen=True, slots=True, kw_only=True)
class HardwareSpec:
    cabinet_id: str
    buses: tuple[BusSpec, ...]
    boards: tuple[BoardSpec, ...]
    doors: tuple[DoorSpec, ...]
    readers: tuple[ReaderSpec, ...] = ()
    card_reader: CardReaderSpec | None = None
    camera: CameraSpec | None = None


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
        family_name = b.get("family", "lendbox")
        if family_name not in FAMILIES:
            raise ConfigError(f"{where}: unknown family {family_name!r} (known: "
                              f"{', '.join(FAMILIES)})")
        kind = b.get("kind", "rs485")
        if kind not in ("rs485", "usb"):
            raise ConfigError(f"{where}: 'kind' must be \"rs485\" or \"usb\", got {kind!r}")
        parity = b.get("parity")
        if parity is not None and parity not in ("N", "E", "O"):
            raise ConfigError(f"{where}: 'parity' must be \"N\", \"E\" or \"O\", got {parity!r}")
        buses[name] = BusSpec(name=name, url=url, baudrate=baud, family=family_name,
                              kind=kind, parity=parity)
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
        if family(buses[bus].family).kind != "board":
            raise ConfigError(f"{where}: bus '{bus}' speaks {buses[bus].family}, a reader "
                              "protocol: put the reader under [[readers]]")
        if address in boards:
            raise ConfigError(
                f"{where}: duplicate board address (on '{boards[address].bus}' and '{bus}'; "
                f"doors name boards by address, so addresses must be unique in a cabinet)")
        boards[address] = BoardSpec(address=address, bus=bus,
                                    options=_options(b, where))

    readers: dict[str, ReaderSpec] = {}
    for i, r in enumerate(_table_list(raw, "readers"), 1):
        where = f"readers[{i}]"
        name = _field(r, "name", str, where)
        where = f"reader '{name}'"
        if name in readers:
            raise ConfigError(f"{where}: duplicate reader name")
        bus = _field(r, "bus", str, where)
        if bus not in buses:
            raise ConfigError(f"{where}: unknown bus '{bus}' (defined: {', '.join(buses)})")
        if family(buses[bus].family).kind != "reader":
            raise ConfigError(f"{where}: bus '{bus}' speaks {buses[bus].family}, which is "
                              "not a reader protocol")
        address = r.get("address", 0)
        if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= 255:
            raise ConfigError(f"{where}: 'address' must be 0..255, got {address!r}")
        readers[name] = ReaderSpec(name=name, bus=bus, address=address,
                                   options=_options(r, where))

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
        reader = d.get("reader")
        if reader is not None and reader not in readers:
            raise ConfigError(f"{where}: unknown reader {reader!r} (defined: "
                              f"{', '.join(readers) or 'none'})")
        if reader is None and buses[boards[board].bus].family != "lendbox":
            raise ConfigError(f"{where}: board {board} is a {buses[boards[board].bus].family} "
                              "lock board without RFID: name the door's reader (reader = …)")
        for key, value in (("lock", lock), ("antenna", antenna)):
            if not 1 <= value <= 255:
                raise ConfigError(f"{where}: '{key}' must be 1..255, got {value}")
        if (board, lock) in used:
            raise ConfigError(f"{where}: lock {lock} of board {board} already drives door "
                              f"{used[(board, lock)]}")
        used[(board, lock)] = number
        doors[number] = DoorSpec(number=number, board=board, lock=lock, antenna=antenna,
                                 reader=reader)
    return HardwareSpec(cabinet_id=cabinet_id, buses=tuple(buses.values()),
                        boards=tuple(boards.values()),
                        doors=tuple(sorted(doors.values(), key=lambda d: d.number)),
                        readers=tuple(readers.values()), card_reader=_parse_card_reader(raw),
                        camera=_parse_camera(raw))


def _options(entry: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    options = entry.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: 'options' must be a table")
    return dict(options)


def _section(raw: Mapping[str, Any], key: str, allowed: set[str]) -> Mapping[str, Any] | None:
    if key not in raw:
        return None
    table = raw[key]
    if not isinstance(table, dict):
        raise ConfigError(f"[{key}] must be a table")
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(f"[{key}]: unknown key(s) {', '.join(extra)} (allowed: "
                          f"{', '.join(sorted(allowed))})")
    return table


def _parse_card_reader(raw: Mapping[str, Any]) -> CardReaderSpec | None:
    table = _section(raw, "card_reader", {"reader", "pcsc_socket"})
    if table is None:
        return None
    reader = table.get("reader", "")
    if not isinstance(reader, str):
        raise ConfigError(f"[card_reader]: 'reader' must be a string (a part of the PC/SC "
                          f"reader name, \"\" = the first reader), got {reader!r}")
    socket_path = table.get("pcsc_socket")
    if socket_path is not None:
        if not isinstance(socket_path, str) or not socket_path:
            raise ConfigError(f"[card_reader]: 'pcsc_socket' must be a non-empty string, got "
                              f"{socket_path!r}")
        if not os.path.isabs(socket_path):
            raise ConfigError(f"[card_reader]: 'pcsc_socket' must be an absolute path (pcscd's "
                              f"client socket, e.g. {DEFAULT_PCSC_SOCKET}), got {socket_path!r}")
    return CardReaderSpec(reader=reader, pcsc_socket=socket_path)


def _parse_camera(raw: Mapping[str, Any]) -> CameraSpec | None:
    table = _section(raw, "camera", {"source", "decoder", "isbn_decoder"})
    if table is None:
        return None
    if "source" not in table:
        raise ConfigError("[camera]: missing field 'source' (a device index such as 0, an "
                          "image or video file, or a stream URL)")
    source = table["source"]
    if isinstance(source, bool) or not isinstance(source, (int, str)):
        raise ConfigError(f"[camera]: 'source' must be a device index, a file path or a URL, "
                          f"got {source!r}")
    from .camera.decoders import QR_BACKENDS  # cv2: only paid for when a camera is configured
    from .camera.source import CameraSource
    from .errors import CameraError

    try:
        CameraSource.parse(source)
    except CameraError as exc:
        raise ConfigError(f"[camera]: 'source' {source!r}: {exc}") from None
    names: dict[str, str] = {}
    for key in ("decoder", "isbn_decoder"):
        value = table.get(key, "auto")
        if value != "auto" and value not in QR_BACKENDS:
            raise ConfigError(f"[camera]: unknown {key} {value!r} (known: auto, "
                              f"{', '.join(QR_BACKENDS)})")
        names[key] = value
    return CameraSpec(source=source, **names)


def _pcsc_maybe_used() -> bool:
    """Whether libpcsclite may already have read its socket path in this process.

    pyscard loads libpcsclite with ``smartcard.scard``; the variable is read at the first
    PC/SC call after that. Before the import no PC/SC call can have happened through pyscard.
    """
    return "smartcard.scard" in sys.modules


def bind_pcsc_socket(path: str) -> None:
    """Make this process's PC/SC clients use pcscd's socket at ``path``.

    libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once per process, at the first PC/SC call, and
    keeps it; so the variable is set here, before that call, and a different socket already
    in use is an error rather than a reader that silently talks to the wrong pcscd.

    Raises:
        ConfigError: this process may already use another pcscd socket.
    """
    current = os.environ.get(PCSC_SOCKET_ENV)
    if current == path:
        return
    if _pcsc_maybe_used():
        in_use = current or f"{DEFAULT_PCSC_SOCKET} (the default)"
        raise ConfigError(
            f"[card_reader]: pcsc_socket {path} cannot be used: this process may already talk "
            f"to pcscd through {in_use}, and libpcsclite reads {PCSC_SOCKET_ENV} only once per "
            f"process — run in a new process, or start it with {PCSC_SOCKET_ENV}={path}")
    os.environ[PCSC_SOCKET_ENV] = path


@dataclass(slots=True)
class Hardware:
    """The built devices. Nothing is opened until first used; ``close()`` closes every bus.

    Attributes:
        buses: bus name → transport (a ``BusTransport``, or the family's own link).
        boards: board address → board (any family's ``ControllerBoard``).
        readers: board address → the RFID reader behind one of our boards' antennas, and
            reader name → a stand-alone reader.
        doors: door number → its spec (board, lock, antenna).
        tag_cache: UID → decoded tag data, shared by every reader.
        card_reader: the contactless card reader of ``[card_reader]``, or None.
        camera: the camera of ``[camera]`` (not opened), or None.
    """

    spec: HardwareSpec
    buses: dict[str, Any]
    boards: dict[int, ControllerBoard]
    readers: dict[int | str, RfidReader]
    doors: dict[int, DoorSpec]
    tag_cache: TagCache = field(default_factory=TagCache)
    card_reader: CardReader | None = None
    camera: Camera | None = None

    @classmethod
    def from_spec(cls, spec: HardwareSpec, *, cursor_store: CursorStore | None = None,
                  port_factory: PortFactory | None = None,
                  backoff_s: tuple[float, float] = (0.5, 10.0)) -> Hardware:
        """Build (not open) every device of ``spec``.

        With ``[card_reader] pcsc_socket`` this sets ``PCSCLITE_CSOCK_NAME`` for the process
        (see :func:`bind_pcsc_socket`; ConfigError if another socket may be in use).
        """
        card_reader = camera = None
        if spec.card_reader is not None:
            from .card_reader import CardReader

            if spec.card_reader.pcsc_socket is not None:
                bind_pcsc_socket(spec.card_reader.pcsc_socket)
            card_reader = CardReader(spec.card_reader.reader)
        if spec.camera is not None:
            from .camera import Camera

            try:
                camera = Camera(spec.camera.source, decoder=spec.camera.decoder,
                                isbn_decoder=spec.camera.isbn_decoder)
            except (ValueError, DriverError) as exc:
                raise ConfigError(f"[camera]: {exc}") from None
        store = cursor_store if cursor_store is not None else MemoryCursorStore()
        buses: dict[str, Any] = {}
        bus_specs = {b.name: b for b in spec.buses}
        try:
            for b in spec.buses:
                buses[b.name] = family(b.family).make_transport(
                    b, backoff_s=backoff_s, port_factory=port_factory)
            boards: dict[int, ControllerBoard] = {}
            readers: dict[int | str, RfidReader] = {}
            for bd in spec.boards:
                fam = family(bus_specs[bd.bus].family)
                boards[bd.address] = fam.make_board(buses[bd.bus], bd, store)
                built_in = fam.board_reader(boards[bd.address])
                if built_in is not None:
                    readers[bd.address] = built_in
            for rd in spec.readers:
                readers[rd.name] = family(bus_specs[rd.bus].family).make_reader(
                    buses[rd.bus], rd)
        except ValueError as exc:  # a family's options did not validate
            raise ConfigError(str(exc)) from None
        return cls(spec=spec, buses=buses, boards=boards, readers=readers,
                   doors={d.number: d for d in spec.doors}, card_reader=card_reader,
                   camera=camera)

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

    def board_of(self, door: int) -> ControllerBoard:
        return self.boards[self.door(door).board]

    def reader_of(self, door: int) -> RfidReader:
        return self.readers[self.door(door).antenna_source]

    def bus_of(self, board: int) -> str:
        return next(b.bus for b in self.spec.boards if b.address == board)

    def doors_of(self, board: int, *, antenna: int | None = None,
                 lock: int | None = None) -> list[int]:
        """Door numbers driven by ``board`` (optionally by one antenna or lock)."""
        return [d.number for d in self.doors.values() if d.board == board
                and (antenna is None or d.antenna == antenna)
                and (lock is None or d.lock == lock)]

    def doors_read_by(self, source: int | str, antenna: int | None = None) -> list[int]:
        """Door numbers whose antenna belongs to ``source`` (board address or reader name)."""
        return [d.number for d in self.doors.values() if d.antenna_source == source
                and (antenna is None or d.antenna == antenna)]

    def close(self) -> None:
        """Close every bus, stop the card reader's watcher, release the camera."""
        for bus in self.buses.values():
            bus.close()
        if self.card_reader is not None:
            self.card_reader.stop()
        if self.camera is not None:
            self.camera.close()

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
