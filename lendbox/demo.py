"""`lendbox demo`: a simulated cabinet, its self-test, then the cabinet application (a real
``lendbox kiosk run`` process) playing a day's story through its HTTP API.

Everything goes through the real bytes: the simulator serves the board protocol on a TCP
port at the RS-485 line rate, and the drivers talk to it exactly as they would to
``/dev/ttyUSB0``. Everything keeps running afterwards so a user can try the kiosk API,
`lendbox diag` and the simulator's control API by hand.

``--screens`` goes straight to the network of part 5 (a real server, its ILS and cabinets A
and B) and prints the URLs of the three faces: each cabinet's reader touchscreen, the
technician pages of cabinet A and the central console; ``--story`` first plays a day of
traffic on it (:mod:`lendbox.day_story`) so every page has something to show.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "simulator" / "cabinets" / "demo.toml"
#: The technician password of cabinet A in the demo (printed with the URLs).
TECH_PASSWORD = "demo technician 2026"
#: What the day left on each face (printed after ``--story``).
LOOK_AT = """   what the day left to look at:
     cabinet A's touchscreen: browse the doors (?lang=en for English); door 3 is jammed
     cabinet B's touchscreen: return a book without logging in
     technician pages: devices and counters, recent events and alarms; test-unlock door 3,
       or run the self-test with test-unlocks: it names the jammed lock of door 3
     console: both cabinets, A's alarm; the exceptions queue (a loan to a blocked reader);
       holds; the 荐购 in review; statistics: loans, 通借通还 flow, offline share, 满意率"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="simulated cabinets, kiosks and central server: the stories, then the URLs of "
        "the screens, kept running",
        description="Start a simulated cabinet, run `lendbox diag selftest` on it, start the "
        "kiosk (lendbox kiosk run) with a stand-in central server, play a story through the "
        "kiosk's HTTP API (QR and card borrowing, a cross-branch return, an offline window "
        "with its credit limits, a power cut and its recovery), then the central server with "
        "two cabinets; print the URLs of the screens (each cabinet's reader touchscreen, the "
        "technician pages, the central console) and keep everything running until Ctrl-C.",
    )
    p.add_argument("--config", type=Path, default=DEMO_CONFIG, help="cabinet TOML")
    p.add_argument("--no-wait", action="store_true", help="exit after the story")
    p.add_argument("--control-port", type=int, default=0, help="HTTP control port (0 = free)")
    p.add_argument("--no-network", action="store_true",
                   help="skip part 5: the central server with two branches and two cabinets")
    p.add_argument("--screens", action="store_true",
                   help="skip parts 1-4 and the network's story: start the central server and "
                   "cabinets A and B, print the URLs of the screens and keep running")
    p.add_argument("--story", action="store_true",
                   help="--screens, after playing a day of traffic (borrows, returns, a holds "
                   "pickup, an offline window, a jammed lock, ratings, a 荐购) on the network")
    p.add_argument("--open", action="store_true",
                   help="also open the screens in this machine's browser (chromium or "
                   "xdg-open), if it has one; the browser is left open afterwards")
    p.set_defaults(func=run)


def _interrupt(signum: int, frame: Any) -> None:
    # SIGTERM (a test, systemd) stops the demo like Ctrl-C: through every `finally`, so each
    # child process is stopped by its pid and the temporary folder goes.
    raise KeyboardInterrupt


