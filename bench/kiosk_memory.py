"""Kiosk resident memory after many sessions, and its start-up time.

    python -m bench.kiosk_memory [--sessions 10000] [--every 1000] [--restarts 5]

A real kiosk process (``lendbox kiosk run``, via ``lendbox.kiosk_kit.KioskProcess``) drives
the small simulated cabinet (served by this process), offline (its server is a port nobody
listens on). Each session goes over the HTTP API like the touchscreen's: a fresh QR
credential → open the empty door 4 → the door springs open → the person closes it → the
kiosk counts it (``client.wait``) → finish. The kiosk's VmRSS (``/proc/PID/status``) is read
at start, every ``--every`` sessions and at the end, with the latency of ``GET /api/state``
(what a screen polls; it counts the outbox) to show whether anything grows with the
history.

Start-up (``KioskProcess.startup_s``: spawn → "kiosk ready", interpreter and imports
included): the first start on an empty ledger (it counts every door), then restarts on the
existing ledger (median of ``--restarts``), both before the sessions and after them.

Goals: RSS ≤ 120 MB after the sessions; start-up ≤ 2 s. Every process started here is
stopped and the temporary folder removed. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.kiosk_common import (  # noqa: E402
    BUS,
    SMALL,
    machine_load,
    median,
    offline_cabinet,
    verdict,
)

GOAL_RSS_MB = 120.0
GOAL_STARTUP_S = 2.0
DOOR = 4


def rss_mb(pid: int) -> float:
    """VmRSS of a process, in MB (MiB, as the kernel's kB are KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _door_open(sim) -> bool:  # type: ignore[no-untyped-def]
    with sim.lock:
        return bool(sim.model.door(DOOR).open)


def state_latency_ms(client, n: int = 20) -> float:  # type: ignore[no-untyped-def]
    """Median round trip of GET /api/state."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.state()
        times.append(time.perf_counter() - t0)
    return median(times) * 1000


def restarts(config: Path, log: Path, n: int, started: list) -> list[float]:  # type: ignore[type-arg]
    """Start-up times of ``n`` starts on the existing ledger (each stopped again)."""
    from lendbox.kiosk_kit import KioskProcess

    out = []
    for _ in range(n):
        kiosk = KioskProcess(config, log=log)
        started.append(kiosk)
        try:
            kiosk.start()
            out.append(kiosk.startup_s)
        finally:
            kiosk.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--every", type=int, default=1000, help="RSS reading interval (sessions)")
    ap.add_argument("--restarts", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from lendbox.kiosk_kit import KioskClient, KioskProcess
    from simulator import Simulator

    rng = random.Random(args.seed)
    print(f"machine: {machine_load()}")
    readings: list[tuple[int, float, float]] = []  # (sessions, RSS MB, /api/state ms)
    started: list[KioskProcess] = []
    with tempfile.TemporaryDirectory(prefix="lendbox-bench-mem-") as tmp:
        work = Path(tmp)
        log = work / "kiosk.log"
        sim = Simulator.from_file(SMALL, control_port=None).start()
        try:
            config, qr = offline_cabinet(work, sim)
            first = KioskProcess(config, log=log)
            started.append(first)
            sim.reset_link_stats(BUS)
            try:
                first.start()
                bus = sim.link_stats(BUS)  # the doors' first count, as the emulator spent it
            finally:
                first.stop()
            first_s = first.startup_s
            count_s = float(bus["wire_s"]) + float(bus["busy_s"])
            print(f"first start (empty ledger, every door counted): {first_s:.2f} s, of which "
                  f"the emulated bus time (wire + air + board) is {count_s:.2f} s "
                  f"({bus['exchanges']} exchanges)")
            before = restarts(config, log, args.restarts, started)
            print(f"restarts before the sessions: {', '.join(f'{s:.2f}' for s in before)} s")

            kiosk = KioskProcess(config, log=log)
            started.append(kiosk)
            client = None
            t_start = time.monotonic()
            try:
                kiosk.start()
                client = KioskClient(kiosk.url)
                client.wait_idle()
                readings.append((0, rss_mb(kiosk.pid), state_latency_ms(client)))
                print(f"  {0:6d} sessions: RSS {readings[-1][1]:6.1f} MB | GET /api/state "
                      f"{readings[-1][2]:5.1f} ms", flush=True)
                for i in range(args.sessions):
                    client.start_session("qr", qr.token(f"R{rng.randrange(200):04d}"))
                    client.open_door(DOOR)  # answers after the board's reply (the pulse)
                    deadline = time.monotonic() + 3
                    while not _door_open(sim):
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"door {DOOR} did not open")
                        time.sleep(0.005)
                    sim.close_door(DOOR)
                    client.wait(lambda s: not s["doors"], 10, f"door {DOOR} counted")
                    client.finish()
                    done = i + 1
                    if done % args.every == 0 or done == args.sessions:
                        rate = done / (time.monotonic() - t_start)
                        readings.append((done, rss_mb(kiosk.pid), state_latency_ms(client)))
                        print(f"  {done:6d} sessions: RSS {readings[-1][1]:6.1f} MB | "
                              f"GET /api/state {readings[-1][2]:5.1f} ms | {rate:.2f} "
                              f"sessions/s", flush=True)
                health = client.health()
            finally:
                if client is not None:
                    client.close()
                kiosk.stop()
            after = restarts(config, log, args.restarts, started)
            print(f"restarts after the sessions: {', '.join(f'{s:.2f}' for s in after)} s")
        finally:
            for k in started:  # each was stopped where it was started; make sure
                k.stop()
            sim.stop()
    alive = [k.pid for k in started if k.proc is not None and k.proc.poll() is None]

    start_rss, end_rss = readings[0][1], readings[-1][1]
    peak = max(r[1] for r in readings)
    print()
    print(f"kiosk memory and start-up, {readings[-1][0]} sessions over HTTP on door {DOOR} "
          f"(offline; {health['last_seq']} ledger events, {health['pending_events']} unsynced)")
    print(f"  RSS at start {start_rss:.1f} MB, after {readings[-1][0]} sessions {end_rss:.1f} MB "
          f"(peak reading {peak:.1f} MB, growth {end_rss - start_rss:+.1f} MB)   goal ≤ "
          f"{GOAL_RSS_MB:.0f} MB: {verdict(peak <= GOAL_RSS_MB)}")
    print(f"  GET /api/state median: {readings[0][2]:.1f} ms at start, {readings[-1][2]:.1f} ms "
          f"after {readings[-1][0]} sessions")
    print(f"  start-up, first start (empty ledger, counts every door): {first_s:.2f} s (emulated "
          f"bus time of the counts {count_s:.2f} s)   goal ≤ {GOAL_STARTUP_S:.0f} s: "
          f"{verdict(first_s <= GOAL_STARTUP_S)}")
    print(f"  start-up, restart on the existing ledger (median of {args.restarts}): "
          f"{median(before):.2f} s with 0 sessions, {median(after):.2f} s after "
          f"{readings[-1][0]} sessions   goal ≤ {GOAL_STARTUP_S:.0f} s: "
          f"{verdict(max(median(before), median(after)) <= GOAL_STARTUP_S)}")
    print(f"  processes: {len(started)} kiosk processes started, "
          f"{len(started) - len(alive)} stopped{f', STILL RUNNING: {alive}' if alive else ''}; "
          f"temporary folder removed")
    print(f"machine: {machine_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
