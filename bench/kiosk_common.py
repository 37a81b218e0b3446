"""Shared pieces of the kiosk benchmarks (``bench/kiosk_*.py``); not a benchmark itself.

- :func:`offline_cabinet`: the small simulated cabinet and an *offline* kiosk config for it
  (its ``[server]`` is a port nobody listens on, as in ``lendbox/crashtrial.py``), with the
  server key that signs the readers' grants and QR tokens;
- :class:`QrIssuer`: a fresh offline QR token per session (one signed grant per reader);
- :class:`BoardTap`: what the emulated board does and when, read in-process from the
  emulator *instance* (no simulator source is changed): ``record_event`` is wrapped to
  keep each event's exact monotonic time (the ring itself only keeps uptime in ms, and the
  kiosk's poller frees it), ``handle`` to account each exchange's wire / air / board time
  with the same formulas as ``simulator.line.LinkStats``;
- small statistics and machine-load helpers.
"""

from __future__ import annotations

import math
import os
import socket
import statistics
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SMALL = ROOT / "simulator" / "cabinets" / "small.toml"
BUS = "usb-1"

#: Limits high enough that no benchmark session is refused for its loans (the crash
#: trials' policy).
BENCH_POLICY: dict[str, Any] = {
    "max_loans": 100, "offline_allowance": 100, "offline_exposure_cap": 100000,
    "door_prompt_s": [30, 60], "door_alarm_s": 120,
}


def dead_port() -> int:
    """A local port nobody listens on: the cabinet's network is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def offline_cabinet(workdir: Path, sim: Any, *, accessible: set[int] | None = None,
                    policy: dict[str, Any] | None = None) -> tuple[Path, QrIssuer]:
    """Write ``workdir/kiosk.toml`` for the running ``sim``: offline, trusting one server key.
    Returns the config path and the issuer of that key's QR tokens."""
    from lendbox.kiosk_kit import write_kiosk_config
    from syncproto.grants import generate_keypair

    private, public = generate_keypair()
    config = write_kiosk_config(
        workdir / "kiosk.toml", sim, data_dir=workdir / "data",
        server_url=f"http://127.0.0.1:{dead_port()}", trusted_keys={"k1": public},
        policy={**BENCH_POLICY, **(policy or {})}, timeout_s=0.3, accessible=accessible)
    return config, QrIssuer(private)


class QrIssuer:
    """The server's side of an offline QR: one signed grant per reader, a fresh token (new
    nonce, issued now) for every session."""

    def __init__(self, private_key: str, key_id: str = "k1") -> None:
        self.private_key = private_key
        self.key_id = key_id
        self._grants: dict[str, Any] = {}

    def token(self, reader: str) -> str:
        from syncproto.grants import sign_grant
        from syncproto.qrtoken import issue_token

        now = datetime.now(UTC)
        grant = self._grants.get(reader)
        if grant is None:
            grant = sign_grant(grant_id=f"g-{reader}", reader_id=reader, tier="standard",
                               max_loans=100, offline_allowance=100, issued_at=now,
                               expires_at=now + timedelta(days=30), key_id=self.key_id,
                               private_key=self.private_key)
            self._grants[reader] = grant
        return issue_token(reader_id=reader, grant_id=grant.grant_id, issued_at=now, ttl_s=60,
                           key_id=self.key_id, private_key=self.private_key, grant=grant)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request the emulated board answered, as ``LinkStats`` accounts it."""

    at: float  # monotonic time the board handled the request
    end: float  # when the reply's last byte left, at the line rate (as the bus server paces)
    command: str  # the request message's class name (Inventory, ReadBlocks, ReadEvents, …)
    wire_s: float  # request + reply characters at the bus's baud rate
    air_s: float  # RFID air time
    busy_s: float  # board time between request and reply (air + firmware, pulses)


class BoardTap:
    """Times of one emulated board's events and exchanges, read from its instance.

    Why wrapping the instance's methods is enough: the cabinet model reports every sensed
    transition through the simulator to ``BoardEmulator.record_event(kind, lock, at)`` with
    ``at`` = the simulator's monotonic clock (``time.monotonic``, shared with an in-process
    kiosk), and the bus server hands every decoded frame to ``BoardEmulator.handle``."""

    def __init__(self, sim: Any, address: int = 1, bus: str = BUS) -> None:
        from firmware_protocol.codec import encode
        from simulator.line import wire_time_s

        self.board = sim.boards[address]
        baud = next(b.baudrate for b in sim.config.buses if b.name == bus)
        self._cond = threading.Condition()
        self.last: dict[tuple[int, int], float] = {}  # (event kind, lock) → its last time
        self.exchanges: deque[Exchange] = deque(maxlen=100_000)
        record, handle = self.board.record_event, self.board.handle

        def record_event(kind: Any, lock: int, at: float | None = None) -> None:
            record(kind, lock, at)
            with self._cond:
                self.last[(int(kind), lock)] = time.monotonic() if at is None else at
                self._cond.notify_all()

        def handled(item: Any) -> Any:
            result = handle(item)
            if result.reply is not None and hasattr(item, "message"):
                now = time.monotonic()
                request = wire_time_s(len(encode(item)), baud)
                reply = wire_time_s(len(encode(result.reply)), baud)
                self.exchanges.append(Exchange(
                    now, now + request + result.delay_s + reply, type(item.message).__name__,
                    request + reply, result.air_s, result.delay_s))
            return result

        self.board.record_event = record_event
        self.board.handle = handled

    def wait_event(self, kind: int, lock: int, after: float, timeout: float = 5.0) -> float:
        """The time of the first event ``kind`` on ``lock`` later than ``after``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                at = self.last.get((int(kind), lock))
                if at is not None and at > after:
                    return at
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"board event {kind} on lock {lock} not seen")
                self._cond.wait(left)

    def between(self, t0: float, t1: float) -> list[Exchange]:
        return [e for e in list(self.exchanges) if t0 <= e.at <= t1]


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(k, len(ordered)) - 1]


def summary_ms(values: Sequence[float]) -> str:
    """p50 / p99 / max of seconds, in ms."""
    return (f"p50 {percentile(values, 50) * 1000:7.1f} ms | p99 {percentile(values, 99) * 1000:7.1f}"
            f" ms | max {max(values) * 1000:7.1f} ms")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def machine_load() -> str:
    """CPUs and load averages, printed with the figures (other work on the machine slows
    every host-time figure; the emulated times do not change)."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.2f} (1 min) {five:.2f} (5 min)"


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` every 2 ms; TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.002)


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"
