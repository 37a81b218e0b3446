"""`lendbox demo`: a simulated cabinet, its self-test, then the cabinet application (a real
``lendbox kiosk run`` process) playing a day's story through its HTTP API.

Everything goes through the real bytes: the simulator serves the board protocol on a TCP
port at the RS-485 line rate, and the drivers talk to it exactly as they would to
``/dev/ttyUSB0``. Everything keeps running afterwards so a user can try the kiosk API,
`lendbox diag` and the simulator's control API by hand.
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
        help="simulated 24-door cabinet + kiosk: self-test, a day's story, then keep running",
        description="Start a simulated cabinet, run `lendbox diag selftest` on it, start the "
        "kiosk (lendbox kiosk run) with a stand-in central server, play a story through the "
        "kiosk's HTTP API (QR and card borrowing, a cross-branch return, an offline window "
        "with its credit limits, a power cut and its recovery) and keep everything running "
        "until Ctrl-C.",
    )
    p.add_argument("--config", type=Path, default=DEMO_CONFIG, help="cabinet TOML")
    p.add_argument("--no-wait", action="store_true", help="exit after the story")
    p.add_argument("--control-port", type=int, default=0, help="HTTP control port (0 = free)")
    p.add_argument("--no-network", action="store_true",
                   help="skip part 5: the central server with two branches and two cabinets")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so `lendbox --help` stays fast and needs neither package.
    from drivers.cli import end_progress, format_report, progress_printer
    from drivers.diag import run_selftest
    from drivers.hardware import Hardware
    from simulator import ConfigError, Simulator

    from .kiosk_story import KioskStory
    from .network_story import NetworkStory

    try:
        sim = Simulator.from_file(args.config, control_port=args.control_port)
    except ConfigError as exc:
        print(f"lendbox demo: {exc}", file=sys.stderr)
        return 2
    workdir = tempfile.TemporaryDirectory(prefix="lendbox-demo-")
    hw = None
    story: KioskStory | None = None
    network: NetworkStory | None = None
    try:
        sim.start()
        hw_path = sim.write_hardware_config(Path(workdir.name) / "hardware.toml")
        hw = Hardware.from_file(hw_path)
        print(f"lendbox demo — simulated cabinet {sim.config.id}: "
              f"{len(sim.config.doors)} doors, {len(sim.items)} tagged books")
        for bus, url in sim.bus_urls.items():
            print(f"  bus {bus}: {url}")
        print(f"  control API: {sim.control_url}")
        if sim.camera_url:
            print(f"  camera: {sim.camera_url}")
        if sim.pcsc_socket:
            print(f"  card reader: {sim.card_reader_name!r}, private pcscd socket "
                  f"{sim.pcsc_socket}")
        for device, error in sim.peripheral_errors.items():
            print(f"  {device.replace('_', ' ')}: failed to start — {error}")
        print(f"  hardware config: {hw_path}\n")

        print("== 1. Technician self-test (lendbox diag selftest)")
        started = time.monotonic()
        progress = progress_printer(sys.stdout) if sys.stdout.isatty() else None
        # the per-door inventory pass (~0.5 s a door at 19200 baud) is left to the story below
        report = run_selftest(hw, progress=progress, inventory=False)
        end_progress(sys.stdout)
        print(format_report(report), end="")
        print(f"   ({time.monotonic() - started:.1f} s)\n")

        hw.close()  # the kiosk is the bus master from here on
        hw = None

        print("== 2. The cabinet application starts (lendbox kiosk run) with a stand-in "
              "central server")
        story = KioskStory(sim, Path(workdir.name), sys.stdout)
        story.start()
        print("== 3. A day at the cabinet, through the kiosk's HTTP API")
        story.play()
        print()
        if not args.no_network:
            print("== 5. The central server (lendbox server) with two branches and two "
                  "cabinets")
            network = NetworkStory(Path(workdir.name) / "network", sys.stdout)
            network.workdir.mkdir()
            network.start()
            network.play()
            print()
        assert story.kiosk is not None and story.config is not None
        print("== 6. Everything keeps running. In another terminal:")
        print(f"   curl -s {story.kiosk.url}/api/state        # the kiosk API; docs at "
              f"{story.kiosk.url}/docs")
        print(f"   curl -sN {story.kiosk.url}/api/events      # what the screen shows (SSE)")
        print(f"   .venv/bin/lendbox kiosk check-config {story.config}")
        print(f"   .venv/bin/lendbox diag --hardware {hw_path} devices")
        print(f"   .venv/bin/lendbox diag --hardware {hw_path} selftest   # + one inventory a door")
        if sim.pcsc_socket:
            print(f"   curl -s -X POST -d '{{\"uid\": \"04A1B2C3\"}}' {sim.control_url}/cards/present")
            print(f"   .venv/bin/lendbox diag --hardware {hw_path} card --timeout 10")
        if sim.camera_url:
            print(f"   curl -s -X POST -d '{{\"isbn\": \"9787020002207\"}}' "
                  f"{sim.control_url}/camera/isbn")
            print(f"   .venv/bin/lendbox diag --hardware {hw_path} camera --seconds 3")
        print(f"   .venv/bin/lendbox diag --hardware {hw_path} inventory --door 5")
        print(f"   curl -s {sim.control_url}/state | head -c 600")
        print(f"   curl -s -X POST -d '{{\"door\": 7}}' {sim.control_url}/faults/lock-jammed")
        print(f"   .venv/bin/lendbox diag --hardware {hw_path} selftest --unlock   # names door 7")
        if network is not None and network.server is not None:
            print(f"   curl -s -X POST -H 'Content-Type: application/json' -d "
                  f"'{{\"username\": \"demo-admin\", \"password\": \"demo password 2026\"}}' "
                  f"{network.server.url}/api/auth/login   # the server's staff API")
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
        if network is not None:
            network.stop()
        if story is not None:
            story.stop()
        sim.stop()
        workdir.cleanup()
