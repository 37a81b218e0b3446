"""Reader families: host time of a 30-tag inventory ÷ the emulated wire + air time.

For each family the emulator serves door 1 of ``simulator/cabinets/small.toml`` (30 tags) on a
real TCP port at the family's line rate; the driver runs ``inventory(1)`` (UIDs only, the
cabinet's hot path) ``ROUNDS`` times. The denominator is what the emulator accounted in its
``LinkStats``: request and reply characters at the line rate (FEIG 8E1 = 11 bits, RR3036 8N1 =
10 bits) plus ISO 15693 air time. The reader's firmware time (2 ms per exchange) is device
time, shown separately ("busy"), and so is the second ratio including it. Goal: ≤ 1.10.
Prints figures; asserts nothing.

    .venv/bin/python bench/reader_families.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.families.feig import FeigReader, feig_transport
from drivers.families.rr3036 import RR3036Reader, rr3036_transport
from simulator.families.feig import FeigDeviceWire
from simulator.families.feig import FeigReader as SimFeig
from simulator.families.rr3036 import RR3036DeviceWire, RR3036Module
from tests.families_helpers import serve

ROUNDS = 5


def run(name: str, make_devices, wire, baudrate: int, make_reader) -> None:  # type: ignore[no-untyped-def]
    with serve(make_devices, wire, baudrate=baudrate) as bus:
        reader, transport = make_reader(bus.url)
        try:
            reader.inventory(1)  # connect, warm up
            host = 0.0
            before = (bus.stats.wire_s, bus.stats.air_s, bus.stats.busy_s, bus.stats.exchanges)
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                tags = reader.inventory(1)
                host += time.perf_counter() - t0
                assert len(tags) == 30
            wire = bus.stats.wire_s - before[0]
            air = bus.stats.air_s - before[1]
            busy = bus.stats.busy_s - before[2]
            exchanges = bus.stats.exchanges - before[3]
        finally:
            transport.close()
    n = ROUNDS
    print(f"{name:<28} host {host / n * 1000:7.1f} ms | wire {wire / n * 1000:6.1f} "
          f"air {air / n * 1000:6.1f} busy {busy / n * 1000:6.1f} ms | "
          f"{exchanges / n:4.1f} exchanges | host/(wire+air) {host / (wire + air):5.3f} | "
          f"host/(wire+busy) {host / (wire + busy):5.3f}")


def main() -> None:
    print(f"30-tag inventory, mean of {ROUNDS} (goal host/(wire+air) <= 1.10)")
    for baud in (38400, 115200):
        run(f"FEIG {baud} 8E1", lambda m: [SimFeig(m, 1, address=0)], FeigDeviceWire(), baud,
            lambda url, b=baud: (FeigReader(t := feig_transport(url, baudrate=b)), t))
    run("FEIG 38400 8E1, 4-antenna mux",
        lambda m: [SimFeig(m, 1, address=0, antennas=4)], FeigDeviceWire(), 38400,
        lambda url: (FeigReader(t := feig_transport(url), antennas=4), t))
    run("RR3036 19200 8N1", lambda m: [RR3036Module(m, 1)], RR3036DeviceWire(), 19200,
        lambda url: (RR3036Reader(t := rr3036_transport(url)), t))


if __name__ == "__main__":
    main()
