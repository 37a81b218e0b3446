"""BusTransport over loop:// and a scripted fake board on a real TCP socket."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from drivers.errors import DeviceTimeout, DeviceUnavailable, FrameError
from drivers.transport import BusTransport, usb_latency_timer_ms
from firmware_protocol.codec import NEED_DATA, FrameDecoder, encode
from firmware_protocol.const import Timing
from firmware_protocol.messages import Frame, GetStates, StatesReply


def test_constructor_touches_nothing() -> None:
    opened: list[str] = []

    def factory(url: str, **kw: object) -> object:
        opened.append(url)
        raise AssertionError("no port may be made in a constructor")

    t = BusTransport("/dev/ttyUSB9", port_factory=factory)
    assert opened == [] and not t.is_open


def test_loop_echo_is_not_a_reply() -> None:
    """loop:// hands our own request back: a decodable frame, but a request, not a reply."""
    t = BusTransport("loop://", inter_byte_gap_s=0.005)
    with pytest.raises(DeviceTimeout, match="only our own request came back"):
        t.request(1, GetStates(), timeout_s=0.02)
    c = t.counters
    assert c.requests == 1 and c.retries == 2 and c.foreign_frames == 3
    assert c.garbage_bytes == 0 and c.crc_errors == 0
    t.close()


def test_unopenable_port_is_unavailable_then_retried_after_backoff() -> None:
    now = [0.0]
    calls: list[str] = []

    def factory(url: str, **kw: object) -> object:
        calls.append(url)
        raise OSError("no such device")

    t = BusTransport("/dev/ttyUSB7", port_factory=factory, clock=lambda: now[0],
                     backoff_s=(1.0, 4.0))
    with pytest.raises(DeviceUnavailable, match="cannot open"):
        t.request(1, GetStates(), timeout_s=0.05)
    with pytest.raises(DeviceUnavailable, match="retrying in"):
        t.request(1, GetStates(), timeout_s=0.05)
    assert len(calls) == 1  # no I/O during the backoff
    assert t.status().availability.value == "unavailable"
    now[0] = 1.5
    with pytest.raises(DeviceUnavailable):
        t.request(1, GetStates(), timeout_s=0.05)
    assert len(calls) == 2


