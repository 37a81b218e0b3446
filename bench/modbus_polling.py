"""Modbus I/O lock boards: what polling costs on a full bus, and what an unlock costs the host.

31 modules (4 locks each) on one 9600-baud RS-485 bus, pymodbus's server as the modules behind
the lendbox pacing proxy, the real driver (pymodbus client) polling them all in a loop. Measured
in one run; printed, not asserted:

* bus utilisation while polling: emulated wire time ÷ wall time (1.0 = the line never idles);
* door-event latency: a door forced open at a random moment → its DOOR_OPENED event out of the
  driver (mean and worst case over the samples; the bound is about one poll round);
* unlock host overhead ÷ pulse time (goal ≤ 0.1): unlock wall time − pulse, ÷ pulse. The ON
  write runs inside the pulse; after it come the OFF write and one state read (2 exchanges
  of ~17 ms on the wire at 9600 baud), which the figure includes.

    .venv/bin/python bench/modbus_polling.py [--modules 31] [--samples 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.errors import DriverError
from drivers.families.modbus import ModbusIoBoard, ModbusIoMap, ModbusLink
from firmware_protocol.const import EventType
from simulator import parse_config
from simulator.families.modbus import ModbusBus, ModbusModule
from simulator.model import CabinetModel

LOCKS = 4
BAUD = 9600


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", type=int, default=31)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--pulse-ms", type=int, default=400)
    args = ap.parse_args()
    n = args.modules
    cfg = parse_config({
        "cabinet": {"id": "modbus-bench"},
        "buses": [{"name": "mb", "baudrate": BAUD}],
        "boards": [{"address": u, "bus": "mb", "locks": LOCKS, "antennas": 1}
                   for u in range(1, n + 1)],
        "doors": [{"number": (u - 1) * LOCKS + k, "board": u, "lock": k, "antenna": 1,
                   "spring": False} for u in range(1, n + 1) for k in range(1, LOCKS + 1)],
    })
    model = CabinetModel(cfg, time.monotonic)
    bus = ModbusBus(cfg.buses[0], model,
                    [ModbusModule(unit=u, locks=LOCKS) for u in range(1, n + 1)]).start()
    link = ModbusLink(bus.url, baudrate=BAUD, name="mb")
    boards = [ModbusIoBoard(link, ModbusIoMap(unit=u, locks=LOCKS, pulse_ms=args.pulse_ms))
              for u in range(1, n + 1)]
    try:
        for b in boards:
            b.states()  # baseline
        # ---- polling: utilisation and latency
        seen: dict[tuple[int, int], float] = {}
        stop = threading.Event()
        rounds = [0]

        def poll() -> None:
            while not stop.is_set():
                for b in boards:
                    try:
                        for e in b.poll_events().events:
                            if e.kind is EventType.DOOR_OPENED:
                                seen[(b.unit, e.lock)] = time.perf_counter()
                    except DriverError:
                        pass
                rounds[0] += 1

        bus.stats.wire_s = 0.0
        t0 = time.perf_counter()
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        rng = random.Random(1)
        latencies = []
        for _ in range(args.samples):
            time.sleep(rng.uniform(0.05, 0.6))
            unit, lock = rng.randint(1, n), rng.randint(1, LOCKS)
            with bus.model_lock:
                door = model.board_door(unit, lock)
                assert door is not None
                if door.open:
                    model.close_door(door.number)
                    continue
                model.force_door(door.number)
            at = time.perf_counter()
            while (unit, lock) not in seen or seen[(unit, lock)] < at:
                time.sleep(0.001)
            latencies.append(seen[(unit, lock)] - at)
            seen.pop((unit, lock))
        wall = time.perf_counter() - t0
        wire = bus.stats.wire_s
        stop.set()
        poller.join(10)
        round_s = wall / max(rounds[0], 1)
        print(f"{n} modules × {LOCKS} locks, one {BAUD}-baud bus, pymodbus client + server")
        print(f"  poll round (all {n} modules): {round_s * 1000:7.1f} ms "
              f"({round_s / n * 1000:.1f} ms per module; wire floor "
              f"{(8 + 6) * 10 / BAUD * 1000:.1f} ms + module time)")
        print(f"  bus utilisation while polling: {wire / wall:6.1%} "
              f"(wire {wire:.2f} s of {wall:.2f} s)")
        print(f"  door-event latency over {len(latencies)} samples: mean "
              f"{statistics.mean(latencies) * 1000:.0f} ms, worst "
              f"{max(latencies) * 1000:.0f} ms")
        # ---- unlock overhead (poller stopped: the bus is the unlock's)
        ratios = []
        for i in range(5):
            b = boards[i % n]
            t = time.perf_counter()
            b.unlock(1 + i % LOCKS)
            host = time.perf_counter() - t
            ratios.append((host - args.pulse_ms / 1000) / (args.pulse_ms / 1000))
            with bus.model_lock:
                door = model.board_door(b.unit, 1 + i % LOCKS)
                assert door is not None
                if door.open:
                    model.close_door(door.number)
        verdict = "meets" if max(ratios) <= 0.1 else "misses"
        print(f"  unlock host overhead ÷ pulse ({args.pulse_ms} ms): mean "
              f"{statistics.mean(ratios):.3f}, worst {max(ratios):.3f} — {verdict} the goal "
              f"≤ 0.1")
        edges = sum(bus.device.rising_edges.values())
        print(f"  coil rising edges seen by the modules: {edges} for 5 unlocks")
    finally:
        link.close()
        bus.stop()


if __name__ == "__main__":
    main()
