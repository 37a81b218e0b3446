"""Serving third-party lock-board emulators on a real socket, without the full Simulator.

Why: family tests need the real ``CabinetModel``, the real ``BusServer`` (line rate, faults,
TCP) and the family's emulator — the same pieces ``simulator/simulator.py`` wires together —
but for a family the Simulator's config does not know yet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from simulator.config import BoardConfig, CabinetConfig, parse_config
from simulator.faults import LinkFaults
from simulator.line import LinkStats
from simulator.model import CabinetModel
from simulator.transport import BusServer, DeviceWire


def cabinet(boards: int = 1, locks: int = 8, *, baudrate: int = 9600, spring: bool = True,
            first_address: int = 1, bus: str = "rs485-1") -> CabinetConfig:
    """``boards`` boards on one bus, addresses ``first_address``…, one door per lock
    (door number = (board index) × locks + lock), no books."""
    doors = []
    for b in range(boards):
        for lock in range(1, locks + 1):
            doors.append({"number": b * locks + lock, "board": first_address + b, "lock": lock,
                          "antenna": 1, "spring": spring, "capacity": 10})
    data: dict[str, Any] = {
        "cabinet": {"id": "lockboard-test", "seed": 7},
        "buses": [{"name": bus, "kind": "rs485", "baudrate": baudrate}],
        "boards": [{"address": first_address + b, "bus": bus, "locks": locks, "antennas": 1,
                    "serial": f"T{first_address + b:04d}"} for b in range(boards)],
        "doors": doors,
    }
    return parse_config(data)


@dataclass
class Served:
    """A running bus: connect a driver to ``url``; change the model under ``lock``."""

    config: CabinetConfig
    model: CabinetModel
    lock: threading.RLock
    server: BusServer
    devices: list[Any]
    faults: LinkFaults
    stats: LinkStats

    @property
    def url(self) -> str:
        return self.server.url

    def door(self, board: int, lock: int) -> int:
        """The door number driven by ``lock`` of ``board``."""
        for d in self.config.doors:
            if d.board == board and d.lock == lock:
                return d.number
        raise KeyError((board, lock))


@contextmanager
def serve(config: CabinetConfig, make_device: Callable[[BoardConfig, CabinetModel], Any],
          wire: DeviceWire, *, garble_rate: float = 0.0, drop_rate: float = 0.0,
          seed: int = 1, boards: Sequence[BoardConfig] | None = None) -> Iterator[Served]:
    """Serve ``make_device(board_config, model)`` for every board on the config's first bus,
    with ``wire``'s framing, on a free TCP port; stopped afterwards."""
    model = CabinetModel(config, time.monotonic)
    lock = threading.RLock()
    faults = LinkFaults(garble_rate=garble_rate, drop_rate=drop_rate, seed=seed)
    stats = LinkStats()
    bus = config.buses[0]
    devices = [make_device(b, model) for b in (boards or config.boards) if b.bus == bus.name]
    server = BusServer(bus, devices, lock, faults, stats, wire=wire)
    server.start()
    try:
        yield Served(config=config, model=model, lock=lock, server=server, devices=devices,
                     faults=faults, stats=stats)
    finally:
        server.stop()


# ---------------------------------------------------------------- a shared fault scenario


@dataclass
class ScenarioResult:
    """What happened: the model's door transitions, the driver's events, unlock outcomes."""

    transitions: list[tuple[int, str]]  # (lock, "opened" | "closed"), in the model's order
    events: list[Any]  # every DoorEvent the driver reported, in order
    confirmed: int
    unconfirmed: int
    pulse_deltas: list[tuple[str, int]]  # (outcome, pulses given by that unlock call)
    final_model: dict[int, bool]  # lock → door open (sensed)
    final_driver: dict[int, bool]


def run_scenario(served: Served, board: Any, device: Any, address: int, locks: int,
                 steps: int, seed: int = 11) -> ScenarioResult:
    """Random unlocks (through the driver), closes and forced opens (through the model), one
    per poll: after each action the driver polls (asked again until a poll gets through, so
    a poll lost to the faults never merges two transitions)."""
    import random

    from drivers.errors import DeviceTimeout, DriverError

    rng = random.Random(seed)
    transitions: list[tuple[int, str]] = []
    events: list[Any] = []
    confirmed = unconfirmed = 0
    pulse_deltas: list[tuple[str, int]] = []

    def is_open(lock: int) -> bool:
        with served.lock:
            return served.model.doors[served.door(address, lock)].open

    def poll() -> None:
        for _ in range(50):
            try:
                batch = board.read_events()
            except DriverError:
                continue
            events.extend(batch.events)
            board.ack_events(batch.next_cursor)
            return
        raise AssertionError("50 polls in a row failed")

    poll()  # baseline
    for _ in range(steps):
        lock = rng.randint(1, locks)
        before = is_open(lock)
        if before:
            with served.lock:
                served.model.close_door(served.door(address, lock))
        elif rng.random() < 0.75:
            pulses = device.pulse_count
            try:
                board.unlock(lock)
                confirmed += 1
                outcome = "confirmed"
            except DeviceTimeout:
                unconfirmed += 1
                outcome = "unconfirmed"
            time.sleep(0.05)  # a reply still on its way has arrived (or never will)
            pulse_deltas.append((outcome, device.pulse_count - pulses))
        else:
            with served.lock:
                served.model.force_door(served.door(address, lock))
        after = is_open(lock)
        if after != before:
            transitions.append((lock, "opened" if after else "closed"))
        poll()
    with served.lock:
        final_model = {n: served.model.doors[served.door(address, n)].open
                       for n in range(1, locks + 1)}
    for _ in range(50):
        try:
            final_driver = {s.lock: s.open for s in board.states()}
            break
        except DriverError:
            continue
    return ScenarioResult(transitions=transitions, events=events, confirmed=confirmed,
                          unconfirmed=unconfirmed, pulse_deltas=pulse_deltas,
                          final_model=final_model, final_driver=final_driver)


def observed_transitions(events: Sequence[Any]) -> list[tuple[int, str]]:
    """The driver's non-inferred door open/close events as (lock, "opened" | "closed")."""
    from firmware_protocol.const import EventType

    names = {EventType.DOOR_OPENED: "opened", EventType.DOOR_CLOSED: "closed"}
    return [(e.lock, names[e.kind]) for e in events if e.kind in names and not e.inferred]
