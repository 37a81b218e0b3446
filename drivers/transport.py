"""One serial bus: request/reply with the timing and retransmission rules of SPEC.md §4.

Why a class of its own: several boards share one RS-485 bus, so exactly one object may own
the port, serialise requests (a lock), pick sequence numbers, apply the timeouts and the
retransmission rule (re-send the *identical* frame, same SEQ, at most ``Timing.RETRIES``
more times) and keep the port alive (reopen after a backoff when it disappears). Boards are
thin wrappers that ask this transport for typed replies.

Theory of operation, one request:

1. ``_ensure_open`` — open the port lazily (constructors never touch hardware). If it failed
   recently, raise ``DeviceUnavailable`` without I/O until the backoff has elapsed.
2. Drop stale input, wait the 1 ms turnaround since the last reply, write the frame.
3. Wait for the first byte until ``timeout_s`` (end of request → start of reply). While bytes
   flow, keep reading; a silence longer than the inter-byte gap with a partial frame buffered
   calls ``FrameDecoder.expire()`` (truncated frame). Garbage is counted and skipped (the
   decoder resyncs). A frame that is not our reply — another board's, a stale SEQ, our own
   request echoed back (``loop://``) — is counted and ignored.
4. No reply, or only an unreadable one (bad CRC, truncated, bad payload) → wait for the line
   to go quiet, re-send the identical bytes. After the last attempt raise ``DeviceTimeout``
   (nothing readable came) or ``FrameError`` (replies came but stayed unreadable).

A port error (socket closed, USB adapter gone) closes the port, starts the backoff and raises
``DeviceUnavailable``; the next call after the backoff reopens it and counts a reconnect.

The framing is a :class:`Wire`: the lendbox protocol by default, or a third-party family's
(Chinese lock boards, Kerong, FEIG, RR3036 …), so every family gets the same timeouts,
identical re-sends, resync, reconnect and counters.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import serial

from firmware_protocol import errors as proto_errors
from firmware_protocol.codec import NEED_DATA, FrameDecoder, encode
from firmware_protocol.const import BROADCAST, Timing
from firmware_protocol.messages import Frame, Reply, Request

from .base import Availability, DeviceStatus
from .errors import DeviceTimeout, DeviceUnavailable, DriverError, FrameError

__all__ = [
    "BusTransport", "LENDBOX_WIRE", "device_status", "LendboxWire", "LinkCounters", "Match", "PortFactory",
    "StreamDecoder", "Wire", "quality_status", "usb_latency_timer_ms",
]

_log = logging.getLogger(__name__)

PortFactory = Callable[..., Any]
"""Makes a closed, configured port: ``factory(url, baudrate=..., do_not_open=True)``."""

Match = Literal["reply", "echo", "foreign"]


class StreamDecoder(Protocol):
    """A sans-IO frame decoder (h11 style), as ``firmware_protocol`` codecs provide them."""

    @property
    def buffered(self) -> int: ...

    def feed(self, data: bytes) -> None: ...

    def next_event(self) -> object:
        """A decoded frame, or ``NEED_DATA``; raises ``firmware_protocol.errors.FrameError``."""
        ...

    def expire(self) -> None:
        """The inter-byte gap passed: drop a partial frame (raising ``TruncatedFrame``)."""
        ...


class Wire(Protocol):
    """How one protocol family frames requests and recognises their replies.

    ``seq`` is the transport's per-request number; families without sequence numbers ignore
    it and match replies by address and command instead.
    """

    family: str

    def encode(self, address: int, seq: int, message: object) -> bytes:
        """The request's bytes; raises ``firmware_protocol.errors.LocalProtocolError``."""
        ...

    def new_decoder(self) -> StreamDecoder: ...

    def match(self, request: object, address: int, seq: int, event: object) -> Match:
        """Is ``event`` (a decoded frame) the reply to ``request``, our own request echoed
        back, or somebody else's frame?"""
        ...

    def reply_of(self, event: object) -> object:
        """The message the transport returns for a matching frame."""
        ...


