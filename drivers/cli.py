"""``lendbox diag``: the technician's command-line face of :mod:`drivers.diag`.

Exit codes: 0 everything passed, 1 a fault was found, 2 a usage or config error.
Human text by default, ``--json`` for machines.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from .diag import (
    DevicesReport,
    InventoryReport,
    SelfTestReport,
    UnlockCheck,
    check_devices,
    inventory_report,
    run_selftest,
    test_unlock,
)
from .errors import ConfigError
from .hardware import Hardware

__all__ = ["main", "register"]

EXIT_OK, EXIT_FAULT, EXIT_USAGE = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add ``diag`` and its sub-commands to the ``lendbox`` parser."""
    diag = subparsers.add_parser("diag", help="diagnose the cabinet's boards, doors and antennas",
                                 description="Technician diagnostics of the cabinet hardware.")
    diag.add_argument("--hardware", required=True, metavar="HW.toml",
                      help="hardware config (see docs/contracts.md)")
    diag.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub = diag.add_subparsers(dest="diag_command", metavar="CHECK")
    sub.required = True

    p = sub.add_parser("devices", help="each bus and board: availability, firmware, counters")
    p.set_defaults(func=_cmd_devices)

    p = sub.add_parser("unlock", help="test-unlock a door and watch its door sensor")
    p.add_argument("--door", type=int, required=True)
    p.add_argument("--watch", type=float, default=3.0, metavar="S",
                   help="seconds to wait for the door sensor (default 3)")
    p.set_defaults(func=_cmd_unlock)

    p = sub.add_parser("inventory", help="tags in a door with RSSI, item ids and read rates")
    p.add_argument("--door", type=int, required=True)
    p.add_argument("--repeat", type=int, default=1, metavar="K", help="inventory rounds")
    p.set_defaults(func=_cmd_inventory)

    p = sub.add_parser("selftest", help="check every board, antenna and door; name faults")
    p.add_argument("--unlock", action="store_true",
                   help="also test-unlock every door (doors will open)")
    p.set_defaults(func=_cmd_selftest)


def _run(args: argparse.Namespace, body: Any, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        hw = Hardware.from_file(args.hardware)
    except ConfigError as exc:
        print(f"lendbox diag: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = body(hw)
    except ConfigError as exc:
        print(f"lendbox diag: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        hw.close()
    if args.json:
        json.dump(report.as_dict(), out, indent=2, ensure_ascii=False, default=str)
        out.write("\n")
    else:
        out.write(format_report(report))
    return EXIT_OK if report.passed else EXIT_FAULT


def _cmd_devices(args: argparse.Namespace) -> int:
    return _run(args, check_devices)


def _cmd_unlock(args: argparse.Namespace) -> int:
    return _run(args, lambda hw: test_unlock(hw, args.door, watch_s=args.watch))


def _cmd_inventory(args: argparse.Namespace) -> int:
    if args.repeat < 1:
        print("lendbox diag: --repeat must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    return _run(args, lambda hw: inventory_report(hw, args.door, repeat=args.repeat))


def _cmd_selftest(args: argparse.Namespace) -> int:
    return _run(args, lambda hw: run_selftest(hw, unlock=args.unlock))


# ---------------------------------------------------------------- text


def format_report(report: object) -> str:
    """The human-readable text of any diag report (also used by `lendbox demo`)."""
    lines: list[str] = []
    if isinstance(report, DevicesReport):
        for bus in report.buses:
            lines.append(f"bus {bus['bus']} ({bus['url']}, {bus['baudrate']} baud): "
                         f"{bus['availability']} {bus['reason']}".rstrip())
            if "hint" in bus:
                lines.append(f"  hint: {bus['hint']}")
        for b in report.boards:
            head = f"board {b.address} on {b.bus}: {b.availability} {b.reason}".rstrip()
            lines.append(head)
            if b.info:
                lines.append(f"  serial {b.info.serial}, firmware {b.info.firmware}, protocol "
                             f"{b.info.protocol}, {b.info.locks} locks, {b.info.antennas} "
                             f"antennas")
            if b.counters:
                c = b.counters
                lines.append(f"  uptime {c.uptime_s} s, frames ok {c.frames_ok}, crc errors "
                             f"{c.crc_errors}, retransmissions {c.retransmissions}, power "
                             f"cycles {c.power_cycles}, unlocks {list(c.unlocks)}")
            link = b.link
            lines.append(f"  host link: {link['requests']} requests, {link['retries']} retries, "
                         f"{link['timeouts']} timeouts")
    elif isinstance(report, UnlockCheck):
        lines.append(f"door {report.door} (board {report.board}, lock {report.lock}): "
                     f"{'pulsed' if report.pulsed else 'not pulsed'}, door "
                     f"{'opened' if report.door_opened else 'did not open'} "
                     f"({report.seconds:.1f} s)")
    elif isinstance(report, InventoryReport):
        lines.append(f"door {report.door} (antenna {report.antenna}): {len(report.tags)} tags, "
                     f"{report.rounds} round(s)")
        for t in report.tags:
            lines.append(f"  {t.uid}  {t.item_id or '?':<16} {t.owner_library or '':<12} "
                         f"{t.rssi:>4} dBm  {t.seen}/{t.rounds} ({t.rate:.0%})"
                         + (f"  {t.error}" if t.error else ""))
    elif isinstance(report, SelfTestReport):
        for row in report.boards:
            state = "answering" if row.get("answering") else "NOT answering"
            lines.append(f"board {row['board']} on {row['bus']}: {state}")
        for u in report.unlocks:
            lines.append(f"  door {u.door}: {'opened' if u.door_opened else 'did not open'}")
        for link in report.links:
            lines.append(f"bus {link['bus']}: {link['frames_sent']} frames, "
                         f"{float(link['failed_fraction']):.1%} failed")  # type: ignore[arg-type]
        lines.append("verdict:")
        lines.extend(f"  {v}" for v in report.verdict)
    findings = getattr(report, "findings", [])
    if findings and not isinstance(report, SelfTestReport):
        lines.append("findings:")
        lines.extend(f"  {f}" for f in findings)
    passed = getattr(report, "passed", True)
    lines.append("PASS" if passed else "FAULT")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run ``diag`` alone (``python -m drivers.cli --hardware HW.toml selftest``)."""
    parser = argparse.ArgumentParser(prog="lendbox")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["diag", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
