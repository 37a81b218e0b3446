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

from .detect import FAMILY_ORDER, DetectReport, detect, parse_addresses
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
    diag.add_argument("--hardware", metavar="HW.toml",
                      help="hardware config (see docs/contracts.md); every check but "
                      "`detect` needs it")
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

    p = sub.add_parser(
        "detect", help="find which device family answers on a port (read-only probes)",
        description="Probe a serial port at each family's usual line settings with one "
        "read-only command per address (never an unlock) and print what answered, with a "
        "hardware-config snippet. Exit 1 if nothing answered. Progress goes to stderr.")
    p.add_argument("--port", required=True, metavar="URL",
                   help="serial port or pyserial URL (/dev/ttyUSB0, socket://host:port)")
    p.add_argument("--addresses", default="0-8", metavar="RANGES",
                   help="addresses to probe, e.g. 1-8 or 0,3,5-7 (default 0-8; each family "
                   "skips addresses it cannot have)")
    p.add_argument("--families", default=None, metavar="LIST",
                   help="comma-separated families to try, in order (default: "
                   f"{','.join(FAMILY_ORDER)})")
    p.add_argument("--baudrates", default=None, metavar="LIST",
                   help="comma-separated baud rates to try instead of each family's usual ones")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds to wait for a reply's first byte (default: per family, "
                   "0.08-0.2)")
    p.add_argument("--all", action="store_true", dest="every_family",
                   help="keep probing other families after one answered")
    p.add_argument("--bus-name", default="", metavar="NAME",
                   help="bus name for the config snippet (default FAMILY-1)")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print JSON instead of text")
    p.set_defaults(func=_cmd_detect)