def _wait_for_ctrl_c() -> None:
    print("Press Ctrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


def run(args: argparse.Namespace) -> int:
    if args.story:
        args.screens = True
    if args.screens and args.no_network:
        print("lendbox demo: --screens and --story need the network (drop --no-network)",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run_screens(args) if args.screens else _run_all(args)
    except KeyboardInterrupt:
        return 130


def _run_all(args: argparse.Namespace) -> int:
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
            tech_password = arm_technician(network)
            network.play()
            print()
            print("== 6. The screens")
            print_screens(network, tech_password, open_browser=args.open)
            print()
        assert story.kiosk is not None and story.config is not None
        print(f"== {6 if network is None else 7}. Everything keeps running. In another terminal:")
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
        _wait_for_ctrl_c()
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


def _run_screens(args: argparse.Namespace) -> int:
    from .day_story import DayStory
    from .network_story import NetworkStory

    workdir = tempfile.TemporaryDirectory(prefix="lendbox-demo-")
    network = NetworkStory(Path(workdir.name), sys.stdout)
    day: DayStory | None = None
    played = True
    try:
        print("lendbox demo — the screens: the central server (lendbox server), its ILS "
              "(lendbox ils-sim) and two simulated cabinets, each run by lendbox kiosk run",
              flush=True)
        network.start()
        tech_password = arm_technician(network)
        print("== The network: one library, a city and a county branch, two cabinets",
              flush=True)
        network.build_network()
        if args.story:
            print("\n== A day of traffic (lendbox demo --story)", flush=True)
            day = DayStory(network)
            played = day.play()
        print("\n== The screens")
        print_screens(network, tech_password, open_browser=args.open)
        if args.story:
            print(LOOK_AT, flush=True)
        if not args.no_wait:
            _wait_for_ctrl_c()
        return 0 if played else 1
    finally:
        if day is not None:
            day.close()
        network.stop()
        workdir.cleanup()


def arm_technician(network: Any) -> str | None:
    """Give cabinet A (its config is written, its kiosk not started yet) the demo technician
    password; the password, or None when this kiosk has no technician login."""
    try:
        from kiosk.config import check_config
        from kiosk.tech_auth import hash_password
    except ImportError:
        return None
    from .kiosk_kit import add_technician_password_hash

    config = network.cabinets[0].config
    before = config.read_text(encoding="utf-8")
    add_technician_password_hash(config, hash_password(TECH_PASSWORD))
    if check_config(config):  # a kiosk that does not know [technician] yet would not start
        config.write_text(before, encoding="utf-8")
        return None
    return TECH_PASSWORD


def screen_urls(network: Any) -> dict[str, str]:
    """Page name → URL of the three faces on the running network."""
    a, b = (cab.kiosk.url.rstrip("/") for cab in network.cabinets)
    server = network.server.url.rstrip("/")
    return {"reader A": a + "/", "reader B": b + "/", "technician A": a + "/tech/login",
            "console": server + "/console/login"}


def print_screens(network: Any, tech_password: str | None, *, open_browser: bool) -> None:
    from .network_story import ADMIN, ADMIN_PASSWORD

    urls = screen_urls(network)
    a, b = network.cabinets
    tech = (f"password: {tech_password}" if tech_password else
            "(no technician login in this checkout: kiosk.tech_auth is missing)")
    lines = [
        ("reader touchscreen, cabinet A", urls["reader A"],
         f"{a.id}, city branch; 中文, English one tap away"),
        ("reader touchscreen, cabinet B", urls["reader B"], f"{b.id}, county branch"),
        ("technician pages, cabinet A", urls["technician A"], tech),
        ("central console", urls["console"], f"user: {ADMIN}  password: {ADMIN_PASSWORD}"),
    ]
    for name, url, note in lines:
        print(f"   {name + ':':<32}{url}\n   {'':<32}{note}")
    print("   (a cabinet shows its touchscreen full-screen: chromium --kiosk URL)", flush=True)
    if open_browser:
        print(f"   {open_in_browser(list(urls.values()))}", flush=True)


def open_in_browser(urls: list[str]) -> str:
    """Open ``urls`` in this machine's browser, if it has one and a display; what happened.
    Not waited for nor stopped: the browser is the user's."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "--open: no display here; open the URLs above by hand"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    commands = ([[chromium, "--new-window", *urls]] if chromium else
                [["xdg-open", url] for url in urls] if shutil.which("xdg-open") else [])
    if not commands:
        return "--open: neither chromium nor xdg-open is installed; open the URLs by hand"
    for cmd in commands:
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    return f"--open: opened in {Path(commands[0][0]).name}"
