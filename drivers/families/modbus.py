"""Generic Modbus RTU digital I/O modules as lock boards, through pymodbus's client.

Why Modbus: cabinet builders often wire locks to an off-the-shelf RS-485 relay/input module
(8–32 channels, Modbus RTU) instead of a dedicated lock board. Such a module knows nothing of
locks or doors: it has **coils** (relay outputs; one drives a lock's coil) and **discrete
inputs** (one reads a door contact). Which coil and input belong to which lock is wiring, so it
is configuration — a register map per module (:class:`ModbusIoMap`).

Theory of operation
-------------------

* **One link per bus** (:class:`ModbusLink`) owns pymodbus's synchronous client and
  serialises every request on the bus. ``socket://host:port`` URLs use
  ``ModbusTcpClient(framer=FramerType.RTU)`` (RTU bytes over TCP, as the simulator and
  serial-device servers carry them); device paths use ``ModbusSerialClient``. pymodbus's own
  re-sends are switched off (``retries=0``): the board decides per operation what may be asked
  again. The link opens lazily, reopens after a back-off when the port or connection broke
  (counting reconnects), drops stale input before each request, and turns every pymodbus
  exception into a ``drivers.errors`` type — none leaks.

* **Door states are polled.** These modules keep no event buffer. ``states()`` reads the door
  inputs (FC 2) and applies the input polarity (``door_open_when``); every snapshot, whoever
  asked for it, feeds a ``drivers.polling.PolledEvents``, which turns changes into
  DOOR_OPENED / DOOR_CLOSED events and infers what polls cannot see (a door closed at two polls
  with an unlock between them; an opening with no unlock = forced).

* **An unlock is host-timed**: write the lock's coil ON (FC 5), hold it for ``pulse_ms``
  (measured from the ON write), write it OFF. The host times the pulse because the Modbus spec
  has no pulse function; some modules have a vendor "flash on" command, but each encodes it
  differently, so it is not used (one map key could add it per vendor later).

Unlock safety (the reference README's "never re-send an unlock")
----------------------------------------------------------------

ON then OFF is two transactions, and RTU frames carry no operation identity:

1. The ON write is sent **once**. A lost reply cannot be told from a lost request, and a
   second ON after an OFF would be a second pulse.
2. The OFF write **always** follows — after a confirmed ON, and after an unconfirmed one too
   (the ON may have arrived) — and is **retried** until confirmed: switching a coil off is
   idempotent. The coil is held for the full pulse either way, so a pulse that did happen is a
   proper one.
3. An unconfirmed ON raises ``DeviceTimeout`` saying the door may have opened. The kiosk checks
   the door state / re-inventories; ``PolledEvents`` is told of the possible pulse so a door
   that opened and shut between polls still yields (inferred) events.
4. If the OFF cannot be confirmed (bus gone), the lock is remembered as *coil possibly on*;
   every later call to this board first re-sends the OFF, and a new unlock is refused until the
   OFF is confirmed. ``diagnostics()`` shows it.
5. ``unlock(op_id=...)`` with the op_id of an earlier call never pulses again: a confirmed one
   returns its result, an unconfirmed one raises ``DeviceTimeout`` again (the driver cannot
   know more than it did). Only ``op_id=None`` asks for a new pulse.

What this family cannot tell (see docs/families.md): no events while the host is not polling,
no forced-door detection except by inference, no jam detection, no unlock identity, no board
counters or identity, no RFID.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import (
    ReadCoilsResponse,
    ReadDiscreteInputsResponse,
    WriteSingleCoilResponse,
)

from firmware_protocol.const import PartKind, PartStatus

from ..base import Availability, DeviceStatus
from ..board import (
    AntennaHealth,
    BoardCounters,
    BoardInfo,
    DoorState,
    PartCheck,
    UnlockResult,
)
from ..errors import (
    ConfigError,
    DeviceRejected,
    DeviceTimeout,
    DeviceUnavailable,
    DriverError,
    FrameError,
    LockJammed,
    NotSupported,
)
from ..polling import PolledEvents, PolledEventsMixin
from ..transport import LinkCounters, quality_status

__all__ = ["DEFAULT_BAUDRATE", "DEFAULT_TIMEOUT_S", "ModbusIoBoard", "ModbusIoMap", "ModbusLink"]

_log = logging.getLogger(__name__)

#: The factory setting of most of these modules.
DEFAULT_BAUDRATE = 9600
#: End of request → complete reply. A module answers within a few ms; at 9600 baud the
#: longest exchange used here (FC 2 of 32 inputs) takes ~20 ms on the wire.
DEFAULT_TIMEOUT_S = 0.1
DEFAULT_PULSE_MS = 400
#: pymodbus closes a TCP connection after this many unanswered requests in a row; one dead
#: module must not make the whole bus reconnect, so the link sets it out of reach.
_NO_DISCONNECT = 1 << 30


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusIoMap:
    """Which coils and inputs of one module are which lock's (protocol addresses, 0-based).

    Attributes:
        unit: the module's Modbus device id, 1..247.
        locks: locks wired; lock n uses coil ``lock_coils_start + n - 1`` and door input
            ``door_inputs_start + n - 1``.
        door_open_when: the input value that means "door open" (True for a contact that
            closes when the door opens; False for the usual "closed when shut" contact).
        item_inputs_start: first "item present" input (infrared beam), if wired.
        pulse_ms: default coil pulse.
    """

    unit: int
    locks: int
    lock_coils_start: int = 0
    door_inputs_start: int = 0
    door_open_when: bool = True
    item_inputs_start: int | None = None
    pulse_ms: int = DEFAULT_PULSE_MS

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.unit, int) or not 1 <= self.unit <= 247:
            problems.append(f"unit must be 1..247, got {self.unit!r}")
        if not isinstance(self.locks, int) or not 1 <= self.locks <= 256:
            problems.append(f"locks must be 1..256, got {self.locks!r}")
        for key in ("lock_coils_start", "door_inputs_start", "item_inputs_start"):
            value = getattr(self, key)
            if value is None and key == "item_inputs_start":
                continue
            if not isinstance(value, int) or not 0 <= value <= 0xFFFF - 256:
                problems.append(f"{key} must be an address 0..65279, got {value!r}")
        if not isinstance(self.door_open_when, bool):
            problems.append(f"door_open_when must be true or false, got {self.door_open_when!r}")
        if not isinstance(self.pulse_ms, int) or not 50 <= self.pulse_ms <= 5000:
            problems.append(f"pulse_ms must be 50..5000, got {self.pulse_ms!r}")
        if problems:
            raise ConfigError("modbus register map: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "modbus board") -> ModbusIoMap:
        """Build a map from a config table (TOML); ``ConfigError`` names unknown keys and bad
        values."""
        known = {"unit", "locks", "lock_coils_start", "door_inputs_start", "door_open_when",
                 "item_inputs_start", "pulse_ms"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown keys {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(known))})")
        for key in ("unit", "locks"):
            if key not in data:
                raise ConfigError(f"{where}: {key} is required")
        try:
            return cls(**dict(data))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


# ---------------------------------------------------------------- the link


def _client_for(url: str, *, baudrate: int, bytesize: int, parity: str, stopbits: int,
                timeout_s: float, trace: Callable[[bool, bytes], bytes]
                ) -> ModbusTcpClient | ModbusSerialClient:
    if url.startswith("socket://"):
        parts = urlsplit(url)
        if not parts.hostname or parts.port is None:
            raise ConfigError(f"modbus link: {url!r} is not socket://host:port")
        client: ModbusTcpClient | ModbusSerialClient = ModbusTcpClient(
            parts.hostname, port=parts.port, framer=FramerType.RTU, timeout=timeout_s,
            retries=0, trace_packet=trace)
    else:
        client = ModbusSerialClient(url, framer=FramerType.RTU, baudrate=baudrate,
                                    bytesize=bytesize, parity=parity, stopbits=stopbits,
                                    timeout=timeout_s, retries=0, trace_packet=trace)
    client.set_max_no_responses(_NO_DISCONNECT)
    return client


class ModbusLink:
    """The one owner of a Modbus RTU bus: pymodbus's client plus lendbox's link rules.

    Args:
        url: ``/dev/ttyUSB0`` (serial, ``ModbusSerialClient``) or ``socket://host:port``
            (RTU over TCP, ``ModbusTcpClient(framer=RTU)``).
        baudrate, bytesize, parity, stopbits: line settings (serial only).
        timeout_s: end of request → complete reply.
        name: the bus's name (messages, diagnostics).
        backoff_s: (first, max) wait before reopening a broken port; doubles each time.
        clock: monotonic seconds.

    The constructor does no I/O; the port opens on the first request.
    """

    def __init__(self, url: str, *, baudrate: int = DEFAULT_BAUDRATE, bytesize: int = 8,
                 parity: str = "N", stopbits: int = 1, timeout_s: float = DEFAULT_TIMEOUT_S,
                 name: str = "", backoff_s: tuple[float, float] = (0.5, 10.0),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.name = name or url
        self._line: dict[str, Any] = {"baudrate": baudrate, "bytesize": bytesize,
                                      "parity": parity, "stopbits": stopbits,
                                      "timeout_s": timeout_s}
        self._clock = clock
        self._backoff_first, self._backoff_max = backoff_s
        self._backoff = self._backoff_first
        self._lock = threading.RLock()
        self._client: ModbusTcpClient | ModbusSerialClient | None = None
        self._opened_once = False
        self._down_reason = ""
        self._next_open_at = 0.0
        self._sent = False
        self._received = False
        self.counters = LinkCounters()
        self._device_counters: dict[int, LinkCounters] = {}
        self.request_was_sent = False  # did the last request (possibly) reach the wire?

    # ------------------------------------------------------------ public

    def device_counters(self, unit: int) -> LinkCounters:
        with self._lock:
            return self._device_counters.setdefault(unit, LinkCounters())

    @property
    def is_open(self) -> bool:
        return self._client is not None and self._client.connected

    def status(self) -> DeviceStatus:
        """Unavailable while the port is down; degraded when many requests needed a retry."""
        if self._down_reason:
            return DeviceStatus(availability=Availability.UNAVAILABLE, reason=self._down_reason)
        return quality_status(self.counters)

    def diagnostics(self) -> dict[str, object]:
        return {"bus": self.name, "url": self.url, "baudrate": self.baudrate,
                "open": self.is_open, "client": "pymodbus",
                **self.status().as_dict(), "counters": self.counters.as_dict()}

    def execute(self, unit: int, what: str,
                call: Callable[[ModbusTcpClient | ModbusSerialClient], ModbusPDU],
                *, retry: bool = False) -> ModbusPDU:
        """One request, one attempt: ``call(client)`` runs a pymodbus client method.

        ``retry`` only marks the attempt as a re-ask in the counters.

        Raises:
            DeviceUnavailable: the port cannot be opened or broke (reopened after a back-off).
            DeviceTimeout: nothing came back within ``timeout_s``.
            FrameError: bytes came back but pymodbus found no valid reply in them.
            DeviceRejected: the module answered with a Modbus exception (``code``).
        """
        with self._lock:
            self.request_was_sent = False
            self._ensure_open()
            client = self._client
            assert client is not None
            self._drain(client)
            dev = self.device_counters(unit)
            for c in (self.counters, dev):
                c.requests += 1
                if retry:
                    c.retries += 1
            self._sent = self._received = False
            started = self._clock()
            try:
                response = call(client)
            except ConnectionException as exc:
                self.request_was_sent = self._sent
                raise self._port_failed(f"connection lost: {exc}") from exc
            except ModbusIOException as exc:
                self.request_was_sent = self._sent
                return self._no_reply(unit, what, dev, exc)
            except ModbusException as exc:
                self.request_was_sent = self._sent
                self._failed(dev, "attempts_unreadable", f"{what}: {exc}")
                raise FrameError(f"unit {unit} on {self.name}: {what}: {exc}") from exc
            except OSError as exc:
                self.request_was_sent = self._sent
                raise self._port_failed(f"port error: {exc}") from exc
            except Exception as exc:
                self.request_was_sent = self._sent
                self._failed(dev, "attempts_unreadable", f"{what}: {exc!r}")
                raise FrameError(f"unit {unit} on {self.name}: {what}: pymodbus failed: "
                                 f"{exc!r}") from exc
            self.request_was_sent = True
            for c in (self.counters, dev):
                c.frames_sent += 1
                c.frames_received += 1
                c.recent.append(retry)
                c.add_latency(self._clock() - started)
            if isinstance(response, ExceptionResponse) or response.isError():
                code = int(getattr(response, "exception_code", 0) or 0)
                raise DeviceRejected(f"unit {unit} on {self.name}: {what} refused with Modbus "
                                     f"exception {code}", code=code)
            return response

    def close(self) -> None:
        """Close the port; a later request reopens it."""
        with self._lock:
            self._close()
            self._down_reason = ""

    # ------------------------------------------------------------ internals

    def _trace(self, sending: bool, data: bytes) -> bytes:
        """pymodbus's packet hook: tells whether a request went out / bytes came back."""
        if sending:
            self._sent = True
        elif data:
            self._received = True
        return data

    def _ensure_open(self) -> None:
        if self._client is not None and self._client.connected:
            return
        now = self._clock()
        if self._down_reason and now < self._next_open_at:
            raise DeviceUnavailable(f"bus {self.name}: {self._down_reason} (retrying in "
                                    f"{self._next_open_at - now:.1f} s)")
        if self._client is None:
            self._client = _client_for(self.url, trace=self._trace, **self._line)
        try:
            ok = self._client.connect()
        except Exception as exc:  # noqa: BLE001 - pymodbus/pyserial may raise anything here
            ok = False
            _log.debug("bus %s: connect raised %r", self.name, exc)
        if not ok:
            raise self._port_failed(f"cannot open {self.url}")
        if self._opened_once:
            self.counters.reconnects += 1
            _log.info("bus %s: reconnected to %s", self.name, self.url)
        self._opened_once = True
        self._down_reason = ""
        self._backoff = self._backoff_first

    def _drain(self, client: ModbusTcpClient | ModbusSerialClient) -> None:
        """Forget bytes left from an earlier exchange (a late reply must not answer the next
        request: RTU has no transaction id)."""
        sock = client.socket
        if sock is None:
            return
        try:
            if isinstance(client, ModbusTcpClient):
                sock.setblocking(False)  # type: ignore[union-attr]
                while True:
                    try:
                        data = sock.recv(4096)  # type: ignore[union-attr]
                    except (BlockingIOError, InterruptedError):
                        break
                    if not data:
                        raise self._port_failed("connection closed by the other end")
                    self.counters.garbage_bytes += len(data)
            elif sock.in_waiting:  # type: ignore[union-attr]
                self.counters.garbage_bytes += sock.in_waiting  # type: ignore[union-attr]
                sock.reset_input_buffer()  # type: ignore[union-attr]
        except OSError as exc:
            raise self._port_failed(f"port error: {exc}") from exc

    def _no_reply(self, unit: int, what: str, dev: LinkCounters,
                  exc: ModbusIOException) -> ModbusPDU:
        if self._received:
            self._failed(dev, "attempts_unreadable", f"{what}: reply unreadable")
            raise FrameError(f"unit {unit} on {self.name}: {what}: reply unreadable "
                             f"(bad CRC or garbage)") from exc
        msg = f"{what}: no reply within {self.timeout_s * 1000:.0f} ms"
        self._failed(dev, "attempts_silent", msg)
        raise DeviceTimeout(f"unit {unit} on {self.name}: {msg}") from exc

    def _failed(self, dev: LinkCounters, kind: str, msg: str) -> None:
        for c in (self.counters, dev):
            if self._sent:
                c.frames_sent += 1
            setattr(c, kind, getattr(c, kind) + 1)
            if kind == "attempts_silent":
                c.timeouts += 1
            else:
                c.unreadable += 1
            c.recent.append(True)
            c.last_error = msg

    def _close(self) -> None:
        client = self._client
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # noqa: BLE001 - closing a broken port may fail any way
                _log.debug("bus %s: close failed: %r", self.name, exc)

    def _port_failed(self, reason: str) -> DeviceUnavailable:
        self._close()
        self.counters.port_errors += 1
        self.counters.last_error = reason
        self._down_reason = reason
        self._next_open_at = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, self._backoff_max)
        _log.warning("bus %s: %s", self.name, reason)
        return DeviceUnavailable(f"bus {self.name}: {reason}")


