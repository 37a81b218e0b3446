"""``lendbox diag``: the technician's command-line face of :mod:`drivers.diag`.

Exit codes: 0 everything passed, 1 a fault was found, 2 a usage or config error.
Human text by default, ``--json`` for machines.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from .diag import (
    CameraCheck,
    CardCheck,
    DevicesReport,
    InventoryReport,
    PeripheralReport,
    SelfTestReport,
    UnlockCheck,
    check_devices,
    inventory_report,
    read_card,
    run_selftest,
    test_unlock,
    watch_camera,
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
    p.add_argument("--expect", nargs="+", default=[], metavar="ITEM_ID",
                   help="item ids that should be in the door: each one never seen is a fault "
                   "(a dead tag does not answer, so only this can find it)")
    p.add_argument("--expect-count", type=int, default=None, metavar="N",
                   help="number of tags that should be in the door")
    p.set_defaults(func=_cmd_inventory)

    p = sub.add_parser("selftest", help="check every board, antenna and door; name faults")
    p.add_argument("--unlock", action="store_true",
                   help="also test-unlock every door (doors will open)")
    p.add_argument("--no-inventory", action="store_true",
                   help="skip the read-only inventory of every door (which names tags whose "
                   "data cannot be decoded; it reads each tag's data once)")
    p.set_defaults(func=_cmd_selftest)

    p = sub.add_parser("card", help="wait for a contactless card and show a hash of its UID",
                       description="Wait for a card on the card reader and print a short "
                       "per-run hash of its UID (never the UID). Exit 1 if no card was read.")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for a card (default 10)")
    p.set_defaults(func=_cmd_card)

    p = sub.add_parser("camera", help="read camera frames, print decoded QR codes and ISBNs",
                       description="Read frames from the camera for a few seconds and print "
                       "every QR code text and ISBN-13 decoded. Exit 1 if no frame came.")
    p.add_argument("--seconds", type=float, default=5.0, metavar="S",
                   help="seconds to watch (default 5)")
    p.set_defaults(func=_cmd_camera)


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
    if args.expect_count is not None and args.expect_count < 0:
        print("lendbox diag: --expect-count must not be negative", file=sys.stderr)
        return EXIT_USAGE
    return _run(args, lambda hw: inventory_report(hw, args.door, repeat=args.repeat,
                                                  expect=args.expect,
                                                  expect_count=args.expect_count))


def _cmd_selftest(args: argparse.Namespace) -> int:
    def body(hw: Hardware) -> SelfTestReport:
        try:
            return run_selftest(hw, unlock=args.unlock, inventory=not args.no_inventory,
                                progress=progress_printer(sys.stderr))
        finally:
            end_progress(sys.stderr)

    return _run(args, body)


def progress_printer(stream: TextIO) -> Callable[[str], None]:
    """Show each step of a long diagnosis on one self-rewriting line of a terminal (as
    ``… step``), or as plain lines when ``stream`` is not a terminal (logs, tests)."""
    tty = stream.isatty()

    def show(what: str) -> None:
        if tty:
            stream.write(f"\r\033[K… {what}")
        else:
            stream.write(f"… {what}\n")
        stream.flush()

    return show


def end_progress(stream: TextIO) -> None:
    """Clear the progress line on a terminal, so the report starts on a clean line."""
    if stream.isatty():
        stream.write("\r\033[K")
        stream.flush()


def _cmd_card(args: argparse.Namespace) -> int:
    if args.timeout < 0:
        print("lendbox diag: --timeout must not be negative", file=sys.stderr)
        return EXIT_USAGE
    return _run(args, lambda hw: read_card(hw, timeout=args.timeout))


def _cmd_camera(args: argparse.Namespace) -> int:
    if args.seconds < 0:
        print("lendbox diag: --seconds must not be negative", file=sys.stderr)
        return EXIT_USAGE
    return _run(args, lambda hw: watch_camera(hw, seconds=args.seconds))


def _peripheral_lines(reports: list[PeripheralReport]) -> list[str]:
    """``card reader (NAME): ok`` / ``camera (URL): unavailable — why``."""
    lines = []
    for r in reports:
        what = r.details.get("reader") or r.details.get("reader_match") or r.details.get("source")
        head = f"{r.device} ({what})" if what else r.device
        line = f"{head}: {r.availability}" + (f" — {r.reason}" if r.reason else "")
        if r.device == "camera" and r.details.get("decoder"):
            line += f" (QR decoder {r.details['decoder']})"
        lines.append(line)
        if r.details.get("pcsc_socket"):
            lines.append(f"  PC/SC socket {r.details['pcsc_socket']}")
    return lines


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
        lines.extend(_peripheral_lines(report.peripherals))
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
    elif isinstance(report, CardCheck):
        if report.uid_digest is not None:
            lines.append(f"card read on {report.reader}: UID hash {report.uid_digest} "
                         f"({report.uid_length}-byte UID, {report.seconds:.1f} s)")
        else:
            lines.append(f"no card read on {report.reader or 'the card reader'}")
    elif isinstance(report, CameraCheck):
        lines.append(f"camera {report.source}: {report.frames} frames in {report.seconds:.1f} s "
                     f"(QR decoder {report.decoder or '-'}, ISBN decoder "
                     f"{report.isbn_decoder or '-'})")
        lines.extend(f"  QR: {t}" for t in report.qr)
        lines.extend(f"  ISBN: {i}" for i in report.isbns)
    elif isinstance(report, SelfTestReport):
        for row in report.boards:
            state = "answering" if row.get("answering") else "NOT answering"
            if row.get("skipped"):
                state += f" (not tested: {row['skipped']})"
            lines.append(f"board {row['board']} on {row['bus']}: {state}")
        for u in report.unlocks:
            lines.append(f"  door {u.door}: {'opened' if u.door_opened else 'did not open'}")
        for link in report.links:
            lines.append(f"bus {link['bus']}: {link['frames_sent']} frames, "
                         f"{float(link['failed_fraction']):.1%} failed")  # type: ignore[arg-type]
        for lat in report.latency:
            lines.append(f"board {lat['board']} on {lat['bus']}: replies "
                         f"{lat['latency_mean_ms']} ms late on average (max "
                         f"{lat['latency_max_ms']} ms)")
        lines.extend(_peripheral_lines(report.peripherals))
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
