"""The I/O side of a bus: TCP and pty servers that carry board frames at the line rate.

Why apart from ``board.py``: the board logic is a pure function of frames and time; this
module owns sockets, threads, sleeps and faults. One :class:`BusServer` per configured bus
listens on ``127.0.0.1`` (a free port chosen at start, reused on replug) and, if asked, on a
pseudo-terminal. Every exchange on a bus is serialised (RS-485 is half duplex):

1. bytes received (garbled by the fault settings) are fed to a ``FrameDecoder``;
2. a frame's request is taken to end at ``start + wire time`` (the first chunk's arrival, or
   the end of the previous request), so a reply never starts before the request could have
   been received at the configured baud rate;
3. every board on the bus gets the frame (under the simulator's model lock); at most one
   answers; the reply starts ``delay_s`` (board time: pulse, air time) + the fault delay after
   the request's end and is written at the line rate (``line.pace``);
4. wire, air and board time are added to the bus's :class:`LinkStats`.

The bytes' framing is a :class:`DeviceWire` (our protocol by default, or a third-party
family's), and the boards are any :class:`BusDevice`, so every family's emulator gets the
same pacing, faults and accounting.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
import time
import tty
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from firmware_protocol.codec import NEED_DATA, FrameDecoder, encode
from firmware_protocol.const import Timing
from firmware_protocol.errors import FrameError, LocalProtocolError

from .board import BoardResult
from .config import BusConfig
from .faults import LinkFaults
from .line import BITS_PER_CHAR_8N1, LinkStats, pace, wire_time_s

__all__ = ["BusDevice", "BusServer", "DeviceWire", "LENDBOX_DEVICE_WIRE", "LendboxDeviceWire"]

_POLL_S = 0.1


class _Decoder(Protocol):
    @property
    def buffered(self) -> int: ...

    def feed(self, data: bytes) -> None: ...

    def next_event(self) -> object: ...

    def expire(self) -> None: ...


class DeviceWire(Protocol):
    """How one family's requests are framed, seen from the device side of the bus."""

    family: str

    def new_decoder(self) -> _Decoder:
        """A sans-IO decoder of the requests (raising ``firmware_protocol`` FrameErrors)."""
        ...

    def encode_reply(self, reply: Any) -> bytes: ...

    def encoded_size(self, request: Any) -> int:
        """How many bytes ``request`` took on the wire (for its wire time)."""
        ...

    # Optional attributes, read with getattr: ``inter_byte_gap_s`` (silence that ends a
    # frame; default SPEC's 5 ms) and ``bits_per_char`` (10 for 8N1, 11 for 8E1).


class BusDevice(Protocol):
    """One emulated device on a bus: every decoded request or decoding error goes to every
    device; at most one answers (``BoardResult.reply``, after ``delay_s``)."""

    def handle(self, item: Any) -> BoardResult: ...


class LendboxDeviceWire:
    """Our own board protocol (firmware_protocol/SPEC.md)."""

    family = "lendbox"

    def new_decoder(self) -> _Decoder:
        return FrameDecoder()

    def encode_reply(self, reply: Any) -> bytes:
        return encode(reply)

    def encoded_size(self, request: Any) -> int:
        return len(encode(request))


LENDBOX_DEVICE_WIRE = LendboxDeviceWire()


class _Peer:
    """One connected host (a TCP client or the pty)."""

    def __init__(self, write: Callable[[bytes], None], close: Callable[[], None], name: str,
                 decoder: _Decoder) -> None:
        self.write = write
        self.close = close
        self.name = name
        self.decoder = decoder
        self.pending_since: float | None = None  # arrival of the first undecided byte
        self.request_end = 0.0  # emulated end of the last request heard


