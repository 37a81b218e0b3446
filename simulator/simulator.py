"""The Simulator: a cabinet model, its board emulators, bus servers and control API in one.

Why one facade: tests, the ``lendbox sim`` command and the demo all need the same thing —
"a cabinet from this file, served on free ports, that I can poke" — with a constructor that
does no I/O (``start`` opens ports) and a ``stop`` that closes every thread and socket.
Every public action takes the simulator's lock, so the HTTP control thread, the bus threads
and the caller never see a half-applied change.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from .board import BoardEmulator
from .families.registry import build_bus, driver_options
from .config import CabinetConfig, load_config
from .errors import NotConfigured, NotFound
from .faults import LinkFaults
from .line import LinkStats
from .model import CabinetModel, Clock, SimItem
from .transport import BusServer

__all__ = ["Simulator"]


class Simulator:
    """A simulated cabinet.

    Args:
        config: the validated cabinet config (see :func:`simulator.config.load_config`).
        clock: monotonic seconds; inject a fake for sans-IO tests of the model and boards.
            Bus servers always pace on the real monotonic clock.
        pty: also serve every bus on a pseudo-terminal (``pty_paths``).
        control_port: port of the HTTP control API (0 = a free one; None = no HTTP server).
        pcscd: an already running :class:`simulator.pcscd.PrivatePcscd` to put the virtual
            card on, instead of starting one (and it is not stopped by :meth:`stop`). A process
            can reach only one private PC/SC stack (libpcsclite reads its socket path once),
            so tests share theirs this way.
        pcsc_slot: which of the daemon's two vpcd reader slots the card reader is (0 or 1).
    """

    def __init__(self, config: CabinetConfig, *, clock: Clock = time.monotonic,
                 pty: bool = False, control_port: int | None = 0, pcscd: Any = None,
                 pcsc_slot: int = 0) -> None:
        if pcsc_slot not in (0, 1):
            raise ValueError("pcsc_slot must be 0 or 1")
        self.config = config
        self.lock = threading.RLock()
        self.model = CabinetModel(config, clock, sink=self._on_event)
        lendbox_buses = {b.name for b in config.buses if b.family == "lendbox"}
        self.boards: dict[int, BoardEmulator] = {
            b.address: BoardEmulator(b, self.model) for b in config.boards
            if b.bus in lendbox_buses
        }
        self.faults = {b.name: LinkFaults() for b in config.buses}
        self.stats = {b.name: LinkStats() for b in config.buses}
        self.buses: dict[str, Any] = {}
        for b in config.buses:
            if b.family == "lendbox":
                self.buses[b.name] = BusServer(
                    b, [x for x in self.boards.values() if x.config.bus == b.name], self.lock,
                    self.faults[b.name], self.stats[b.name], pty=pty)
            else:  # a third-party family's emulators (simulator/families/)
                self.buses[b.name] = build_bus(b, config, self.model, self.lock,
                                               self.faults[b.name], self.stats[b.name], pty=pty)
        self._control_port = control_port
        self._control: Any = None
        self.camera: Any = None
        self.card_reader: Any = None
        self._pcscd: Any = None
        self._shared_pcscd: Any = pcscd
        self._pcsc_slot = pcsc_slot
        self.peripheral_errors: dict[str, str] = {}
        self.started = False

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Simulator:
        """Load a cabinet TOML file (ConfigError on any problem) and build a simulator."""
        return cls(load_config(path), **kwargs)

    # ------------------------------------------------------------ life cycle
    def start(self) -> Simulator:
        """Open every bus (TCP, optionally pty), the control API and configured peripherals."""
        if self.started:
            return self
        self.started = True
        try:
            for bus in self.buses.values():
                bus.start()
            if self._control_port is not None:
                from .control import ControlServer

                self._control = ControlServer(self, port=self._control_port)
                self._control.start()
            self._start_peripherals()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_peripherals(self) -> None:
        if self.config.camera:
            try:
                from .camera import CameraEmulator

                cam = CameraEmulator(port=0)
                cam.start()
                self.camera = cam
            except Exception as exc:  # optional device: report, keep going
                self.peripheral_errors["camera"] = f"{type(exc).__name__}: {exc}"
        if self.config.card_reader:
            try:
                from .pcscd import PrivatePcscd
                from .vcard import VirtualCard

                if self._shared_pcscd is not None:
                    daemon = self._shared_pcscd
                    if not daemon.running():
                        daemon.start()
                else:
                    daemon = PrivatePcscd()
                    daemon.start()
                self._pcscd = daemon
                self.card_reader = VirtualCard(daemon.vpcd_ports[self._pcsc_slot])
            except Exception as exc:
                self.peripheral_errors["card_reader"] = f"{type(exc).__name__}: {exc}"

    def stop(self) -> None:
        """Stop everything started; safe to call twice."""
        if self._control is not None:
            self._control.stop()
            self._control = None
        for bus in self.buses.values():
            bus.stop()
        if self.card_reader is not None:
            try:
                self.card_reader.remove()
            except Exception:
                pass
            self.card_reader = None
        if self._pcscd is not None:
            if self._pcscd is not self._shared_pcscd:
                self._pcscd.stop()
            self._pcscd = None
        if self.camera is not None:
            self.camera.stop()
            self.camera = None
        self.started = False

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ where to connect
    @property
    def bus_urls(self) -> dict[str, str]:
        """``{bus name: "socket://127.0.0.1:PORT"}``."""
        return {name: bus.url for name, bus in self.buses.items()}

    @property
    def pty_paths(self) -> dict[str, str]:
        """``{bus name: "/dev/pts/N"}`` for buses served on a pty."""
        return {n: b.pty_path for n, b in self.buses.items() if b.pty_path}

    @property
    def control_url(self) -> str | None:
        """``http://127.0.0.1:PORT`` of the control API, or None if not running."""
        return self._control.url if self._control is not None else None

    @property
    def camera_url(self) -> str | None:
        """The camera emulator's MJPEG stream URL, when a camera is configured and running."""
        return self.camera.url if self.camera is not None else None

    @property
    def pcsc_socket(self) -> str | None:
        """The client socket of the private pcscd serving the card reader, when running.

        PC/SC clients reach it with ``PCSCLITE_CSOCK_NAME`` set to this path (once per process).
        """
        return str(self._pcscd.socket_path) if self._pcscd is not None else None

    @property
    def card_reader_name(self) -> str | None:
        """The PC/SC name of the simulated card reader, when running."""
        if self._pcscd is None:
            return None
        return str(self._pcscd.reader_names[self._pcsc_slot])

    def hardware_config(self, *, prefer_pty: bool = False) -> dict[str, Any]:
        """The hardware config (docs/contracts.md schema) pointing at this running simulator."""
        buses = []
        for b in self.config.buses:
            url = self.buses[b.name].url
            if prefer_pty and self.buses[b.name].pty_path:
                url = str(self.buses[b.name].pty_path)
            buses.append({"name": b.name, "url": url, "baudrate": b.baudrate,
                          "family": b.family, "kind": b.kind})
        boards = []
        for bd in self.config.boards:
            row: dict[str, Any] = {"address": bd.address, "bus": bd.bus}
            family = self._bus_family(bd.bus)
            options = driver_options(family, bd) if family != "lendbox" else dict(bd.options)
            if options:
                row["options"] = options
            boards.append(row)
        doors = []
        for d in self.config.doors:
            door: dict[str, Any] = {"number": d.number, "board": d.board, "lock": d.lock,
                                    "antenna": d.antenna}
            if d.reader is not None:
                door["reader"] = d.reader
            doors.append(door)
        out: dict[str, Any] = {"cabinet": {"id": self.config.id}, "buses": buses,
                               "boards": boards}
        if self.config.readers:
            out["readers"] = []
            for r in self.config.readers:
                options = driver_options(self._bus_family(r.bus), r)
                out["readers"].append({"name": r.name, "bus": r.bus, "address": r.address,
                                       **({"options": options} if options else {})})
        out["doors"] = doors
        if self.card_reader_name is not None:
            out["card_reader"] = {"reader": self.card_reader_name,
                                  "pcsc_socket": self.pcsc_socket}
        if self.camera_url:
            out["camera"] = {"source": self.camera_url}
        return out

    def _bus_family(self, bus: str) -> str:
        return next(b.family for b in self.config.buses if b.name == bus)

    def write_hardware_config(self, path: str | Path, *, prefer_pty: bool = False) -> Path:
        """Write :meth:`hardware_config` as TOML to ``path``."""
        p = Path(path)
        p.write_text(_to_toml(self.hardware_config(prefer_pty=prefer_pty)), encoding="utf-8")
        return p

    # ------------------------------------------------------------ events from the model
    def _on_event(self, board: int, kind: Any, lock: int, at: float) -> None:
        target = self.boards.get(board)
        if target is not None:
            target.record_event(kind, lock, at)

    # ------------------------------------------------------------ people
    def open_door(self, door: int) -> None:
        """A person opens an unlatched door (Conflict if it is still locked)."""
        with self.lock:
            self.model.open_door(door)

    def close_door(self, door: int) -> None:
        """A person shuts a door; the latch catches."""
        with self.lock:
            self.model.close_door(door)

    def leave_door_open(self, door: int) -> None:
        """A person walks away from an (unlatched) door: DOOR_HELD_OPEN after the limit."""
        with self.lock:
            self.model.leave_door_open(door)

    def take_item(self, item_id: str) -> SimItem:
        """A person takes a book out of its open door."""
        with self.lock:
            return self.model.take_item(item_id)

    def put_item(self, item_id: str, door: int) -> SimItem:
        """A person puts a book into an open door."""
        with self.lock:
            return self.model.put_item(item_id, door)

    def door_items(self, door: int) -> list[SimItem]:
        """The books physically in ``door``."""
        with self.lock:
            d = self.model.door(door)
            return [self.model.items[i] for i in d.items]

    @property
    def items(self) -> dict[str, SimItem]:
        """Every book of the simulation by item id."""
        return dict(self.model.items)

    def state(self) -> dict[str, Any]:
        """Doors, items per door, faults, boards and link stats (JSON-ready)."""
        with self.lock:
            out = self.model.state()
            out["boards"] = [b.diagnostics() for b in self.boards.values()]
            out["buses"] = {
                name: {"url": self.buses[name].url, "pty": self.buses[name].pty_path,
                       "faults": self.faults[name].as_dict(),
                       "stats": self.stats[name].as_dict()}
                for name in self.buses
            }
            out["peripherals"] = {"camera": self.camera_url,
                                  "card_reader": self.card_reader is not None,
                                  "card_present": bool(self.card_reader is not None
                                                       and self.card_reader.inserted),
                                  "card_reader_name": self.card_reader_name,
                                  "pcsc_socket": self.pcsc_socket,
                                  "errors": dict(self.peripheral_errors)}
            return out

    # ------------------------------------------------------------ peripherals
    def present_card(self, uid: bytes) -> None:
        """Put a contactless card on the reader (NotConfigured without a card reader)."""
        if self.card_reader is None:
            raise NotConfigured(self.peripheral_errors.get(
                "card_reader", "this cabinet has no card reader configured"))
        self.card_reader.insert(uid)

    def remove_card(self) -> None:
        """Take the card off the reader."""
        if self.card_reader is None:
            raise NotConfigured(self.peripheral_errors.get(
                "card_reader", "this cabinet has no card reader configured"))
        self.card_reader.remove()

    def _camera(self) -> Any:
        if self.camera is None:
            raise NotConfigured(self.peripheral_errors.get(
                "camera", "this cabinet has no camera configured"))
        return self.camera

    def show_qr(self, text: str) -> None:
        """Hold a QR code in front of the camera (NotConfigured without a camera)."""
        self._camera().show_qr(text)

    def show_isbn(self, isbn: str) -> None:
        """Hold a book's EAN-13 barcode in front of the camera. 12 digits get their check
        digit; 13 are drawn as given (a wrong check digit shows a misprint). ValueError for
        anything else; NotConfigured without a camera."""
        digits = isbn.replace("-", "").replace(" ", "")
        if len(digits) not in (12, 13) or not digits.isascii() or not digits.isdigit():
            raise ValueError(f"isbn must be 12 or 13 digits (hyphens allowed), got {isbn!r}")
        self._camera().show_isbn(digits)

    def clear_camera(self) -> None:
        """Take whatever was held up away from the camera (the empty scene)."""
        self._camera().clear()

    # ------------------------------------------------------------ faults
    def _bus(self, bus: str) -> BusServer:
        try:
            return self.buses[bus]
        except KeyError:
            raise NotFound(f"no bus {bus!r}; buses: {', '.join(self.buses)}") from None

    def set_link_faults(self, bus: str, garble_rate: float = 0.0, drop_rate: float = 0.0,
                        delay_ms: float = 0.0, seed: int | None = None) -> None:
        """Garble bytes / drop frames / delay answers on one bus (ValueError on bad values)."""
        self._bus(bus)
        self.faults[bus].configure(garble_rate, drop_rate, delay_ms, seed)

    def unplug(self, bus: str) -> None:
        """Pull a bus's cable: connections closed, new ones refused until replug."""
        self._bus(bus).unplug()

    def replug(self, bus: str) -> None:
        """Plug the cable back in: the same port accepts again."""
        self._bus(bus).replug()

    def jam_lock(self, door: int, jammed: bool = True) -> None:
        """The bolt is stuck: pulses report JAMMED and the door stays shut."""
        with self.lock:
            self.model.door(door).lock_jammed = bool(jammed)

    def break_lock_wiring(self, door: int, broken: bool = True) -> None:
        """Coil open circuit: a pulse does nothing; self-test shows OPEN_CIRCUIT."""
        with self.lock:
            self.model.door(door).wiring_broken = bool(broken)

    def break_door_sensor(self, door: int, broken: bool = True) -> None:
        """The door sensor reads closed forever; self-test shows OPEN_CIRCUIT."""
        with self.lock:
            self.model.door(door).sensor_broken = bool(broken)

    def force_door(self, door: int) -> None:
        """Pry a door open without a pulse (DOOR_FORCED, DOOR_OPENED)."""
        with self.lock:
            self.model.force_door(door)

    def detune_antenna(self, door: int, reflected_permille: int = 450) -> None:
        """Detune the antenna reading ``door``: signal loss, SELF_TEST DETUNED above 300 ‰."""
        if not isinstance(reflected_permille, int) or not 0 <= reflected_permille <= 1000:
            raise ValueError("reflected_permille must be an integer 0..1000")
        with self.lock:
            self.model.antenna_for_door(door).reflected_permille = reflected_permille

    def set_antenna_noise(self, door: int, noise_floor_dbm: int = -40) -> None:
        """Raise the noise floor of the antenna reading ``door`` (weak tags are lost)."""
        if not isinstance(noise_floor_dbm, int) or not -128 <= noise_floor_dbm <= 127:
            raise ValueError("noise_floor_dbm must be an integer -128..127")
        with self.lock:
            self.model.antenna_for_door(door).noise_floor_dbm = noise_floor_dbm

    def make_tag_unreadable(self, item_id: str, unreadable: bool = True) -> None:
        """The tag never answers (damaged, shielded)."""
        with self.lock:
            self.model.item(item_id).unreadable = bool(unreadable)

    def corrupt_tag_memory(self, item_id: str, corrupted: bool = True) -> None:
        """The tag answers, but its memory is garbage (ISO 28560 decoding fails);
        ``corrupted=False`` restores the original bytes."""
        with self.lock:
            self.model.item(item_id).corrupt_memory(bool(corrupted))

    def detune_tag(self, item_id: str, miss_rate: float = 0.5) -> None:
        """A neighbouring book detunes the tag: it misses each read with ``miss_rate``."""
        if not isinstance(miss_rate, (int, float)) or not 0.0 <= miss_rate <= 1.0:
            raise ValueError("miss_rate must be a number in 0..1")
        with self.lock:
            self.model.item(item_id).miss_rate = float(miss_rate)

    def _board(self, board_address: int) -> BoardEmulator:
        for b in self.boards.values():
            if b.address == board_address:
                return b
        if board_address in self.boards:
            return self.boards[board_address]
        raise NotFound(f"no board with address {board_address!r}")

    def power_cut(self, board_address: int) -> None:
        """Cut a board's power: it stops answering and loses RAM, keeps its event ring."""
        with self.lock:
            self._board(board_address).power_cut()

    def power_restore(self, board_address: int) -> None:
        """Restore a board's power: fresh boot, POWER_RESTORED logged."""
        with self.lock:
            self._board(board_address).power_restore()

    # ------------------------------------------------------------ timing
    def link_stats(self, bus: str) -> dict[str, float | int]:
        """Emulated wire time, air time, board time and counts of one bus (see LinkStats)."""
        self._bus(bus)
        return self.stats[bus].as_dict()

    def reset_link_stats(self, bus: str) -> None:
        """Zero one bus's stats (before a benchmark)."""
        self._bus(bus)
        s = self.stats[bus]
        for name, value in LinkStats().as_dict().items():
            setattr(s, name, value)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, dict):  # a family's options: an inline table
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def _to_toml(doc: dict[str, Any]) -> str:
    lines = ["# written by lendbox sim for the running simulator", ""]
    for key, value in doc.items():
        rows = value if isinstance(value, list) else [value]
        for row in rows:
            lines.append(f"[[{key}]]" if isinstance(value, list) else f"[{key}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in row.items())
            lines.append("")
    return "\n".join(lines)