class LendboxWire:
    """Our own board protocol (firmware_protocol/SPEC.md)."""

    family = "lendbox"
    #: replies carry the request's sequence number: a late one never passes for another's
    numbered = True

    def encode(self, address: int, seq: int, message: object) -> bytes:
        if not isinstance(message, Request):
            raise proto_errors.LocalProtocolError(f"{type(message).__name__} is not a request")
        return encode(Frame(address=address, seq=seq, message=message))

    def new_decoder(self) -> StreamDecoder:
        return FrameDecoder()

    def match(self, request: object, address: int, seq: int, event: object) -> Match:
        if not isinstance(event, Frame) or event.address != address or event.seq != seq:
            return "foreign"
        if isinstance(event.message, Reply):
            return "reply"
        return "echo" if isinstance(event.message, Request) else "foreign"

    def reply_of(self, event: object) -> object:
        assert isinstance(event, Frame)
        return event.message


LENDBOX_WIRE = LendboxWire()

#: Over TCP (``socket://``) bytes of one frame may arrive with scheduler/network jitter; a
#: 5 ms gap would cut healthy frames, so socket URLs use this gap instead.
SOCKET_INTER_BYTE_GAP_S = 0.030
#: Most bytes taken from the port in one read (more than any frame).
_READ_CHUNK = 4096
#: The last part of the turnaround that is busy-waited instead of slept (sleep overshoots).
_SPIN_S = 0.00015
#: Longest quiet wait after a re-sent request on a wire without request numbers (the late
#: replies to its earlier attempts come about as late as the one that was taken).
SETTLE_MAX_S = 2.0
#: Window of recent requests that decides "degraded: N% of replies needed a retry".
QUALITY_WINDOW = 100
DEGRADED_RETRY_FRACTION = 0.05
DEGRADED_MIN_SAMPLES = 20


@dataclass(slots=True)
class LinkCounters:
    """What happened on a link or to one device; ``as_dict`` is what diagnostics show."""

    requests: int = 0
    retries: int = 0
    timeouts: int = 0  # requests that failed after every retry (no readable reply)
    unreadable: int = 0  # requests that failed after every retry (only unreadable replies)
    crc_errors: int = 0
    truncated: int = 0
    bad_frames: int = 0  # good CRC but unknown command / payload not fitting
    garbage_bytes: int = 0
    foreign_frames: int = 0  # frames that were not our reply (echo, stale SEQ, other board)
    reconnects: int = 0
    port_errors: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    attempts_unreadable: int = 0  # attempts that got only broken frames
    attempts_silent: int = 0  # attempts that got no reply at all
    # Reply latency of plain commands answered at the first attempt: the exchange's time
    # (request start → last reply byte) minus the wire time of its bytes. A healthy board
    # answers within a few ms (its firmware time); a USB adapter's latency timer, a slow
    # converter or a busy board shows up here long before it causes timeouts.
    latency_samples: int = 0
    latency_total_s: float = 0.0
    latency_max_s: float = 0.0
    last_latency_s: float | None = None
    last_error: str = ""
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=QUALITY_WINDOW))

    def add_latency(self, seconds: float) -> None:
        self.latency_samples += 1
        self.latency_total_s += seconds
        self.latency_max_s = max(self.latency_max_s, seconds)
        self.last_latency_s = seconds

    def latency_mean_s(self) -> float | None:
        """Mean reply latency beyond the wire time (None before the first sample)."""
        return self.latency_total_s / self.latency_samples if self.latency_samples else None

    def retry_fraction(self) -> float:
        """Share of recent requests that needed at least one re-send (0.0 with no data)."""
        if not self.recent:
            return 0.0
        return sum(self.recent) / len(self.recent)

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "timeouts": self.timeouts,
            "unreadable": self.unreadable,
            "crc_errors": self.crc_errors,
            "truncated_frames": self.truncated,
            "bad_frames": self.bad_frames,
            "garbage_bytes": self.garbage_bytes,
            "foreign_frames": self.foreign_frames,
            "reconnects": self.reconnects,
            "port_errors": self.port_errors,
            "frames_sent": self.frames_sent,
            "frames_received": self.frames_received,
            "attempts_unreadable": self.attempts_unreadable,
            "attempts_silent": self.attempts_silent,
            "recent_retry_fraction": round(self.retry_fraction(), 4),
            "latency_samples": self.latency_samples,
            "reply_latency_mean_ms": (None if self.latency_samples == 0
                                      else round(self.latency_total_s
                                                 / self.latency_samples * 1000, 2)),
            "reply_latency_max_ms": round(self.latency_max_s * 1000, 2),
            "last_error": self.last_error,
        }