class BusServer:
    """Serves the boards of one bus on TCP (and optionally a pty) at the bus's baud rate.

    Args:
        bus: name, kind and baud rate.
        boards: the boards on this bus (all hear every frame).
        model_lock: held around every call into the boards / physical model.
        faults: this bus's link faults (shared with the Simulator's fault API).
        stats: where emulated time is accounted.
        pty: also serve on a pseudo-terminal.
        wire: the family's framing; default our own protocol.
    """

    def __init__(self, bus: BusConfig, boards: Sequence[BusDevice],
                 model_lock: threading.RLock, faults: LinkFaults, stats: LinkStats, *,
                 pty: bool = False, host: str = "127.0.0.1",
                 wire: DeviceWire = LENDBOX_DEVICE_WIRE) -> None:
        self.bus = bus
        self.wire = wire
        # 10 bits a character for 8N1; a family on 8E1 (FEIG) says 11.
        self._bits: int = getattr(wire, "bits_per_char", BITS_PER_CHAR_8N1)
        self.boards = list(boards)
        self.model_lock = model_lock
        self.faults = faults
        self.stats = stats
        self.want_pty = pty
        self.host = host
        self.port = 0
        self.pty_path: str | None = None
        self._stop = threading.Event()
        self._bus_lock = threading.Lock()  # one exchange at a time on the wire
        self._state_lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._clients: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._pty_fds: tuple[int, int] | None = None

    # ------------------------------------------------------------ life cycle
    @property
    def url(self) -> str:
        """``socket://127.0.0.1:PORT`` (valid after start)."""
        return f"socket://{self.host}:{self.port}"

    def start(self) -> None:
        """Open the listening socket (and the pty) and start serving."""
        self._stop.clear()
        self._listen()
        if self.want_pty:
            master, slave = os.openpty()
            tty.setraw(slave)
            self._pty_fds = (master, slave)
            self.pty_path = os.ttyname(slave)
            self._spawn(self._serve_pty, f"{self.bus.name}-pty")

    def stop(self) -> None:
        """Close every socket and the pty and join every thread."""
        self._stop.set()
        self._close_sockets()
        for t in list(self._threads):
            t.join(timeout=5)
        self._threads.clear()
        if self._pty_fds is not None:
            for fd in self._pty_fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._pty_fds = None

    def unplug(self) -> None:
        """Pull the cable: close connections, refuse new ones, ignore the pty."""
        self.faults.unplugged = True
        self._close_sockets()
        self._reap()

    def replug(self) -> None:
        """Put the cable back: listen again on the same port."""
        if not self.faults.unplugged:
            return
        self.faults.unplugged = False
        if not self._stop.is_set():
            self._listen()

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        t = threading.Thread(target=target, args=args, name=f"sim-{name}", daemon=True)
        self._threads.append(t)
        t.start()

    def _reap(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]

    def _listen(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((self.host, self.port))
        except OSError:
            s.close()
            raise
        s.listen(8)
        s.settimeout(_POLL_S)
        self.port = s.getsockname()[1]
        with self._state_lock:
            self._listener = s
        self._spawn(self._accept, f"{self.bus.name}-accept", s)

    def _close_sockets(self) -> None:
        with self._state_lock:
            listener, self._listener = self._listener, None
            clients, self._clients = self._clients, set()
        if listener is not None:
            # close() alone leaves the socket listening until a thread blocked in accept()
            # returns; shutdown() stops it at once (an unplugged cable refuses immediately).
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for c in clients:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    # ------------------------------------------------------------ serving
    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            with self._state_lock:
                if self._listener is not listener:
                    return
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.faults.unplugged:
                conn.close()
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._state_lock:
                self._clients.add(conn)
            self._spawn(self._serve_socket, f"{self.bus.name}-conn", conn)

    def _serve_socket(self, conn: socket.socket) -> None:
        peer = _Peer(conn.sendall, conn.close, "tcp", self.wire.new_decoder())
        try:
            while not self._stop.is_set():
                conn.settimeout(self._wait_s(peer))
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    self._expire(peer)
                    continue
                if not data:
                    return
                self._received(peer, data)
        except OSError:
            return
        finally:
            with self._state_lock:
                self._clients.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _serve_pty(self) -> None:
        assert self._pty_fds is not None
        master = self._pty_fds[0]

        def write(data: bytes) -> None:
            view = memoryview(data)
            while view:
                n = os.write(master, view)
                view = view[n:]

        peer = _Peer(write, lambda: None, "pty", self.wire.new_decoder())
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([master], [], [], self._wait_s(peer))
            except (OSError, ValueError):
                return
            if not ready:
                self._expire(peer)
                continue
            try:
                data = os.read(master, 4096)
            except OSError as exc:
                if exc.errno == errno.EIO:  # no slave open right now
                    self._stop.wait(_POLL_S)
                    continue
                return
            if self.faults.unplugged:
                continue
            self._received(peer, data)

    def _wait_s(self, peer: _Peer) -> float:
        """How long to wait for bytes: the inter-byte gap while a frame is half received."""
        if peer.decoder.buffered:
            gap = getattr(self.wire, "inter_byte_gap_s", Timing.INTER_BYTE_GAP_MS / 1000)
            return gap + wire_time_s(peer.decoder.buffered, self.bus.baudrate, self._bits)
        return _POLL_S

    def _expire(self, peer: _Peer) -> None:
        try:
            peer.decoder.expire()
        except FrameError as exc:
            self._dispatch(peer, exc, len(exc.raw))
        except LocalProtocolError:
            pass
        peer.pending_since = None

    def _received(self, peer: _Peer, data: bytes) -> None:
        now = time.monotonic()
        data, garbled = self.faults.garble(data)
        self.stats.bytes_in += len(data)
        self.stats.bytes_garbled += garbled
        if peer.pending_since is None:
            peer.pending_since = now
        peer.decoder.feed(data)
        while True:
            try:
                event = peer.decoder.next_event()
            except FrameError as exc:
                self._dispatch(peer, exc, len(exc.raw))
                continue
            if event is NEED_DATA:
                break
            try:
                size = self.wire.encoded_size(event)
            except LocalProtocolError:  # e.g. a reply from broadcast: nobody answers it
                continue
            self._dispatch(peer, event, size)
        if not peer.decoder.buffered:
            peer.pending_since = None

    def _dispatch(self, peer: _Peer, item: object, size: int) -> None:
        """One decoded frame or error: account its wire time, let the boards react, answer."""
        with self._bus_lock:
            arrived = peer.pending_since if peer.pending_since is not None else time.monotonic()
            start = max(arrived, peer.request_end)
            request_s = wire_time_s(size, self.bus.baudrate, self._bits)
            end = start + request_s
            peer.request_end = end
            self.stats.wire_s += request_s
            if isinstance(item, FrameError):
                self.stats.frame_errors += 1
            if not isinstance(item, FrameError):
                self.stats.requests += 1
                if self.faults.drop():
                    self.stats.requests_dropped += 1
                    return
            if self.faults.unplugged:
                return
            result = self._ask_boards(item)
            if result.reply is None:
                return
            reply_start = end + result.delay_s + self.faults.delay_ms / 1000.0
            self.stats.air_s += result.air_s
            self.stats.busy_s += result.delay_s
            if self.faults.drop():
                self.stats.replies_dropped += 1
                return
            data, garbled = self.faults.garble(self.wire.encode_reply(result.reply))
            self.stats.bytes_garbled += garbled
            try:
                sent = pace(peer.write, data, self.bus.baudrate, start=reply_start,
                            bits_per_char=self._bits,
                            stop=self._stop)
            except OSError:
                return
            self.stats.wire_s += sent
            self.stats.bytes_out += len(data)
            self.stats.exchanges += 1
            peer.request_end = max(peer.request_end, time.monotonic())

    def _ask_boards(self, item: object) -> BoardResult:
        answer = BoardResult(reply=None)
        with self.model_lock:
            for board in self.boards:
                result = board.handle(item)
                if result.reply is not None and answer.reply is None:
                    answer = result
        return answer
