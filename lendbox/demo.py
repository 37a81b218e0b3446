"""`lendbox demo`: a simulated cabinet, its self-test and a short borrowing story.

Everything goes through the real bytes: the simulator serves the board protocol on a TCP
port at the RS-485 line rate, and the drivers talk to it exactly as they would to
``/dev/ttyUSB0``. The simulator keeps running afterwards so a user can try `lendbox diag`
and the control API by hand.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "simulator" / "cabinets" / "demo.toml"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="simulated 24-door cabinet: self-test, a borrowing story, then keep running",
        description="Start a simulated cabinet, run `lendbox diag selftest` on it, play a "
        "scripted story (a door opens, two books are taken, the door closes, the inventory "
        "difference is printed) and keep the simulator running until Ctrl-C.",
    )
    p.add_argument("--config", type=Path, default=DEMO_CONFIG, help="cabinet TOML")
    p.add_argument("--door", type=int, default=3, help="the door the story opens")
    p.add_argument("--no-wait", action="store_true", help="exit after the story")
    p.add_argument("--control-port", type=int, default=0, help="HTTP control port (0 = free)")
    p.set_defaults(func=run)


def _title(tag: Any, titles: dict[str, str]) -> str:
    item = tag.item_id or "(unreadable tag)"
    title = titles.get(item or "", "")
    return f"{item} {title}".rstrip()


def run(args: argparse.Namespace) -> int:
    # Imported here so `lendbox --help` stays fast and needs neither package.
    from drivers.cli import format_report
    from drivers.diag import run_selftest
    from drivers.hardware import Hardware
    from drivers.rfid import TagCache, inventory_door
    from simulator import ConfigError, Simulator

    try:
        sim = Simulator.from_file(args.config, control_port=args.control_port)
    except ConfigError as exc:
        print(f"lendbox demo: {exc}", file=sys.stderr)
        return 2
    workdir = tempfile.TemporaryDirectory(prefix="lendbox-demo-")
    hw = None
    try:
        sim.start()
        hw_path = sim.write_hardware_config(Path(workdir.name) / "hardware.toml")
        hw = Hardware.from_file(hw_path)
        titles = {i.item_id: i.title or "" for i in sim.items.values()}
        print(f"lendbox demo — simulated cabinet {sim.config.id}: "
              f"{len(sim.config.doors)} doors, {len(sim.items)} tagged books")
        for bus, url in sim.bus_urls.items():
            print(f"  bus {bus}: {url}")
        print(f"  control API: {sim.control_url}")
        print(f"  hardware config: {hw_path}\n")

        print("== 1. Technician self-test (lendbox diag selftest)")
        started = time.monotonic()
        print(format_report(run_selftest(hw)), end="")
        print(f"   ({time.monotonic() - started:.1f} s)\n")

        door = hw.door(args.door)
        reader, board = hw.reader_of(door.number), hw.board_of(door.number)
        cache = TagCache()
        print(f"== 2. A reader borrows two books from door {door.number}")
        before = inventory_door(reader, door.antenna, cache)
        print(f"   door {door.number} holds {len(before)} books:")
        for tag in before:
            print(f"     {_title(tag, titles)}  (RSSI {tag.rssi} dBm)")
        board.poll_events()  # start the story with an empty event queue
        result = board.unlock(door.lock)
        print(f"   unlock door {door.number}: pulsed, door "
              f"{'open' if result.door_open else 'still closed'}")
        taken = [t.item_id for t in before[:2] if t.item_id]
        for item_id in taken:
            sim.take_item(item_id)
            print(f"   the reader takes {item_id} {titles.get(item_id, '')}")
        sim.close_door(door.number)
        print(f"   door {door.number} closed")
        for event in board.poll_events().events:
            print(f"   board event #{event.seq}: {event.kind.name.lower()} (lock {event.lock})")
        after = inventory_door(reader, door.antenna, cache)
        gone = {t.uid for t in before} - {t.uid for t in after}
        added = {t.uid for t in after} - {t.uid for t in before}
        print(f"   inventory after: {len(after)} books; difference:")
        for tag in before:
            if tag.uid in gone:
                print(f"     - {_title(tag, titles)}  → loan")
        for tag in after:
            if tag.uid in added:
                print(f"     + {_title(tag, titles)}  → return")
        print()
        print("== 3. The simulator keeps running. In another terminal:")
        print(f"   .venv/bin/lendbox diag --hardware {hw_path} devices")
        print(f"   .venv/bin/lendbox diag --hardware {hw_path} inventory --door 5")
        print(f"   curl -s {sim.control_url}/state | head -c 600")
        print(f"   curl -s -X POST -d '{{\"door\": 7}}' {sim.control_url}/faults/lock-jammed")
        print(f"   .venv/bin/lendbox diag --hardware {hw_path} selftest --unlock   # names door 7")
        hw.close()
        hw = None
        if args.no_wait:
            return 0
        print("Press Ctrl-C to stop.")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        if hw is not None:
            hw.close()
        sim.stop()
        workdir.cleanup()
