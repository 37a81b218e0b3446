"""One behavioural suite for every device family (issue 2/6, requirement 4).

Each ``cab`` fixture instance is a small cabinet built in code (``simulator.config.
parse_config``), served by the real ``Simulator`` on free ports, with the drivers built
from ``sim.hardware_config()`` by ``drivers.hardware.Hardware.from_dict`` — exactly what
the kiosk and ``lendbox diag`` do. Every lock-board family (lendbox, cn485, kerong, modbus)
and every reader family (lendbox's built-in reader, feig, rr3036) appears in at least one
pairing, and one cabinet mixes all six on six buses.

Every family runs at 115200 Bd (each family's line rate is configurable; the defaults are
slower) with 100 ms lock pulses, so the whole suite stays fast on two cores.

Pulses are counted on the emulated side, family-neutrally: every coil pulse that moves a
bolt goes through ``CabinetModel.pulse``, which emits UNLOCKED to the model's sink; the
fixture wraps that sink and also records the model's real door transitions (what a person
or a pulse did), the ground truth the drivers' event streams are compared with.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from drivers.hardware import Hardware
from firmware_protocol.const import EventType, Timing
from simulator import Simulator
from simulator.config import parse_config

#: Every family at its fastest documented line rate (FEIG: 115200 8E1, the others 8N1).
BAUD = 115200
#: Coil pulse of every lock (emulated boards and drivers agree).
PULSE_MS = 100
#: How long each lock family's driver waits for an unlock's reply (the drivers' defaults):
#: lendbox pulse + 150 ms; cn485 1.5 s (Open-Locker); Kerong pulse + 1 s; Modbus the ON
#: write's 100 ms.
UNLOCK_TIMEOUT_S = {"lendbox": 0.25, "cn485": 1.5, "kerong": 1.1, "modbus": 0.1}
#: How many times each driver sends one unlock before it gives up: our protocol's transport
#: re-sends the identical frame (``Timing.RETRIES``), the others never re-send an unlock.
#: A reply meant to come "too late" must come after all of them have timed out.
UNLOCK_ATTEMPTS = {"lendbox": Timing.RETRIES + 1, "cn485": 1, "kerong": 1, "modbus": 1}
#: Polled families (no event buffer on the board): events come from ``PolledEvents``.
POLLED = {"cn485", "kerong", "modbus"}


def _lock_board(family: str, address: int, bus: str, locks: int, antennas: int = 0
                ) -> dict[str, Any]:
    board: dict[str, Any] = {"address": address, "bus": bus, "locks": locks,
                             "serial": f"{family.upper()}-{address:02d}"}
    if family == "lendbox":
        board["antennas"] = antennas
        board["options"] = {"pulse_ms": PULSE_MS}
    elif family == "cn485":  # pulse_s: the emulated board's; feedback: both sides
        board["options"] = {"pulse_s": PULSE_MS / 1000, "feedback": "closed_is_11"}
    elif family == "kerong":  # pulse_s: the unit's unlock time; pulse_ms: what the driver sets
        board["options"] = {"pulse_s": PULSE_MS / 1000, "pulse_ms": PULSE_MS}
    elif family == "modbus":  # host-timed coil pulse; register map as in mixed.toml
        board["options"] = {"pulse_ms": PULSE_MS, "lock_coils_start": 0,
                            "door_inputs_start": 0, "door_open_when": True}
    return board


def _door(number: int, board: int, lock: int, *, spring: bool, items: int,
          reader: str | None = None, antenna: int = 1) -> dict[str, Any]:
    door: dict[str, Any] = {"number": number, "board": board, "lock": lock,
                            "antenna": antenna, "spring": spring, "items": items,
                            "capacity": 10}
    if reader is not None:
        door["reader"] = reader
    return door


def pair_config(lock_family: str, reader_family: str) -> dict[str, Any]:
    """Three doors on one lock board of ``lock_family``, read by ``reader_family``: doors 1
    and 2 spring open when unlocked, door 3 must be pulled open by a person."""
    buses = [{"name": f"{lock_family}-1", "family": lock_family, "baudrate": BAUD}]
    board = _lock_board(lock_family, 1, f"{lock_family}-1", 3,
                        antennas=3 if reader_family == "lendbox" else 0)
    readers: list[dict[str, Any]] = []
    if reader_family == "feig":
        buses.append({"name": "feig-1", "family": "feig", "baudrate": BAUD})
        readers.append({"name": "feig", "bus": "feig-1", "address": 0, "antennas": 3})
    elif reader_family == "rr3036":  # one module per antenna (docs/families.md)
        buses.append({"name": "rr3036-1", "family": "rr3036", "baudrate": BAUD})
        readers += [{"name": f"rr-{n}", "bus": "rr3036-1", "address": n} for n in (1, 2, 3)]
    doors = []
    for n, items in zip((1, 2, 3), (5, 3, 2), strict=True):
        reader = antenna = None
        if reader_family == "feig":
            reader, antenna = "feig", n
        elif reader_family == "rr3036":
            reader, antenna = f"rr-{n}", 1
        doors.append(_door(n, 1, n, spring=n != 3, items=items, reader=reader,
                           antenna=antenna if antenna is not None else n))
    return {"cabinet": {"id": f"{lock_family}-{reader_family}", "seed": 42},
            "buses": buses, "boards": [board], "readers": readers, "doors": doors,
            "items": {"seed": 9, "owner_library": "CN-440300",
                      "other_libraries": ["CN-440305"], "other_share": 0.3}}


def mixed_config() -> dict[str, Any]:
    """Every family at once (like simulator/cabinets/mixed.toml, plus one of our boards):
    each lock board drives a sprung door and a door a person pulls open; doors are read by
    our board's built-in reader, a FEIG multiplexer and single-antenna RR3036 modules."""
    buses = [{"name": f"{f}-1", "family": f, "baudrate": BAUD}
             for f in ("lendbox", "cn485", "kerong", "modbus", "feig", "rr3036")]
    boards = [_lock_board("lendbox", 1, "lendbox-1", 2, antennas=2),
              _lock_board("cn485", 2, "cn485-1", 2),
              _lock_board("kerong", 3, "kerong-1", 2),
              _lock_board("modbus", 4, "modbus-1", 2)]
    readers = [{"name": "feig", "bus": "feig-1", "address": 0, "antennas": 4},
               {"name": "rr-a", "bus": "rr3036-1", "address": 1},
               {"name": "rr-b", "bus": "rr3036-1", "address": 2},
               {"name": "rr-c", "bus": "rr3036-1", "address": 3}]
    doors = [_door(1, 1, 1, spring=True, items=4, antenna=1),  # our board's own antenna
             _door(2, 1, 2, spring=False, items=2, reader="feig", antenna=3),
             _door(3, 2, 1, spring=True, items=3, reader="rr-a"),
             _door(4, 2, 2, spring=False, items=2, reader="feig", antenna=1),
             _door(5, 3, 1, spring=True, items=3, reader="feig", antenna=2),
             _door(6, 3, 2, spring=False, items=2, reader="rr-b"),
             _door(7, 4, 1, spring=True, items=3, reader="feig", antenna=4),
             _door(8, 4, 2, spring=False, items=2, reader="rr-c")]
    return {"cabinet": {"id": "mixed-all", "seed": 2606}, "buses": buses, "boards": boards,
            "readers": readers, "doors": doors,
            "items": {"seed": 7, "owner_library": "CN-440300",
                      "other_libraries": ["CN-440303"], "other_share": 0.3}}