def test_latency_timer_read_only_for_ttyusb(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "bus/usb-serial/devices/ttyUSB3"
    d.mkdir(parents=True)
    (d / "latency_timer").write_text("16\n")
    assert usb_latency_timer_ms("/dev/ttyUSB3", tmp_path) == 16
    assert usb_latency_timer_ms("socket://127.0.0.1:1", tmp_path) is None
    assert usb_latency_timer_ms("/dev/ttyUSB4", tmp_path) is None


# ---------------------------------------------------------------- a scripted peer

Script = Callable[[int, Frame], list[bytes] | None]


@pytest.fixture
def fake_board() -> Iterator[Callable[[Script], str]]:
    """A TCP peer that answers each decoded request with the byte chunks a script returns."""
    servers: list[socket.socket] = []
    stop = threading.Event()

    def start(script: Script) -> str:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        servers.append(srv)

        def run() -> None:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            dec = FrameDecoder()
            n = 0
            with conn:
                while not stop.is_set():
                    data = conn.recv(512)
                    if not data:
                        return
                    dec.feed(data)
                    while True:
                        try:
                            ev = dec.next_event()
                        except Exception:  # noqa: BLE001, S112 - the fake ignores bad input
                            continue
                        if ev is NEED_DATA:
                            break
                        n += 1
                        chunks = script(n, ev)
                        if chunks is None:  # the script pulls the cable
                            return
                        for chunk in chunks:
                            conn.sendall(chunk)

        threading.Thread(target=run, daemon=True).start()
        return f"socket://127.0.0.1:{srv.getsockname()[1]}"

    yield start
    stop.set()
    for s in servers:
        s.close()


def _reply(req: Frame) -> bytes:
    return encode(Frame(address=req.address, seq=req.seq, message=StatesReply(doors=(0, 1))))


def test_garbage_then_reply_is_resynced_and_counted(fake_board) -> None:  # type: ignore[no-untyped-def]
    url = fake_board(lambda n, req: [b"\x00\x13\x37" + _reply(req)])
    t = BusTransport(url)
    reply = t.request(req_addr := 3, GetStates(), timeout_s=0.5)
    assert isinstance(reply, StatesReply) and len(reply.doors) == 2 and req_addr == 3
    assert t.counters.garbage_bytes == 3 and t.counters.retries == 0
    t.close()


def test_bad_crc_is_retried_with_identical_bytes(fake_board) -> None:  # type: ignore[no-untyped-def]
    seen: list[Frame] = []

    def script(n: int, req: Frame) -> list[bytes]:
        seen.append(req)
        good = _reply(req)
        if n == 1:
            return [good[:-1] + bytes([good[-1] ^ 0xFF])]
        return [good]

    t = BusTransport(fake_board(script))
    assert isinstance(t.request(2, GetStates(), timeout_s=0.5), StatesReply)
    assert len(seen) == 2 and seen[0] == seen[1]  # same SEQ, same request
    assert t.counters.crc_errors == 1 and t.counters.retries == 1
    t.close()


def test_truncated_reply_expires_and_is_retried(fake_board) -> None:  # type: ignore[no-untyped-def]
    def script(n: int, req: Frame) -> list[bytes]:
        good = _reply(req)
        return [good[:4]] if n == 1 else [good]

    t = BusTransport(fake_board(script))
    assert isinstance(t.request(2, GetStates(), timeout_s=0.5), StatesReply)
    assert t.counters.truncated == 1 and t.counters.retries == 1
    t.close()


def test_always_broken_replies_raise_frame_error(fake_board) -> None:  # type: ignore[no-untyped-def]
    def script(n: int, req: Frame) -> list[bytes]:
        good = _reply(req)
        return [good[:-1] + bytes([good[-1] ^ 1])]

    t = BusTransport(fake_board(script))
    with pytest.raises(FrameError, match="unreadable after 3 attempts"):
        t.request(2, GetStates(), timeout_s=0.3)
    t.close()


def test_stale_reply_with_other_seq_is_ignored(fake_board) -> None:  # type: ignore[no-untyped-def]
    def script(n: int, req: Frame) -> list[bytes]:
        stale = Frame(address=req.address, seq=(req.seq - 1) & 0xFF,
                      message=StatesReply(doors=(1,)))
        return [encode(stale), _reply(req)]

    t = BusTransport(fake_board(script))
    reply = t.request(2, GetStates(), timeout_s=0.5)
    assert isinstance(reply, StatesReply) and len(reply.doors) == 2
    assert t.counters.foreign_frames == 1
    t.close()


def test_closed_socket_is_unavailable(fake_board) -> None:  # type: ignore[no-untyped-def]
    url = fake_board(lambda n, req: [])
    host, port = url[len("socket://"):].split(":")
    t = BusTransport(url, backoff_s=(0.01, 0.02))
    # nobody answers: a timeout, the port is still fine
    with pytest.raises(DeviceTimeout):
        t.request(2, GetStates(), timeout_s=0.02)
    t.close()
    refused = BusTransport(f"socket://127.0.0.1:{_free_port()}", backoff_s=(0.01, 0.02))
    with pytest.raises(DeviceUnavailable):
        refused.request(2, GetStates(), timeout_s=0.02)
    assert host == "127.0.0.1" and int(port) > 0


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unlock_sent_then_port_lost_says_door_may_have_opened(fake_board) -> None:  # type: ignore[no-untyped-def]
    from drivers.board import LendboxBoard

    def script(n: int, req: Frame) -> list[bytes] | None:
        return None  # the peer closes the socket after hearing the unlock

    t = BusTransport(fake_board(script), backoff_s=(0.01, 0.02))
    board = LendboxBoard(t, 1)
    with pytest.raises(DeviceTimeout, match="may have opened"):
        board.unlock(1, pulse_ms=10)
    assert t.request_was_sent and t.status().availability.value == "unavailable"


def test_reply_latency_is_measured_beyond_wire_time(fake_board) -> None:  # type: ignore[no-untyped-def]
    """A board answering 30 ms late: the counters show it; a long command's air time is not
    counted as latency unless asked; a reply read in one TCP segment is taken in one go."""
    def script(n: int, req: Frame) -> list[bytes]:
        time.sleep(0.030)
        return [_reply(req)]

    t = BusTransport(fake_board(script), baudrate=115200)
    for _ in range(3):
        t.request(1, GetStates(), timeout_s=0.05)
    c = t.device_counters(1)
    assert c.latency_samples == 3 and t.counters.latency_samples == 3
    mean = c.latency_mean_s()
    assert mean is not None and 0.025 < mean < 0.045 and c.latency_max_s >= mean
    d = c.as_dict()
    assert 25 < d["reply_latency_mean_ms"] < 45  # type: ignore[operator]
    t.request(1, GetStates(), timeout_s=1.5)  # e.g. an inventory round: air time, not latency
    assert c.latency_samples == 3
    t.request(1, GetStates(), timeout_s=1.5, measure_latency=True)
    assert c.latency_samples == 4 and c.last_latency_s is not None and c.last_latency_s > 0.02
    assert t.counters.retries == 0
    t.close()


def test_late_reply_after_timeout_is_not_a_latency_sample(fake_board) -> None:  # type: ignore[no-untyped-def]
    """Replies later than the timeout: the request is re-sent (identical bytes) and the
    late answer accepted, but only first-attempt answers are latency samples."""
    sent: list[bytes] = []

    def script(n: int, req: Frame) -> list[bytes]:
        sent.append(encode(req))
        if n == 1:
            time.sleep(0.08)
        return [_reply(req)]

    t = BusTransport(fake_board(script), baudrate=115200)
    assert isinstance(t.request(1, GetStates(), timeout_s=0.05), StatesReply)
    assert t.counters.retries == 1 and t.counters.latency_samples == 0
    assert len(sent) >= 1 and all(s == sent[0] for s in sent)
    t.close()


def test_turnaround_waits_only_the_remainder() -> None:
    """SPEC §4: ≥ 1 ms after the last received byte before the next request; work done in
    between counts, so a request sent later than that is not delayed at all."""
    t = BusTransport("loop://", baudrate=115200)
    t._ensure_open()
    t._last_rx = t._clock()
    start = t._write(b"\xa5")
    assert start - t._last_rx >= Timing.TURNAROUND_MS / 1000
    t._last_rx = t._clock() - 0.010
    before = time.perf_counter()
    t._write(b"\xa5")
    assert time.perf_counter() - before < 0.0008
    t.close()