def usb_latency_timer_ms(url: str, sys_root: Path = Path("/sys")) -> int | None:
    """The FTDI-style latency timer of a ``/dev/ttyUSBx`` port, or None elsewhere.

    Why: a USB-serial adapter holds received bytes up to this long (16 ms by default) before
    passing them on, which adds to every request/reply; diagnostics tell the technician to
    lower it (``echo 1 > .../latency_timer``).
    """
    match = re.fullmatch(r"/dev/(ttyUSB\d+)", url)
    if not match:
        return None
    path = sys_root / "bus/usb-serial/devices" / match.group(1) / "latency_timer"
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class BusTransport:
    """The one owner of a serial link shared by one or more boards.

    Args:
        url: any ``serial.serial_for_url`` URL (``/dev/ttyUSB0``, ``socket://host:port``,
            ``loop://``).
        baudrate: line rate; 19200 for RS-485 buses, 115200 for USB boards.
        name: the bus's name in the hardware config (for messages and diagnostics).
        port_factory: makes a closed port; default ``serial.serial_for_url``. Injected by
            tests and by callers who already resolved a port by USB identity.
        clock: monotonic seconds; injectable for tests.
        backoff_s: (first, max) wait before reopening a port that failed; doubles each time.
        inter_byte_gap_s: silence that truncates a frame; default SPEC's 5 ms, or
            ``SOCKET_INTER_BYTE_GAP_S`` over TCP.
        wire: the protocol family's framing; default our own protocol.
        bytesize, parity, stopbits: line settings (FEIG readers default to 8E1).
        turnaround: keep SPEC §4's 1 ms between a reply and the next request, which an
            RS-485 bus needs to switch direction; a point-to-point USB link does not.

    The constructor does no I/O; the port opens on the first request.
    """

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 19200,
        name: str = "",
        port_factory: PortFactory = serial.serial_for_url,
        clock: Callable[[], float] = time.monotonic,
        backoff_s: tuple[float, float] = (0.5, 10.0),
        inter_byte_gap_s: float | None = None,
        wire: Wire = LENDBOX_WIRE,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        turnaround: bool = True,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self.wire = wire
        self.bytesize, self.parity, self.stopbits = bytesize, parity, stopbits
        self._turnaround_s = Timing.TURNAROUND_MS / 1000 if turnaround else 0.0
        # one character on the line: start bit, data bits, parity bit, stop bits
        self._char_s = (1 + bytesize + (parity != "N") + stopbits) / baudrate
        self.name = name or url
        self._factory = port_factory
        self._clock = clock
        self._backoff_first, self._backoff_max = backoff_s
        if inter_byte_gap_s is None:
            inter_byte_gap_s = (SOCKET_INTER_BYTE_GAP_S if url.startswith("socket://")
                                else Timing.INTER_BYTE_GAP_MS / 1000)
        self.inter_byte_gap_s = inter_byte_gap_s
        self._lock = threading.RLock()
        self._port: Any = None
        self._opened_once = False
        self._down_reason = ""
        self._next_open_at = 0.0
        self._backoff = self._backoff_first
        self._last_rx = -1e9
        # until when a late reply to an earlier request may still arrive (unnumbered wires)
        self._settle_until = -1e9
        self._rx_bytes = 0  # bytes received in the current attempt (latency = time - wire)
        self._port_timeout: float | None = None
        self._seq = secrets.randbelow(256)  # a restarted host must not hit the board's cache
        self._decoder: StreamDecoder = wire.new_decoder()
        self._request: object = None
        self.counters = LinkCounters()
        self._device_counters: dict[int, LinkCounters] = {}
        self.request_was_sent = False  # did the last request reach the wire at least once?

    # ------------------------------------------------------------ public

    def device_counters(self, address: int) -> LinkCounters:
        """The counters of requests addressed to ``address`` (created on first use)."""
        with self._lock:
            return self._device_counters.setdefault(address, LinkCounters())

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def status(self) -> DeviceStatus:
        """The link's availability: unavailable while the port is down, degraded when too
        many recent requests needed a retry."""
        if self._down_reason:
            return DeviceStatus(availability=Availability.UNAVAILABLE, reason=self._down_reason)
        return quality_status(self.counters)

    def diagnostics(self) -> dict[str, object]:
        """Counters, state and hints for the technician (JSON-ready)."""
        info: dict[str, object] = {
            "bus": self.name,
            "url": self.url,
            "baudrate": self.baudrate,
            "open": self.is_open,
            **self.status().as_dict(),
            "counters": self.counters.as_dict(),
        }
        latency = usb_latency_timer_ms(self.url)
        if latency is not None:
            info["usb_latency_timer_ms"] = latency
            if latency > 1:
                info["hint"] = (f"USB-serial latency timer is {latency} ms: each reply may be "
                                f"held that long; set it to 1 ms")
        return info

    def request(
        self, address: int, message: Any, *, timeout_s: float,
        retries: int = Timing.RETRIES, measure_latency: bool | None = None,
    ) -> Any:
        """Send ``message`` to board ``address`` and return its reply (possibly a ``Nak``).

        Args:
            address: board address 1..247 (use ``broadcast`` for 0xFF).
            message: the request.
            timeout_s: end of request → start of reply, per SPEC §4 for this command.
            retries: identical re-sends after a timeout or an unreadable reply.
            measure_latency: add this exchange's reply latency to the counters when it is
                answered at the first attempt; default: only for plain commands (a timeout
                of at most SPEC's 50 ms), whose boards answer at once, not after air time.

        Raises:
            DeviceUnavailable: the port cannot be opened or broke (reopened after a backoff).
            DeviceTimeout: no readable reply after every attempt.
            FrameError: replies came but all were unreadable.
            DriverError: ``message`` could not be encoded (a bug on our side).
        State after an error: the link is usable; the next call starts a fresh exchange.
        """
        with self._lock:
            self.request_was_sent = False
            self._ensure_open()
            seq = self._next_seq()
            try:
                data = self.wire.encode(address, seq, message)
            except proto_errors.LocalProtocolError as exc:
                raise DriverError(f"cannot encode {type(message).__name__}: {exc}") from exc
            self._request = message
            dev = self.device_counters(address)
            for c in (self.counters, dev):
                c.requests += 1
            if measure_latency is None:
                measure_latency = timeout_s <= Timing.RESPONSE_TIMEOUT_MS / 1000 + 1e-9
            self._settle()
            self._drain_stale()
            unreadable_seen = False
            echo_seen = False
            silent = 0
            first_sent = 0.0
            for attempt in range(retries + 1):
                if attempt:
                    for c in (self.counters, dev):
                        c.retries += 1
                started = self._write(data)
                if attempt == 0:
                    first_sent = started
                self.request_was_sent = True
                dev.frames_sent += 1
                self._rx_bytes = 0
                outcome = self._await_reply(address, seq, timeout_s)
                if not isinstance(outcome, str):
                    dev.frames_received += 1
                    for c in (self.counters, dev):
                        c.recent.append(attempt > 0)
                    if measure_latency and attempt == 0:
                        wire = (len(data) + self._rx_bytes) * self._char_s
                        late = max(0.0, self._last_rx - started - wire)
                        for c in (self.counters, dev):
                            c.add_latency(late)
                    if silent:
                        # the reply may answer an earlier attempt: the later attempts' replies
                        # come about as late after their own sends (so before now + that
                        # delay), give or take the device's and the host's jitter: twice it
                        now = self._clock()
                        self._await_late(min(2 * (now - first_sent), SETTLE_MAX_S))
                    return outcome
                unreadable_seen |= outcome == "unreadable"
                for c in (self.counters, dev):
                    if outcome == "unreadable":
                        c.attempts_unreadable += 1
                    else:
                        c.attempts_silent += 1
                if outcome != "unreadable":
                    silent += 1
                echo_seen |= outcome == "echo"
            if silent:  # the last attempt's reply may still be on its way
                self._await_late(timeout_s)
            for c in (self.counters, dev):
                c.recent.append(True)
            what = f"board {address} on {self.name}: {type(message).__name__}"
            if unreadable_seen:
                msg = f"{what}: replies unreadable after {retries + 1} attempts"
                for c in (self.counters, dev):
                    c.unreadable += 1
                    c.last_error = msg
                raise FrameError(msg)
            msg = f"{what}: no reply within {timeout_s * 1000:.0f} ms, {retries + 1} attempts"
            if echo_seen:
                msg += " (only our own request came back: a loopback or echoing line?)"
            for c in (self.counters, dev):
                c.timeouts += 1
                c.last_error = msg
            raise DeviceTimeout(msg)

    def broadcast(self, message: Any, address: int = BROADCAST) -> None:
        """Send ``message`` to every board; boards never answer a broadcast."""
        with self._lock:
            self._ensure_open()
            try:
                data = self.wire.encode(address, self._next_seq(), message)
            except proto_errors.LocalProtocolError as exc:
                raise DriverError(f"cannot encode {type(message).__name__}: {exc}") from exc
            self._write(data)

    def close(self) -> None:
        """Close the port; a later request reopens it."""
        with self._lock:
            self._close_port()
            self._down_reason = ""

    # ------------------------------------------------------------ port life

    def _ensure_open(self) -> None:
        if self._port is not None:
            return
        now = self._clock()
        if self._down_reason and now < self._next_open_at:
            raise DeviceUnavailable(
                f"bus {self.name}: {self._down_reason} (retrying in "
                f"{self._next_open_at - now:.1f} s)")
        try:
            port = self._factory(self.url, baudrate=self.baudrate, bytesize=self.bytesize,
                                 parity=self.parity, stopbits=self.stopbits, timeout=0,
                                 do_not_open=True)
            port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            self._port_failed(f"cannot open {self.url}: {exc}")
            raise DeviceUnavailable(f"bus {self.name}: cannot open {self.url}: {exc}") from exc
        if self._opened_once:
            self.counters.reconnects += 1
            _log.info("bus %s: reconnected to %s", self.name, self.url)
        self._opened_once = True
        self._port = port
        self._port_timeout = None
        self._down_reason = ""
        self._backoff = self._backoff_first
        self._decoder = self.wire.new_decoder()

    def _port_failed(self, reason: str) -> None:
        self._close_port()
        self.counters.port_errors += 1
        self.counters.last_error = reason
        self._down_reason = reason
        self._next_open_at = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, self._backoff_max)
        _log.warning("bus %s: %s", self.name, reason)

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception as exc:  # noqa: BLE001 - closing a broken port may fail any way
                _log.debug("bus %s: close failed: %s", self.name, exc)

    def _io_failed(self, exc: BaseException) -> DeviceUnavailable:
        reason = f"port lost: {exc}"
        self._port_failed(reason)
        return DeviceUnavailable(f"bus {self.name}: {reason}")

    # ------------------------------------------------------------ exchange

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _await_late(self, seconds: float) -> None:
        """Keep the line quiet for ``seconds`` before the next request, on a wire whose
        replies carry no request number: a late reply to an attempt that timed out would
        otherwise pass for the reply to the next, different request (another tag's memory
        block read as this one's). Numbered wires recognise such a reply by itself."""
        if getattr(self.wire, "numbered", False):
            return
        self._settle_until = max(self._settle_until, self._clock() + seconds)

    def _settle(self) -> None:
        """Wait out :meth:`_await_late`, discarding whatever arrives meanwhile."""
        while True:
            left = self._settle_until - self._clock()
            if left <= 0:
                return
            self._read(left)  # a late reply (or a fragment): nobody's answer now

    def _drain_stale(self) -> None:
        """Forget bytes left over from an earlier exchange before a new request."""
        try:
            if self._port.in_waiting:
                self._port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise self._io_failed(exc) from exc
        self._decoder = self.wire.new_decoder()

    def _write(self, data: bytes) -> float:
        """Send ``data`` once the turnaround since the last received byte has passed; returns
        the (clock) time the write started.

        Only the *remainder* of the turnaround is waited: the work done since the reply
        (decoding, the caller's logic, encoding) counts towards it. ``time.sleep`` wakes up
        ~0.1 ms late on Linux, 10 % of the 1 ms turnaround on every exchange, so the last
        ``_SPIN_S`` is busy-waited; never less than the turnaround.
        """
        wait = self._last_rx + self._turnaround_s - self._clock()
        if wait > 0:
            until = time.perf_counter() + wait
            if wait > _SPIN_S:
                time.sleep(wait - _SPIN_S)
            while time.perf_counter() < until:
                pass
        started = self._clock()
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as exc:
            raise self._io_failed(exc) from exc
        self.counters.frames_sent += 1
        return started

    def _set_timeout(self, seconds: float) -> None:
        # Setting a pyserial timeout reconfigures the port (termios calls on a tty): skip it
        # when unchanged.
        if seconds != self._port_timeout:
            self._port.timeout = seconds
            self._port_timeout = seconds

    def _read(self, wait_s: float) -> bytes:
        """Whatever has arrived, or wait up to ``wait_s`` for the first byte and take
        everything that came with it. (``in_waiting`` of a ``socket://`` port is only 0 or 1,
        so asking for ``in_waiting`` bytes would read a TCP segment one byte per call.)"""
        port = self._port
        try:
            if port.in_waiting:
                self._set_timeout(0.0)
                data: bytes = port.read(_READ_CHUNK)
            else:
                self._set_timeout(max(wait_s, 0.0))
                data = port.read(1)
                if data and port.in_waiting:
                    self._set_timeout(0.0)
                    data += port.read(_READ_CHUNK)
        except (serial.SerialException, OSError) as exc:
            raise self._io_failed(exc) from exc
        if data:
            self._last_rx = self._clock()
            self._rx_bytes += len(data)
        return data

    def _await_reply(self, address: int, seq: int, timeout: float) -> object:
        """One attempt's wait. Returns the reply, or why there was none: ``"timeout"``,
        ``"unreadable"`` (a broken frame came; the line is quiet again) or ``"echo"``."""
        deadline = self._clock() + timeout
        gap = self.inter_byte_gap_s
        unreadable = False
        echo = False
        while True:
            if self._decoder.buffered:  # a frame is arriving: only the gap may pass
                data = self._read(gap)
                if not data:
                    try:
                        self._decoder.expire()
                    except proto_errors.TruncatedFrame as exc:
                        self._count_error(exc)
                        unreadable = True
                    continue
            elif unreadable:  # a broken reply came: re-send once the line is quiet
                data = self._read(gap)
                if not data:
                    return "unreadable"
            else:
                left = deadline - self._clock()
                if left <= 0:
                    return "echo" if echo else "timeout"
                data = self._read(left)
                if not data:
                    continue
            self._decoder.feed(data)
            result = self._drain_events(address, seq)
            if not isinstance(result, str):
                return result
            if result == "unreadable":
                unreadable = True
            elif result == "echo":
                echo = True

    def _drain_events(self, address: int, seq: int) -> object:
        verdict = ""
        while True:
            try:
                event = self._decoder.next_event()
            except proto_errors.FrameError as exc:
                self._count_error(exc)
                if not isinstance(exc, proto_errors.Garbage):
                    verdict = "unreadable"
                continue
            if event is NEED_DATA:
                return verdict
            self.counters.frames_received += 1
            match = self.wire.match(self._request, address, seq, event)
            if match == "reply":
                return self.wire.reply_of(event)
            self.counters.foreign_frames += 1
            if match == "echo":
                verdict = verdict or "echo"

    def _count_error(self, exc: proto_errors.FrameError) -> None:
        c = self.counters
        if isinstance(exc, (proto_errors.Garbage, proto_errors.BadLength)):
            c.garbage_bytes += len(exc.raw) if isinstance(exc, proto_errors.Garbage) else 1
        elif isinstance(exc, proto_errors.BadCrc):
            c.crc_errors += 1
        elif isinstance(exc, proto_errors.TruncatedFrame):
            c.truncated += 1
        else:
            c.bad_frames += 1


def device_status(transport: BusTransport, address: int, failure: str) -> DeviceStatus:
    """One device on a bus: unavailable while the bus is down or the device stopped answering
    (``failure``, its last error; "" when it answers), degraded when many of its recent
    requests needed a retry, ok otherwise."""
    bus = transport.status()
    if bus.availability is Availability.UNAVAILABLE:
        return bus
    if failure:
        return DeviceStatus(availability=Availability.UNAVAILABLE,
                            reason=f"not answering: {failure}")
    return quality_status(transport.device_counters(address))


def quality_status(c: LinkCounters) -> DeviceStatus:
    """OK, or degraded when more than 5% of the last requests needed a re-send."""
    if len(c.recent) >= DEGRADED_MIN_SAMPLES:
        frac = c.retry_fraction()
        if frac > DEGRADED_RETRY_FRACTION:
            return DeviceStatus(
                availability=Availability.DEGRADED,
                reason=f"{frac:.0%} of replies needed a retry",
            )
    return DeviceStatus(availability=Availability.OK)