#: (id, config builder): every lock family and every reader family appears.
CABINETS: dict[str, Callable[[], dict[str, Any]]] = {
    "lendbox+lendbox": lambda: pair_config("lendbox", "lendbox"),
    "cn485+rr3036": lambda: pair_config("cn485", "rr3036"),
    "kerong+feig": lambda: pair_config("kerong", "feig"),
    "modbus+feig": lambda: pair_config("modbus", "feig"),
    "mixed": mixed_config,
}


@dataclass
class Cabinet:
    """A running simulated cabinet and the drivers built from its hardware config."""

    name: str
    sim: Simulator
    hw: Hardware
    pulses: Counter[int] = field(default_factory=Counter)  # door → bolt-moving pulses
    transitions: list[tuple[int, str]] = field(default_factory=list)  # (door, opened|closed)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------ what the cabinet has
    def lock_family(self, door: int) -> str:
        bus = self.hw.bus_of(self.hw.door(door).board)
        return next(b.family for b in self.hw.spec.buses if b.name == bus)

    def sprung(self, door: int) -> bool:
        return self.sim.config.door(door).spring

    @property
    def doors(self) -> list[int]:
        return sorted(self.hw.doors)

    def door_pairs(self) -> list[tuple[int, int, int]]:
        """(board, sprung door, pulled door) for every lock board."""
        out = []
        for address in sorted(self.hw.boards):
            doors = self.hw.doors_of(address)
            sprung = [d for d in doors if self.sprung(d)]
            pulled = [d for d in doors if not self.sprung(d)]
            out.append((address, sprung[0], pulled[0]))
        return out

    def transitions_of(self, doors: list[int]) -> list[tuple[int, str]]:
        with self._lock:
            return [t for t in self.transitions if t[0] in doors]

    def pulse_count(self, door: int) -> int:
        with self._lock:
            return self.pulses[door]

    def door_open(self, door: int) -> bool:
        with self.sim.lock:
            return self.sim.model.door(door).sensed_open


def _record(cab: Cabinet, sink: Callable[..., None]) -> Callable[..., None]:
    def recorder(board: int, kind: EventType, lock: int, at: float) -> None:
        door = cab.sim.model.board_door(board, lock)
        if door is not None:
            with cab._lock:
                if kind is EventType.UNLOCKED:
                    cab.pulses[door.number] += 1
                elif kind is EventType.DOOR_OPENED:
                    cab.transitions.append((door.number, "opened"))
                elif kind is EventType.DOOR_CLOSED:
                    cab.transitions.append((door.number, "closed"))
        sink(board, kind, lock, at)

    return recorder


@pytest.fixture(params=list(CABINETS))
def cab(request: pytest.FixtureRequest) -> Iterator[Cabinet]:
    """A started simulator and its Hardware; both always stopped/closed."""
    config = parse_config(CABINETS[request.param](), source=f"<{request.param}>")
    sim = Simulator(config, control_port=None)
    sim.start()
    hw = None
    try:
        hw = Hardware.from_dict(sim.hardware_config(), backoff_s=(0.05, 0.2))
        cabinet = Cabinet(name=request.param, sim=sim, hw=hw)
        with sim.lock:
            sim.model.sink = _record(cabinet, sim.model.sink)
        yield cabinet
    finally:
        if hw is not None:
            _at_once([bus.close for bus in hw.buses.values()])
            hw.close()
        sim.stop()


def _at_once(calls: list[Callable[[], object]]) -> None:
    """Run ``calls`` in parallel and wait for all (closing a socket:// port takes pyserial
    0.3 s; a cabinet has up to six)."""
    threads = [threading.Thread(target=call) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)


def until(condition: Callable[[], Any], timeout_s: float = 10.0, what: str = "") -> Any:
    """Poll ``condition`` until it is truthy (returns it) or fail after ``timeout_s``.

    A deadline only bounds a hang; no assertion depends on how long anything took."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.01)
