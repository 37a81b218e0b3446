"""Emulator of generic Modbus RTU digital I/O modules used as lock boards — with pymodbus's
own server as the device.

Why pymodbus's server and not an emulator of ours: a driver tested only against code its
authors also wrote shares their misreadings of the spec. pymodbus's server is an
implementation nobody here wrote; our part is only the wiring to the cabinet:

* **Datastore ↔ physical model.** Each module is a ``pymodbus.simulator.SimDevice`` with
  separate coil and discrete-input blocks and an ``action`` hook (the 3.16.1 way to run code
  on every datastore access):

  - a coil write (FC 5/15) that turns a lock's coil **on** (rising edge) calls
    ``model.pulse(board, lock, ...)`` — the bolt retracts, a sprung door pops open; the
    **falling** edge ends the release (``released_until`` = now). Every rising edge is
    recorded in ``ModbusDeviceServer.pulses``, so tests can prove the driver never pulsed
    twice;
  - a discrete-input read (FC 2) first refreshes the input bits from the model: door input
    = ``DOOR_OPEN`` of ``model.door_flags`` (the *sensed* state: a broken sensor reads
    closed), written as ``door_open_when`` (the module's input polarity); optional "item
    present" inputs = the door holds an item.

* **Behind the lendbox proxy.** The pymodbus server listens (RTU framing over TCP,
  ``ModbusTcpServer(framer=FramerType.RTU)``) on a private free port on 127.0.0.1 that only
  :class:`ModbusBridge` connects to. The bridge is an ordinary ``BusDevice`` on a
  ``simulator.transport.BusServer`` with :class:`ModbusRtuDeviceWire`, so the host-facing
  side gets the same line-rate pacing and faults (garbled bytes, dropped requests/replies,
  delay, unplug) as every other family: ``BusServer`` splits the byte stream into RTU frames
  with ``firmware_protocol.modbus_rtu``, the bridge forwards each frame addressed to one of its
  modules to pymodbus, splits pymodbus's answer the same way, and returns it as
  ``BoardResult.reply``.

* **Locking.** ``BusServer`` calls the bridge under the simulator's model lock and the bridge
  blocks until pymodbus answered, so the ``action`` hook (running on pymodbus's event-loop
  thread) touches the model while that lock is held on its behalf. The pymodbus port must
  therefore not be used by anyone but the bridge.

What the bridge does not forward (silent, as a real module on a shared bus): frames for a unit
it does not host (pymodbus would answer those with exception 4, not silence), broadcasts
(unit 0), frames with a bad CRC, truncated frames, garbage, and well-framed requests of an
unknown function or with an invalid payload (pymodbus's RTU framer cannot size an unknown
function and stays silent; a real module might answer exception 1 or 3).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymodbus import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from firmware_protocol import modbus_rtu as rtu
from firmware_protocol.codec import NEED_DATA
from firmware_protocol.const import DoorFlags
from firmware_protocol.errors import FrameError

from ..board import FIRMWARE_PROCESSING_S, BoardResult
from ..config import BusConfig
from ..faults import LinkFaults
from ..line import LinkStats
from ..model import CabinetModel
from ..transport import BusServer

__all__ = [
    "ModbusBridge",
    "ModbusBus",
    "ModbusDeviceServer",
    "ModbusModule",
    "ModbusRtuDeviceWire",
    "PulseRecord",
]

_log = logging.getLogger(__name__)
#: Modbus RTU ends a frame after 3.5 character times of silence (4 ms at 9600 baud); the
#: server side of a TCP-carried line uses a little more for scheduler jitter.
INTER_BYTE_GAP_S = 0.005
#: The model's release time given at the rising edge; the falling edge cuts it short.
NOMINAL_PULSE_S = 0.4
#: How long the bridge waits for pymodbus's answer before treating the module as silent.
FORWARD_TIMEOUT_S = 0.5
_SILENT = BoardResult(reply=None)


class ModbusRtuDeviceWire:
    """Modbus RTU framing as a module hears and answers it (``BusServer``)."""

    family = "modbus"
    inter_byte_gap_s = INTER_BYTE_GAP_S
    bits_per_char = 10  # 8N1, the usual factory setting of these modules

    def new_decoder(self) -> rtu.RequestDecoder:
        return rtu.RequestDecoder()

    def encode_reply(self, reply: Any) -> bytes:
        return rtu.encode_reply(reply)

    def encoded_size(self, request: Any) -> int:
        return len(rtu.encode_request(request))


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusModule:
    """One I/O module's register map (the same keys as the driver's ``ModbusIoMap``).

    Attributes:
        unit: the module's Modbus device id (1..247).
        locks: how many lock outputs (coils) and door inputs are wired.
        lock_coils_start: protocol address (0-based) of lock 1's coil.
        door_inputs_start: protocol address of lock 1's door input.
        door_open_when: the input value that means "door open" (NC vs NO contacts).
        item_inputs_start: protocol address of lock 1's "item present" input, if wired.
        board: the cabinet model's board address these locks belong to (default: ``unit``).
    """

    unit: int
    locks: int
    lock_coils_start: int = 0
    door_inputs_start: int = 0
    door_open_when: bool = True
    item_inputs_start: int | None = None
    board: int | None = None

    @property
    def model_board(self) -> int:
        return self.unit if self.board is None else self.board

    def input_span(self) -> int:
        """Discrete inputs the module needs (addresses 0..span-1)."""
        end = self.door_inputs_start + self.locks
        if self.item_inputs_start is not None:
            end = max(end, self.item_inputs_start + self.locks)
        return end

    def coil_span(self) -> int:
        return self.lock_coils_start + self.locks


@dataclass(slots=True)
class PulseRecord:
    """One coil-on period seen by the emulated module (``off_at`` None while still on)."""

    unit: int
    lock: int
    on_at: float
    off_at: float | None = None


def _round16(n: int) -> int:
    return max(16, (n + 15) // 16 * 16)


def _get_bit(registers: list[int], start_reg: int, address: int) -> bool:
    return bool(registers[address // 16 - start_reg] >> (address % 16) & 1)


def _set_bit(registers: list[int], start_reg: int, address: int, value: bool) -> None:
    i = address // 16 - start_reg
    mask = 1 << (address % 16)
    registers[i] = registers[i] | mask if value else registers[i] & ~mask


class ModbusDeviceServer:
    """pymodbus's RTU-over-TCP server hosting every module of one bus, wired to the model.

    Runs its own asyncio event loop on a thread; ``start`` returns once it listens on
    ``127.0.0.1:port`` (a free port), ``stop`` shuts it down and joins the thread.
    """

    def __init__(self, model: CabinetModel, modules: Sequence[ModbusModule]) -> None:
        units = [m.unit for m in modules]
        if len(set(units)) != len(units) or not all(1 <= u <= 247 for u in units):
            raise ValueError(f"module units must be distinct and 1..247, got {units}")
        self.model = model
        self.modules = {m.unit: m for m in modules}
        self.port = 0
        self.pulses: list[PulseRecord] = []
        self.rising_edges: Counter[tuple[int, int]] = Counter()
        self.requests: Counter[int] = Counter()  # per function code, as pymodbus saw them
        self._on: dict[tuple[int, int], PulseRecord] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ pymodbus side

    def _device(self, module: ModbusModule) -> SimDevice:
        coils = [SimData(0, values=[False] * _round16(module.coil_span()),
                         datatype=DataType.BITS)]
        inputs = [SimData(0, values=[False] * _round16(module.input_span()),
                          datatype=DataType.BITS)]
        # The modules have no registers; pymodbus wants a block anyway.
        regs = [SimData(0, values=[0], datatype=DataType.REGISTERS)]

        async def action(function: int, start_reg: int, address: int, _count: int,
                         registers: list[int], values: list[int] | list[bool] | None
                         ) -> None:
            self.requests[function] += 1
            if function == rtu.FC_READ_DISCRETE_INPUTS:
                self._refresh_inputs(module, start_reg, registers)
            elif function in (rtu.FC_WRITE_SINGLE_COIL, rtu.FC_WRITE_MULTIPLE_COILS) and values:
                for i, value in enumerate(values):
                    self._coil(module, start_reg, registers, address + i, bool(value))

        return SimDevice(id=module.unit, simdata=(coils, inputs, list(regs), list(regs)),
                         action=action)

    def _refresh_inputs(self, module: ModbusModule, start_reg: int,
                        registers: list[int]) -> None:
        model = self.model
        for lock in range(1, module.locks + 1):
            sensed_open = bool(model.door_flags(module.model_board, lock) & DoorFlags.DOOR_OPEN)
            _set_bit(registers, start_reg, module.door_inputs_start + lock - 1,
                     sensed_open == module.door_open_when)
            if module.item_inputs_start is not None:
                door = model.board_door(module.model_board, lock)
                _set_bit(registers, start_reg, module.item_inputs_start + lock - 1,
                         bool(door is not None and door.items))

    def _coil(self, module: ModbusModule, start_reg: int, registers: list[int],
              address: int, value: bool) -> None:
        lock = address - module.lock_coils_start + 1
        if not 1 <= lock <= module.locks:
            return
        was = _get_bit(registers, start_reg, address)
        key = (module.unit, lock)
        now = self.model.clock()
        if value and not was:  # rising edge: the coil is energised
            self.rising_edges[key] += 1
            record = PulseRecord(unit=module.unit, lock=lock, on_at=time.monotonic())
            self.pulses.append(record)
            self._on[key] = record
            self.model.pulse(module.model_board, lock, NOMINAL_PULSE_S)
        elif was and not value:  # falling edge: the release ends now
            ended = self._on.pop(key, None)
            if ended is not None:
                ended.off_at = time.monotonic()
            door = self.model.board_door(module.model_board, lock)
            if door is not None:
                door.released_until = min(door.released_until, now)

    def coil_on(self, unit: int, lock: int) -> bool:
        """Is this lock's coil energised right now (as far as edges went)?"""
        return (unit, lock) in self._on

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start the event-loop thread and the server; returns once it listens."""
        if self._thread is not None:
            return
        ready = threading.Event()
        failure: list[BaseException] = []
        devices = [self._device(m) for m in self.modules.values()]

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def begin() -> None:
                server = ModbusTcpServer(devices, framer=FramerType.RTU,
                                         address=("127.0.0.1", 0))
                await server.serve_forever(background=True)
                self._server = server
                self.port = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

            try:
                loop.run_until_complete(begin())
            except BaseException as exc:  # noqa: BLE001 - reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="sim-modbus-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            self._thread.join(5)
            self._thread = None
            raise RuntimeError(f"pymodbus server did not start: {failure[0]}") from failure[0]

    def stop(self) -> None:
        """Shut the server down and join its thread."""
        loop, thread, server = self._loop, self._thread, self._server
        if thread is None or loop is None:
            return
        if server is not None and not loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(5)
            except Exception as exc:  # noqa: BLE001 - stopping anyway
                _log.debug("pymodbus shutdown: %s", exc)
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        self._thread = self._loop = self._server = None


@dataclass(slots=True)
class BridgeStats:
    forwarded: int = 0
    answered: int = 0
    not_answered: int = 0
    ignored_units: int = 0
    frame_errors: Counter[str] = field(default_factory=Counter)


class ModbusBridge:
    """The ``BusDevice`` that carries frames between ``BusServer`` and pymodbus's server.

    Args:
        device: the pymodbus server (started before the first frame).
        processing_s: the module's own time before its reply starts (the board time
            ``BusServer`` waits after the request's end).
    """

    def __init__(self, device: ModbusDeviceServer, *,
                 processing_s: float = FIRMWARE_PROCESSING_S) -> None:
        self.device = device
        self.processing_s = processing_s
        self.stats = BridgeStats()
        self._sock: socket.socket | None = None

    def handle(self, item: Any) -> BoardResult:
        """One decoded request (or decoding error) off the bus; called under the model lock."""
        if isinstance(item, FrameError):
            # Not forwarded, including well-framed unknown functions and bad payloads:
            # pymodbus's RTU framer cannot size an unknown function and stays silent.
            self.stats.frame_errors[type(item).__name__] += 1
            return _SILENT
        unit = getattr(item, "unit", None)
        if unit not in self.device.modules:
            self.stats.ignored_units += 1
            return _SILENT
        return self._forward(rtu.encode_request(item))

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection(("127.0.0.1", self.device.port), timeout=2)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
        return self._sock

    def _drop_connection(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _forward(self, frame: bytes) -> BoardResult:
        self.stats.forwarded += 1
        decoder = rtu.ReplyDecoder()
        try:
            sock = self._connect()
            sock.sendall(frame)
            deadline = time.monotonic() + FORWARD_TIMEOUT_S
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("pymodbus did not answer")
                sock.settimeout(left)
                data = sock.recv(512)
                if not data:
                    raise ConnectionError("pymodbus closed the connection")
                decoder.feed(data)
                event = decoder.next_event()
                if event is not NEED_DATA:
                    break
        except (OSError, FrameError) as exc:
            _log.warning("modbus bridge: %s", exc)
            self.stats.not_answered += 1
            self._drop_connection()
            return _SILENT
        self.stats.answered += 1
        return BoardResult(reply=event, delay_s=self.processing_s)  # type: ignore[arg-type]

    def close(self) -> None:
        self._drop_connection()


class ModbusBus:
    """One RS-485 bus of Modbus I/O modules, served like any other simulated bus.

    Args:
        bus: name and baud rate (``kind`` is informational).
        model: the cabinet's physical model.
        model_lock: the simulator's model lock (a fresh one if None).
        modules: the modules on this bus.
        faults, stats: this bus's link faults and emulated-time accounting.
        pty: also serve on a pseudo-terminal (``pty_path``).
    """

    def __init__(self, bus: BusConfig, model: CabinetModel, modules: Sequence[ModbusModule],
                 *, model_lock: threading.RLock | None = None,
                 faults: LinkFaults | None = None, stats: LinkStats | None = None,
                 pty: bool = False) -> None:
        self.device = ModbusDeviceServer(model, modules)
        self.bridge = ModbusBridge(self.device)
        self.model_lock = model_lock if model_lock is not None else threading.RLock()
        self.faults = faults if faults is not None else LinkFaults()
        self.stats = stats if stats is not None else LinkStats()
        self.server = BusServer(bus, [self.bridge], self.model_lock, self.faults, self.stats,
                                pty=pty, wire=ModbusRtuDeviceWire())

    @property
    def url(self) -> str:
        """``socket://127.0.0.1:PORT`` of the paced, faulted line (valid after start)."""
        return self.server.url

    @property
    def pty_path(self) -> str | None:
        return self.server.pty_path

    def start(self) -> ModbusBus:
        self.device.start()
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop the line, the bridge's connection and pymodbus's server (joins threads)."""
        self.server.stop()
        with self.model_lock:
            self.bridge.close()
        self.device.stop()

    def unplug(self) -> None:
        self.server.unplug()

    def replug(self) -> None:
        self.server.replug()

    def __enter__(self) -> ModbusBus:  # noqa: PYI034 - start() returns this bus
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
