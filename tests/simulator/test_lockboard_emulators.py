"""The cn485 and Kerong emulators: their reactions to frames, and their bytes on a real socket."""

from __future__ import annotations

import socket
import time

from firmware_protocol import cn485, kerong
from firmware_protocol.errors import BadCrc, Garbage
from simulator.families.cn485 import Cn485Board, Cn485DeviceWire
from simulator.families.kerong import KerongDeviceWire, KerongUnit
from simulator.model import CabinetModel
from tests.lockboard_helpers import cabinet, serve


def _model(locks: int = 8, boards: int = 1) -> CabinetModel:
    return CabinetModel(cabinet(boards=boards, locks=locks), time.monotonic)


def test_cn485_open_pulses_once_and_replies_after_the_pulse() -> None:
    model = _model()
    board = Cn485Board(model.config.boards[0], model)
    result = board.handle(cn485.Open(board=1, lock=2))
    assert result.reply == cn485.OpenReply(board=1, lock=2, high=False)  # closed_is_11: open
    assert result.delay_s >= board.pulse_s
    assert board.pulses == [0, 1, 0, 0, 0, 0, 0, 0] and model.doors[2].open
    # heard twice (a host that re-sends): pulses twice — the protocol has no identity
    board.handle(cn485.Open(board=1, lock=2))
    assert board.pulse_count == 2


def test_cn485_ignores_what_is_not_its_own() -> None:
    model = _model()
    board = Cn485Board(model.config.boards[0], model)
    assert board.handle(cn485.Open(board=2, lock=1)).reply is None
    assert board.handle(cn485.Open(board=1, lock=9)).reply is None  # no such channel
    assert board.handle(BadCrc("x", b"\x8a")).reply is None
    assert board.handle(Garbage("x", b"\x01")).reply is None
    assert board.bcc_errors == 1 and board.other_errors == 1 and board.pulse_count == 0


def test_cn485_status_reply_and_polarity() -> None:
    model = _model(locks=12)
    model.doors[3].open = True
    a = Cn485Board(model.config.boards[0], model)
    b = Cn485Board(model.config.boards[0], model, feedback="open_is_11")
    ra = a.handle(cn485.ReadBoard(board=1)).reply
    rb = b.handle(cn485.ReadBoard(board=1)).reply
    assert isinstance(ra, cn485.BoardStatusReply) and ra.status_bytes == 3
    assert isinstance(rb, cn485.BoardStatusReply)
    assert ra.signals[:12] == tuple(n != 3 for n in range(1, 13))
    assert rb.signals[:12] == tuple(n == 3 for n in range(1, 13))
    assert a.handle(cn485.ReadLock(board=1, lock=3)).reply == cn485.LockStatusReply(
        board=1, lock=3, high=False)


def test_cn485_faults_through_the_protocol() -> None:
    model = _model()
    board = Cn485Board(model.config.boards[0], model)
    model.doors[1].lock_jammed = True
    model.doors[2].sensor_broken = True
    assert board.handle(cn485.Open(board=1, lock=1)).reply.high is True  # still closed
    assert board.handle(cn485.Open(board=1, lock=2)).reply.high is True  # open, reads closed
    assert model.doors[2].open and board.pulse_count == 2


def test_kerong_unit_replies() -> None:
    model = _model(locks=16)
    unit = KerongUnit(model.config.boards[0], model, pulse_s=0.2)
    r = unit.handle(kerong.Unlock(unit=1, lock=5))
    assert isinstance(r.reply, kerong.StatusReply) and r.delay_s >= 0.2
    assert r.reply.hooks == tuple(n != 5 for n in range(1, 17)) and r.reply.address == 0x14
    model.doors[5].items.append("B1")
    status = unit.handle(kerong.GetStatus(unit=1)).reply
    assert isinstance(status, kerong.StatusReply)
    assert status.infrared == tuple(n == 5 for n in range(1, 17))
    assert unit.handle(kerong.QueryBus()).reply is None  # broadcast: never answered
    assert unit.handle(kerong.QueryBus(address=0x10)).reply.all_units is True
    assert unit.handle(kerong.SetPulse(unit=1, pulse_ms=700)).reply == kerong.PulseReply(
        address=0x10, pulse_ms=700)
    assert unit.pulse_s == 0.7 and unit.handle(kerong.Unlock(unit=2, lock=1)).reply is None
    assert unit.pulse_count == 1


def _exchange(url: str, data: bytes, size: int, timeout: float = 3.0) -> tuple[bytes, float]:
    host, port = url.removeprefix("socket://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        start = time.monotonic()
        s.sendall(data)
        got = b""
        while len(got) < size:
            chunk = s.recv(64)
            if not chunk:
                break
            got += chunk
        return got, time.monotonic() - start


def test_cn485_bytes_on_a_socket_after_the_pulse() -> None:
    with serve(cabinet(locks=8), lambda b, m: Cn485Board(b, m), Cn485DeviceWire()) as s:
        reply, took = _exchange(s.url, bytes.fromhex("8A0101119B"), 5)
        assert reply == bytes.fromhex("8A0101008A")  # door_closing lock: 00 = open
        assert took >= 0.3 + 10 * 10 / 9600
        reply, _ = _exchange(s.url, bytes.fromhex("80010033B2"), 7)
        assert reply == cn485.encode_reply(cn485.BoardStatusReply(
            board=1, signals=tuple(1 < n <= 8 for n in range(1, 25))))  # 9..24 unwired: low


def test_kerong_published_status_request_on_a_socket() -> None:
    with serve(cabinet(locks=16, baudrate=19200), lambda b, m: KerongUnit(b, m),
               KerongDeviceWire(), boards=None) as s:
        frame = kerong.encode_request(kerong.GetStatus(unit=1))
        reply, took = _exchange(s.url, frame, 9)
        assert kerong.decode_reply(reply) == kerong.StatusReply(
            address=0x10, hooks=(True,) * 16, infrared=(False,) * 16)
        assert took >= 14 * 10 / 19200
