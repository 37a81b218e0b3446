"""``lendbox ils-sim``: run the emulated ILS (a SIP2 server) until Ctrl-C / SIGTERM.

Why a command: the demo and tests in other processes start it like any library system, wait
for ``ils-sim ready HOST:PORT control URL`` on stdout (``lendbox.child.ReadyChild``) and drive
its fault switches over the HTTP control port (see simulator/ils_sim.py).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``ils-sim`` command to the ``lendbox`` parser."""
    p = subparsers.add_parser(
        "ils-sim", help="run an emulated library system (SIP2 server) with fault switches",
        description="Serve SIP2 2.00 over an in-memory library (readers with Chinese names, "
                    "two branches, holds, a blocked reader) until Ctrl-C or SIGTERM. Prints "
                    "'ils-sim ready HOST:PORT control URL' once listening.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="SIP2 port (default 0: a free one)")
    p.add_argument("--profile", default="generic",
                   help="a sip2proto profile name (generic, koha, evergreen, folio, cn-utf8, "
                        "cn-gb18030, pysip2) or a profile TOML file")
    p.add_argument("--user", default="lendbox", help="login user id (93 CN) it accepts")
    p.add_argument("--password", default="lendbox", help="login password (93 CO) it accepts")
    p.add_argument("--institution", default="LENDBOX", help="institution id (AO)")
    p.add_argument("--control-port", type=int, default=0,
                   help="HTTP control port for faults and the journal (default 0: a free one)")
    p.add_argument("--state", type=Path, default=None,
                   help="keep the library in this JSON file (loaded at start, saved after "
                        "every applied change) so a restarted emulator remembers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the emulator, print the ready line, wait for a signal, stop cleanly."""
    from sip2proto import PROFILES, SIP2Error, load_profile

    from .ils_sim import IlsSim

    try:
        profile = PROFILES[args.profile] if args.profile in PROFILES else load_profile(args.profile)
    except (OSError, SIP2Error) as exc:
        print(f"lendbox ils-sim: --profile {args.profile!r}: not one of {sorted(PROFILES)} "
              f"nor a readable profile file ({exc})", file=sys.stderr)
        return 2
    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    sim = IlsSim(profile=profile, host=args.host, port=args.port, user=args.user,
                 password=args.password, institution=args.institution,
                 control_port=args.control_port, state_path=args.state)
    try:
        try:
            sim.start()
        except OSError as exc:
            print(f"lendbox ils-sim: cannot listen on {args.host}:{args.port}: {exc}",
                  file=sys.stderr)
            return 1
        print(f"ils-sim ready {sim.host}:{sim.port} control {sim.control_url} "
              f"profile {profile.name}", flush=True)
        while not done.wait(0.5):
            pass
        return 0
    finally:
        sim.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
