"""``lendbox sim``: run a simulated cabinet until Ctrl-C / SIGTERM.

Why a command: the kiosk, ``lendbox diag`` and a technician's laptop connect to the printed
URLs exactly as to real hardware; ``--hardware-out`` writes the hardware config they read.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``sim`` command to the ``lendbox`` parser."""
    p = subparsers.add_parser(
        "sim", help="run a simulated cabinet (board emulators on TCP/pty, control API)",
        description="Run a simulated cabinet: board emulators on free TCP ports (and ptys), "
                    "an HTTP/JSON control API, until Ctrl-C or SIGTERM.")
    p.add_argument("--config", required=True, type=Path, help="cabinet TOML file")
    p.add_argument("--hardware-out", type=Path, default=None,
                   help="write the hardware config (bus URLs, boards, doors) here")
    p.add_argument("--pty", action="store_true", help="also serve each bus on a pty")
    p.add_argument("--control-port", type=int, default=0,
                   help="port of the HTTP control API (default: a free one)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the simulator, print where to connect, wait for a signal, stop cleanly."""
    from .simulator import Simulator

    try:
        sim = Simulator.from_file(args.config, pty=args.pty, control_port=args.control_port)
    except ConfigError as exc:
        print(f"lendbox sim: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sim.start()
        except OSError as exc:
            print(f"lendbox sim: cannot start: {exc}", file=sys.stderr)
            return 1
        print(f"cabinet {sim.config.id}: {len(sim.config.doors)} doors, "
              f"{len(sim.items)} items", flush=True)
        for name, url in sim.bus_urls.items():
            print(f"bus {name}: {url}", flush=True)
        for name, path in sim.pty_paths.items():
            print(f"bus {name} pty: {path}", flush=True)
        print(f"control: {sim.control_url}", flush=True)
        if sim.camera_url:
            print(f"camera: {sim.camera_url}", flush=True)
        if sim.pcsc_socket:
            print(f"card reader: {sim.card_reader_name!r} on a private pcscd, socket "
                  f"{sim.pcsc_socket}", flush=True)
            print(f"  PC/SC clients (pcsc_scan, opensc-tool …) need: "
                  f"PCSCLITE_CSOCK_NAME={sim.pcsc_socket}", flush=True)
        for device, error in sim.peripheral_errors.items():
            name = device.replace("_", " ")
            print(f"{name}: failed to start — {error}", flush=True)
        if args.hardware_out is not None:
            written = sim.write_hardware_config(args.hardware_out)
            print(f"hardware config: {written}", flush=True)
        print("running; Ctrl-C or SIGTERM to stop", flush=True)
        while not done.wait(0.5):
            pass
        print("stopping", flush=True)
        return 0
    finally:
        sim.stop()
        for s, h in previous.items():
            signal.signal(s, h)
