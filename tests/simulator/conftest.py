"""Helpers for simulator tests: cabinets, a fake clock and a minimal host over real ports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from firmware_protocol.codec import NEED_DATA, FrameDecoder, encode
from firmware_protocol.errors import FrameError
from firmware_protocol.messages import Frame, Request
from simulator import Simulator, load_config
from simulator.config import CabinetConfig

CABINETS = Path(__file__).resolve().parents[2] / "simulator" / "cabinets"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Host:
    """The smallest possible host: send one request, wait for one reply frame (or none)."""

    def __init__(self, url: str) -> None:
        self.port = serial.serial_for_url(url, timeout=0.01)
        self.seq = 0

    def send(self, message: Request, address: int = 1, seq: int | None = None) -> bytes:
        if seq is None:
            self.seq = (self.seq + 1) % 256
            seq = self.seq
        data = encode(Frame(address=address, seq=seq, message=message))
        self.port.write(data)
        return data

    def receive(self, timeout: float = 2.0) -> tuple[Frame | None, float, bytes]:
        """(frame or None, seconds until its last byte, raw bytes received)."""
        decoder = FrameDecoder()
        start = time.monotonic()
        raw = bytearray()
        while time.monotonic() - start < timeout:
            chunk = self.port.read(512)
            if chunk:
                raw += chunk
                decoder.feed(chunk)
                while True:
                    try:
                        event = decoder.next_event()
                    except FrameError:
                        continue
                    if event is NEED_DATA:
                        break
                    return event, time.monotonic() - start, bytes(raw)
        return None, time.monotonic() - start, bytes(raw)

    def ask(self, message: Request, address: int = 1, timeout: float = 2.0
            ) -> tuple[Frame | None, float]:
        self.port.reset_input_buffer()
        self.send(message, address)
        frame, elapsed, _ = self.receive(timeout)
        return frame, elapsed

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def small_config() -> CabinetConfig:
    return load_config(CABINETS / "small.toml")


@pytest.fixture
def sim(small_config: CabinetConfig) -> Iterator[Simulator]:
    s = Simulator(small_config).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def host(sim: Simulator) -> Iterator[Host]:
    h = Host(sim.bus_urls["usb-1"])
    try:
        yield h
    finally:
        h.close()