def _run(args: argparse.Namespace, body: Any, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if not args.hardware:
        print(f"lendbox diag: {args.diag_command} needs --hardware HW.toml (before the "
              f"check's name)", file=sys.stderr)
        return EXIT_USAGE
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


def _cmd_detect(args: argparse.Namespace) -> int:
    try:
        addresses = parse_addresses(args.addresses)
        families = ([f.strip() for f in args.families.split(",") if f.strip()]
                    if args.families else list(FAMILY_ORDER))
        baudrates = ([int(b) for b in args.baudrates.split(",") if b.strip()]
                     if args.baudrates else None)
        if baudrates is not None and (not baudrates or min(baudrates) <= 0):
            raise ValueError("--baudrates must be positive integers")
        if args.timeout is not None and args.timeout <= 0:
            raise ValueError("--timeout must be positive")
        unknown = [f for f in families if f not in FAMILY_ORDER]
        if unknown or not families:
            raise ValueError(f"unknown family {', '.join(unknown) or '(none given)'} "
                             f"(known: {', '.join(FAMILY_ORDER)})")
    except ValueError as exc:
        print(f"lendbox diag detect: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = detect(args.port, families=families, addresses=addresses,
                        baudrates=baudrates, timeout_s=args.timeout,
                        every_family=args.every_family, bus_name=args.bus_name,
                        progress=progress_printer(sys.stderr))
    finally:
        end_progress(sys.stderr)
    if getattr(args, "json", False):
        json.dump(report.as_dict(), sys.stdout, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_detect(report))
    return EXIT_OK if report.passed else EXIT_FAULT


def format_detect(report: DetectReport) -> str:
    """The text of a detection: what answered where, then the config snippet."""
    lines: list[str] = []
    if report.error:
        lines.append(f"port {report.port}: {report.error}")
    for f in report.found:
        checked = "" if f.line_verified else " (line settings not verified over socket://)"
        lines.append(f"port {report.port}: {f.family} {f.kind}(s) at {f.line}{checked}, "
                     f"answering {f.command}")
        for d in f.devices:
            details = ", ".join(f"{k} {v}" for k, v in d.items() if k != "address")
            lines.append(f"  address {d['address']}: {details or 'answers'}")
    if not report.found and not report.error:
        tried = "; ".join(f"{t['family']} {t['line']}" for t in report.tried) or "nothing"
        lines.append(f"port {report.port}: no device answered (tried {tried})")
    lines.extend(f"note: {n}" for n in report.notes)
    lines.append(f"{report.probes_sent} read-only probes in {report.seconds:.1f} s; no lock "
                 f"was commanded")
    if report.found:
        lines.append("hardware config (docs/contracts.md):")
        lines.append("")
        lines.extend(report.snippet().rstrip("\n").splitlines())
        lines.append("")
    lines.append("FOUND" if report.passed else "NOTHING FOUND")
    return "\n".join(lines) + "\n"


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


def _known(value: object) -> bool:
    return value not in ("", "unknown", None)


def format_report(report: object) -> str:
    """The human-readable text of any diag report (also used by `lendbox demo`)."""
    lines: list[str] = []
    if isinstance(report, DevicesReport):
        for bus in report.buses:
            family = f", {bus['family']}" if bus.get("family") else ""
            lines.append(f"bus {bus['bus']} ({bus['url']}, {bus['baudrate']} baud{family}): "
                         f"{bus['availability']} {bus['reason']}".rstrip())
            present = bus.get("addresses_present")
            if present is not None:
                lines.append(f"  addresses answering: "
                             f"{', '.join(map(str, present)) or 'none'}")  # type: ignore[call-overload]
            if "hint" in bus:
                lines.append(f"  hint: {bus['hint']}")
        for b in report.boards:
            family = f" ({b.family})" if b.family != "lendbox" else ""
            head = f"board {b.address} on {b.bus}{family}: {b.availability} {b.reason}".rstrip()
            lines.append(head)
            if b.info:
                if _known(b.info.firmware):
                    lines.append(f"  serial {b.info.serial}, firmware {b.info.firmware}, "
                                 f"protocol {b.info.protocol}, {b.info.locks} locks, "
                                 f"{b.info.antennas} antennas")
                else:
                    lines.append(f"  protocol {b.info.protocol}, {b.info.locks} locks (from "
                                 f"the config)")
            if b.counters:
                c = b.counters
                where = "" if b.counters_kept_by == "board" else "counted by the driver: "
                power = (f", power cycles {c.power_cycles}" if b.counters_kept_by == "board"
                         else "")
                lines.append(f"  {where}uptime {c.uptime_s} s, frames ok {c.frames_ok}, crc "
                             f"errors {c.crc_errors}, retransmissions {c.retransmissions}"
                             f"{power}, unlocks {list(c.unlocks)}")
            link = b.link
            if link:
                lines.append(f"  host link: {link['requests']} requests, {link['retries']} "
                             f"retries, {link['timeouts']} timeouts")
            if b.not_available:
                lines.append(f"  {', '.join(b.not_available)}: not available for this family")
        for r in report.readers:
            lines.append(f"reader {r.name} on {r.bus} ({r.family}, address {r.address}): "
                         f"{r.availability} {r.reason}".rstrip())
            if r.info:
                lines.append("  " + ", ".join(f"{k.replace('_', ' ')} {v}"
                                              for k, v in r.info.items()))
            if r.link:
                lines.append(f"  host link: {r.link['requests']} requests, "
                             f"{r.link['retries']} retries, {r.link['timeouts']} timeouts")
            lines.append(f"  reads door(s) {', '.join(map(str, r.doors)) or 'none'}")
            if r.not_available:
                lines.append(f"  {', '.join(r.not_available)}: not available for this family")
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
            family = str(row.get("family", "lendbox"))
            suffix = f" ({family})" if family != "lendbox" else ""
            lines.append(f"board {row['board']} on {row['bus']}{suffix}: {state}")
            if row.get("not_available") and row.get("answering"):
                lines.append(f"  {', '.join(row['not_available'])}: "  # type: ignore[arg-type]
                             f"not available for this family")
        for row in report.readers:
            state = "answering" if row.get("answering") else "NOT answering"
            lines.append(f"reader {row['reader']} on {row['bus']} ({row['family']}): {state}")
            if row.get("answering"):
                inv: list[dict[str, Any]] = row.get("inventory") or []  # type: ignore[assignment]
                tags = sum(int(i.get("tags", 0)) for i in inv)
                if inv:
                    lines.append(f"  inventoried door(s) "
                                 f"{', '.join(str(i['door']) for i in inv)}: {tags} tags")
                lines.append(f"  {', '.join(row['not_available'])}: "  # type: ignore[arg-type]
                             f"not available for this family")
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
