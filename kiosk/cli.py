"""`lendbox kiosk …`: the cabinet application's commands.

``check-config`` is what a technician runs before installing a config file: it lists every
problem with its line (exit 1), or says briefly what the file describes (exit 0), so a
mistake is found at the desk and not by the first reader at the cabinet.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .config import ConfigProblems, KioskConfig, Problem, load_config


def register(subparsers: Any) -> None:
    """Add ``kiosk`` and its sub-commands to the ``lendbox`` parser."""
    kiosk = subparsers.add_parser("kiosk", help="the cabinet application: check its config, run it",
                                  description="The self-service cabinet application.")
    sub = kiosk.add_subparsers(dest="kiosk_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("check-config", help="check a cabinet's config file: every problem with "
                       "its line", description="Check a kiosk config file (docs/kiosk-contracts"
                       ".md) and list every problem with its line. Exit 0 = valid, 1 = problems.")
    p.add_argument("file", metavar="FILE", help="the cabinet's TOML config")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_check_config)

    r = sub.add_parser("run", help="run the cabinet: devices, ledger, sync and the HTTP API",
                       description="Start the cabinet application on a config file: recover "
                       "any open intent, then serve the touchscreen API until SIGTERM/Ctrl-C. "
                       "Prints 'kiosk ready http://HOST:PORT' when it is ready.")
    r.add_argument("file", metavar="FILE", help="the cabinet's TOML config")
    r.add_argument("--host", help="listen address (default: [api] host)")
    r.add_argument("--port", type=int, help="listen port (default: [api] port; 0 = free)")
    r.add_argument("--log-level", default="warning",
                   choices=["debug", "info", "warning", "error"])
    r.set_defaults(func=_cmd_run)

    k = sub.add_parser("key", help="print the cabinet's public key (to register it with the "
                       "server), creating the key on first use",
                       description="The cabinet signs its sync requests and restock manifests "
                       "with its own Ed25519 key, kept in data_dir/cabinet.key (owner-only). "
                       "Print its public key, creating the key if it does not exist yet.")
    k.add_argument("file", metavar="FILE", help="the cabinet's TOML config")
    k.set_defaults(func=_cmd_key)

    t = sub.add_parser("technician-password", help="set the technician pages' password",
                       description="Set (or replace) the password of the kiosk's technician "
                       "pages (/tech): reads it from standard input (or asks twice on a "
                       "terminal) and writes its salted scrypt hash as [technician] "
                       "password_hash into the config file, leaving the rest of the file as "
                       "it was. Restart the kiosk to use it.")
    t.add_argument("--config", required=True, metavar="FILE", help="the cabinet's TOML config")
    t.set_defaults(func=_cmd_technician_password)

    b = sub.add_parser("bundle", help="write a diagnostics bundle of a cabinet whose kiosk is "
                       "not running",
                       description="Write the diagnostics zip the technician page offers "
                       "(/tech/bundle.zip) for a cabinet whose kiosk is not running: config "
                       "without secrets, devices and counters, the ledger's integrity check, "
                       "recent events and the given log files with reader ids and card "
                       "numbers hashed. Exit 0 = written and no fault found, 1 = written "
                       "with faults, 2 = not written.")
    b.add_argument("--config", required=True, metavar="FILE", help="the cabinet's TOML config")
    b.add_argument("-o", "--output", required=True, metavar="OUT.zip")
    b.add_argument("--log", action="append", default=[], metavar="FILE",
                   help="a log file to add (scrubbed); may be repeated")
    b.add_argument("--no-devices", action="store_true",
                   help="do not open the serial ports (e.g. the kiosk runs after all)")
    b.set_defaults(func=_cmd_bundle)


def _cmd_technician_password(args: argparse.Namespace) -> int:
    import sys

    from .tech_auth import TechConfigError, read_new_password, set_technician_hash

    try:
        password = read_new_password(sys.stdin)
        set_technician_hash(args.config, password)
    except TechConfigError as exc:
        print(f"lendbox kiosk technician-password: {exc}", file=sys.stderr)
        return 2
    print(f"{args.config}: [technician] password set; restart the kiosk to use it")
    return 0


def _cmd_bundle(args: argparse.Namespace) -> int:
    import io
    import sys
    import zipfile
    from pathlib import Path

    from .diag_bundle import build_offline_bundle

    try:
        config = load_config(args.config)
    except ConfigProblems as exc:
        _print_problems(args.config, exc.problems, as_json=False)
        return 2
    data = build_offline_bundle(config, devices=not args.no_devices,
                                logs=[Path(f) for f in args.log])
    try:
        Path(args.output).write_bytes(data)
    except OSError as exc:
        print(f"lendbox kiosk bundle: cannot write {args.output}: {exc}", file=sys.stderr)
        return 2
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        head = json.loads(z.read("summary.json"))
    verdict = head["verdict"]
    print(f"{args.output}: diagnostics bundle of cabinet {config.cabinet.id} "
          f"({len(data)} bytes)")
    for fault in verdict["faults"]:
        print(f"  fault: {fault}")
    print("PASS" if verdict["passed"] else "FAULT")
    return 0 if verdict["passed"] else 1


def _cmd_key(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from .runtime import _b64, load_or_create_key

    try:
        config = load_config(args.file)
    except ConfigProblems as exc:
        _print_problems(args.file, exc.problems, as_json=False)
        return 1
    key = load_or_create_key(config.data_dir / "cabinet.key")
    print(f"cabinet {config.cabinet.id} public key: "
          f"{_b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .service import serve

    try:
        return serve(Path(args.file), host=args.host, port=args.port,
                     log_level=args.log_level)
    except ConfigProblems as exc:
        _print_problems(args.file, exc.problems, as_json=False)
        return 1


def _cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigProblems as exc:
        _print_problems(args.file, exc.problems, as_json=args.json)
        return 1
    if args.json:
        print(json.dumps({"file": args.file, "ok": True, "problems": [],
                          "summary": _summary_dict(config)}, ensure_ascii=False, indent=2))
    else:
        print(f"{args.file}: OK — {_summary(config)}")
    return 0


def _print_problems(file: str, problems: tuple[Problem, ...], *, as_json: bool) -> None:
    if as_json:
        rows = [{"line": p.line, "where": p.where, "message": p.message} for p in problems]
        print(json.dumps({"file": file, "ok": False, "problems": rows}, ensure_ascii=False,
                         indent=2))
        return
    for problem in problems:
        print(problem)
    count = len(problems)
    print(f"{count} problem{'s' if count != 1 else ''}: the cabinet will not start with "
          "this file")


def _summary(config: KioskConfig) -> str:
    cab = config.cabinet
    where = " ".join(p for p in (cab.branch, cab.location) if p)
    link = "stand-alone (no [server])" if config.server is None else f"server {config.server.url}"
    return f"cabinet {cab.id} ({where}), {len(config.doors)} doors, {link}"


def _summary_dict(config: KioskConfig) -> dict[str, Any]:
    cab = config.cabinet
    return {"cabinet": cab.id, "branch": cab.branch, "location": cab.location,
            "doors": len(config.doors),
            "server": None if config.server is None else config.server.url,
            "data_dir": str(config.data_dir)}