# ---------------------------------------------------------------- the board


class ModbusIoBoard(PolledEventsMixin):
    """A Modbus digital I/O module used as a lock board (``drivers.board.ControllerBoard``).

    Args:
        link: the bus (shared by every module on it).
        io_map: this module's register map.
        read_retries: extra asks of a read after a timeout or an unreadable reply.
        off_retries: extra asks of the OFF write after an unlock (idempotent, so it may be
            re-sent; the ON write never is).
        sprung_doors: the doors pop open when released: a confirmed pulse after which the door
            still reads closed raises ``LockJammed`` (inferred — the module cannot tell a stuck
            bolt from a door that did not spring).
        settle_s, forced_window_s: ``PolledEvents`` settings.
        clock, sleep: monotonic seconds and the pulse wait (injectable for tests).

    The constructor does no I/O.
    """

    family = "modbus"

    def __init__(self, link: ModbusLink, io_map: ModbusIoMap, *, read_retries: int = 3,
                 off_retries: int = 10, sprung_doors: bool = False, settle_s: float = 1.0,
                 forced_window_s: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.link = link
        self.map = io_map
        self.unit = io_map.unit
        self.address = io_map.unit
        self.locks = io_map.locks
        self.pulse_ms = io_map.pulse_ms
        self.name = f"modbus unit {io_map.unit} on {link.name}"
        self.read_retries = read_retries
        self.off_retries = off_retries
        self.sprung_doors = sprung_doors
        self._clock = clock
        self._sleep = sleep
        self._started = clock()
        self._op_lock = threading.Lock()
        self._lock = threading.Lock()
        self._op_ids = itertools.count(1)
        self._ops: dict[int, UnlockResult | None] = {}  # None: sent, not confirmed
        self._pulsing: set[int] = set()  # coil switched on by an unlock in progress
        self._pending_off: set[int] = set()  # locks whose OFF failed: re-sent on every call
        self._unlocks = [0] * io_map.locks  # ON writes sent per lock (confirmed or not)
        self.unconfirmed_unlocks = 0
        self._jammed: set[int] = set()
        self._failure = ""
        self._info: BoardInfo | None = None
        self._events = PolledEvents(self._read_states, clock=clock, settle_s=settle_s,
                                    forced_window_s=forced_window_s)

    # ------------------------------------------------------------ plumbing

    def _request(self, what: str, call: Callable[[Any], ModbusPDU], expect: type,
                 retries: int) -> Any:
        """A request that may be asked again (reads, the OFF write)."""
        attempt = 0
        while True:
            try:
                reply = self.link.execute(self.unit, what, call, retry=attempt > 0)
            except DeviceUnavailable as exc:
                self._failure = str(exc)
                raise
            except (DeviceTimeout, FrameError) as exc:
                self._failure = str(exc) if isinstance(exc, DeviceTimeout) else ""
                if attempt < retries:
                    attempt += 1
                    continue
                raise
            if not isinstance(reply, expect):
                # a stray frame (e.g. a late reply to something else): ask again
                if attempt < retries:
                    attempt += 1
                    continue
                raise FrameError(f"{self.name}: {what} answered with {type(reply).__name__}")
            self._failure = ""
            return reply

    def _read_bits(self, function: int, address: int, count: int) -> list[bool]:
        unit = self.unit
        if function == 1:
            what = f"read coils {address}..{address + count - 1}"
            reply = self._request(
                what, lambda c: c.read_coils(address, count=count, device_id=unit),
                ReadCoilsResponse, self.read_retries)
        else:
            what = f"read inputs {address}..{address + count - 1}"
            reply = self._request(
                what, lambda c: c.read_discrete_inputs(address, count=count, device_id=unit),
                ReadDiscreteInputsResponse, self.read_retries)
        bits = list(reply.bits)
        if len(bits) < count:
            raise FrameError(f"{self.name}: {what}: {len(bits)} bits for {count}")
        return bits[:count]

    def _write_coil(self, lock: int, on: bool, retries: int) -> None:
        coil = self.map.lock_coils_start + lock - 1
        unit = self.unit
        what = f"coil {coil} (lock {lock}) {'ON' if on else 'OFF'}"
        reply = self._request(what, lambda c: c.write_coil(coil, on, device_id=unit),
                              WriteSingleCoilResponse, retries)
        if reply.address != coil or not reply.bits or bool(reply.bits[0]) != on:
            raise FrameError(f"{self.name}: {what}: the echo says coil {reply.address} = "
                             f"{reply.bits[:1]}")

    def _flush_pending_off(self) -> None:
        """Re-send the OFF of every lock whose coil may still be on (see module docstring)."""
        for lock in sorted(self._pending_off - self._pulsing):
            self._write_coil(lock, False, self.off_retries)
            self._pending_off.discard(lock)
            _log.info("%s: coil of lock %d confirmed off", self.name, lock)

    def _check_lock(self, lock: int) -> None:
        if not isinstance(lock, int) or not 1 <= lock <= self.locks:
            raise DeviceRejected(f"{self.name}: no lock {lock!r} (1..{self.locks})")

    def _read_states(self) -> tuple[DoorState, ...]:
        """One snapshot of every door (what ``PolledEvents`` reads)."""
        if self._pending_off:
            self._flush_pending_off()
        bits = self._read_bits(2, self.map.door_inputs_start, self.locks)
        out = []
        for i, bit in enumerate(bits):
            lock = i + 1
            is_open = bit == self.map.door_open_when
            if is_open:
                self._jammed.discard(lock)
            out.append(DoorState(lock=lock, open=is_open,
                                 lock_released=(lock in self._pulsing
                                                or lock in self._pending_off),
                                 jammed=lock in self._jammed))
        return tuple(out)

    # ------------------------------------------------------------ ControllerBoard

    def identify(self) -> BoardInfo:
        """Who the module is, as far as Modbus can tell: a read of its door inputs proves it
        answers; the rest comes from the register map (firmware and serial are unknown)."""
        self._read_bits(2, self.map.door_inputs_start, self.locks)
        caps = {"polled_events", "self_test"}
        if self.map.item_inputs_start is not None:
            caps.add("item_inputs")
        self._info = BoardInfo(
            family=self.family, address=self.unit, serial="", firmware="unknown",
            protocol="modbus-rtu", locks=self.locks,
            sensors=self.locks * (2 if self.map.item_inputs_start is not None else 1),
            antennas=0, capabilities=frozenset(caps))
        return self._info

    def unlock(self, lock: int, *, pulse_ms: int | None = None,
               op_id: int | None = None) -> UnlockResult:
        """Pulse ``lock`` once: coil ON, hold ``pulse_ms``, coil OFF (module docstring).

        Args:
            lock: 1-based lock number.
            pulse_ms: coil pulse; default the map's ``pulse_ms``.
            op_id: None for a new pulse; the op_id of an earlier call returns that call's
                result (confirmed) or raises ``DeviceTimeout`` again (unconfirmed) — never a
                second pulse.

        Raises:
            DeviceTimeout: the ON write was not confirmed — **the door may have opened** (the
                OFF was still written); or the OFF could not be confirmed (the coil may still
                be energised; the driver keeps re-sending the OFF).
            DeviceUnavailable: the bus is down and nothing was sent, or an earlier OFF is
                still unconfirmed (no new pulse on top of a coil that may be on).
            DeviceRejected: no such lock, or the module refused the write (nothing pulsed).
            LockJammed: ``sprung_doors`` and the door stayed shut after a confirmed pulse.
        """
        self._check_lock(lock)
        pulse_s = (self.pulse_ms if pulse_ms is None else pulse_ms) / 1000
        with self._op_lock:
            if op_id is not None and op_id in self._ops:
                known = self._ops[op_id]
                if known is not None:
                    return known
                raise DeviceTimeout(
                    f"{self.name}: unlock op_id {op_id} of lock {lock} was never confirmed; "
                    f"Modbus has no unlock identity, so it is not sent again: the door may "
                    f"have opened — check the door state")
            op = op_id if op_id is not None else next(self._op_ids)
            self._flush_pending_off()  # raises: no new pulse while a coil may be on
            coil = self.map.lock_coils_start + lock - 1
            unit = self.unit
            started = self._clock()
            confirmed = False
            failure: DriverError | None = None
            try:
                reply = self.link.execute(
                    unit, f"unlock lock {lock} (coil {coil} ON)",
                    lambda c: c.write_coil(coil, True, device_id=unit))
                confirmed = (isinstance(reply, WriteSingleCoilResponse)
                             and reply.address == coil and bool(reply.bits[:1] == [True]))
                if not confirmed:
                    failure = FrameError(f"ON write answered with {reply!r}")
            except DeviceRejected:
                raise  # an exception reply: the module did not execute the write
            except DeviceUnavailable as exc:
                self._failure = str(exc)
                if not self.link.request_was_sent:
                    raise  # nothing reached the module: the door did not open
                failure = exc
            except (DeviceTimeout, FrameError) as exc:
                failure = exc
            # From here the coil may be on.
            self._pulsing.add(lock)
            with self._lock:
                self._unlocks[lock - 1] += 1
            self._events.note_unlock(lock)
            wait = started + pulse_s - self._clock()
            if wait > 0:
                self._sleep(wait)
            off_error: DriverError | None = None
            try:
                self._write_coil(lock, False, self.off_retries)
            except DriverError as exc:
                off_error = exc
                self._pending_off.add(lock)
                _log.error("%s: coil of lock %d not confirmed off: %s (re-sent on every "
                           "later call)", self.name, lock, exc)
            finally:
                self._pulsing.discard(lock)
            if not confirmed:
                self._ops[op] = None
                self.unconfirmed_unlocks += 1
                off = ("switched off again" if off_error is None else
                       f"NOT confirmed off ({off_error}); the driver keeps re-sending the OFF")
                raise DeviceTimeout(
                    f"{self.name}: unlock of lock {lock} was not confirmed (op_id {op}: "
                    f"{failure}): the door may have opened; the coil was {off}. Modbus has no "
                    f"unlock identity, so the ON is never re-sent — check the door state"
                ) from failure
            if off_error is not None:
                self._ops[op] = None
                raise DeviceTimeout(
                    f"{self.name}: lock {lock} was pulsed (op_id {op}) but its coil is not "
                    f"confirmed off ({off_error}): the lock may stay released; the driver "
                    f"re-sends the OFF on every later call") from off_error
            try:
                door_open = next(s.open for s in self.states() if s.lock == lock)
            except DriverError as exc:
                _log.warning("%s: door state after unlock unreadable: %s", self.name, exc)
                door_open = False
            result = UnlockResult(lock=lock, op_id=op, door_open=door_open)
            self._ops[op] = result
            if len(self._ops) > 256:
                self._ops.pop(next(iter(self._ops)))
            if self.sprung_doors and not door_open:
                self._jammed.add(lock)
                raise LockJammed(f"{self.name}: lock {lock} pulsed but its sprung door stayed "
                                 f"closed (inferred: stuck bolt, broken coil wiring or a door "
                                 f"that did not spring)", lock=lock)
            return result

    def states(self) -> tuple[DoorState, ...]:
        """Every lock's state now, lock 1 first (the snapshot also feeds the events).

        Only ``open`` is read from the module; ``lock_released`` means the driver's coil may
        be on (an OFF is pending); ``jammed`` is inferred (``sprung_doors``).
        """
        snapshot = self._read_states()
        self._events.observe(snapshot)
        return snapshot

    def items_present(self) -> tuple[bool, ...]:
        """The "item present" inputs, lock 1 first (``NotSupported`` if none are mapped)."""
        if self.map.item_inputs_start is None:
            raise NotSupported(f"{self.name}: no item_inputs_start in the register map")
        return tuple(self._read_bits(2, self.map.item_inputs_start, self.locks))

    @property
    def polls(self) -> int:
        """Snapshots taken so far (every successful state read)."""
        return self._events.polls

    def counters(self) -> BoardCounters:
        """Counters kept by the driver (the modules keep none): ``frames_ok`` replies from this
        unit, ``crc_errors`` attempts whose reply was unreadable, ``retransmissions`` re-asks
        of reads and OFF writes, ``unlocks`` ON writes sent per lock (confirmed or not);
        ``power_cycles`` is unknown (0); ``uptime_s`` is the driver's."""
        dev = self.link.device_counters(self.unit)
        with self._lock:
            unlocks = tuple(self._unlocks)
        return BoardCounters(uptime_s=int(self._clock() - self._started),
                             frames_ok=dev.frames_received, crc_errors=dev.attempts_unreadable,
                             retransmissions=dev.retries, power_cycles=0, unlocks=unlocks)

    def self_test(self) -> tuple[PartCheck, ...]:
        """Read-only checks: the module answers (BOARD), no lock coil is on that the driver did
        not switch on (LOCK FAULT: another master, a stuck relay, or an OFF still pending),
        inferred jams (LOCK FAULT); door sensors cannot be tested (OK when readable)."""
        try:
            coils = self._read_bits(1, self.map.lock_coils_start, self.locks)
            states = self.states()
        except DriverError:
            return (PartCheck(part=PartKind.BOARD, index=0, status=PartStatus.NO_RESPONSE),)
        out = [PartCheck(part=PartKind.BOARD, index=0, status=PartStatus.OK)]
        for s in states:
            bad = coils[s.lock - 1] or s.jammed
            out.append(PartCheck(part=PartKind.LOCK, index=s.lock,
                                 status=PartStatus.FAULT if bad else PartStatus.OK))
        out.extend(PartCheck(part=PartKind.DOOR_SENSOR, index=s.lock, status=PartStatus.OK)
                   for s in states)
        return tuple(out)

    def antenna_diag(self, antenna: int) -> AntennaHealth:
        raise NotSupported(f"{self.name}: Modbus I/O modules have no RFID antennas")

    def status(self) -> DeviceStatus:
        """Unavailable if the bus is down or the module stopped answering; degraded if many
        recent requests needed a retry, or a coil may still be on; ok otherwise."""
        bus = self.link.status()
        if bus.availability is Availability.UNAVAILABLE:
            return bus
        if self._failure:
            return DeviceStatus(availability=Availability.UNAVAILABLE,
                                reason=f"not answering: {self._failure}")
        if self._pending_off:
            return DeviceStatus(availability=Availability.DEGRADED,
                                reason=f"coil of lock(s) {sorted(self._pending_off)} not "
                                       f"confirmed off")
        return quality_status(self.link.device_counters(self.unit))

    def diagnostics(self) -> dict[str, object]:
        """Everything a technician needs about this module, JSON-ready (no I/O)."""
        return {
            "family": self.family,
            "board": self.unit,
            "bus": self.link.name,
            **self.status().as_dict(),
            "info": self._info.as_dict() if self._info else None,
            "register_map": {
                "unit": self.map.unit, "locks": self.map.locks,
                "lock_coils_start": self.map.lock_coils_start,
                "door_inputs_start": self.map.door_inputs_start,
                "door_open_when": self.map.door_open_when,
                "item_inputs_start": self.map.item_inputs_start,
                "pulse_ms": self.map.pulse_ms,
            },
            "counters": self.link.device_counters(self.unit).as_dict(),
            "bus_counters": self.link.counters.as_dict(),
            "unconfirmed_unlocks": self.unconfirmed_unlocks,
            "coils_pending_off": sorted(self._pending_off),
            "polls": self._events.polls,
        }

    def close(self) -> None:
        """Modules own no port; closing the bus is the link's."""

    def __repr__(self) -> str:
        return f"<ModbusIoBoard {self.name}>"
