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
#: The library card the story's reader presents (a 7-byte ISO 14443-A UID) — never printed.
DEMO_CARD_UID = bytes.fromhex("04A1B2C3D4E5F6")
#: The e-card QR the story's reader shows on a phone.
DEMO_ECARD_QR = "LBX1:CN-440300:R0012345:1717200000:3f9a1c2e5b7d"


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


def _card_step(sim: Any, hw: Any) -> None:
    """A reader presents a library card; the driver reads it through the real pcscd."""
    from drivers.card_reader import uid_digest
    from drivers.errors import DriverError

    if hw.card_reader is None:
        why = sim.peripheral_errors.get("card_reader", "this cabinet has none configured")
        print(f"   card reader: not available ({why}) — going on without it")
        return
    print("   a reader presents a library card")
    sim.present_card(DEMO_CARD_UID)
    try:
        uid = hw.card_reader.read_uid(timeout=5.0)
    except DriverError as exc:
        print(f"   card reader: the card could not be read ({exc})")
    else:
        if uid is None:
            print("   card reader: no card seen within 5 s")
        else:
            print(f"   card read through pcscd: UID hash {uid_digest(uid)} ({len(uid)}-byte UID; "
                  "the UID itself is never shown)")
    finally:
        sim.remove_card()


def _qr_step(sim: Any, hw: Any) -> None:
    """A reader shows an e-card QR; the camera driver decodes it from the MJPEG stream."""
    from drivers.errors import DriverError

    if hw.camera is None:
        why = sim.peripheral_errors.get("camera", "this cabinet has none configured")
        print(f"   camera: not available ({why}) — going on without it")
        return
    print("   a reader shows an e-card QR code to the camera")
    sim.show_qr(DEMO_ECARD_QR)
    texts: list[str] = []
    try:
        hw.camera.open()
        deadline = time.monotonic() + 5.0
        while not texts and time.monotonic() < deadline:
            texts = hw.camera.read_qr()
    except DriverError as exc:
        print(f"   camera: could not read the QR code ({exc})")
        return
    finally:
        hw.camera.close()
        sim.clear_camera()
    if texts:
        print(f"   e-card QR decoded ({hw.camera.decoder or 'camera'}): {texts[0]}")
    else:
        print("   camera: no QR code decoded within 5 s")


def run(args: argparse.Namespace) -> int:
    # Imported here so `lendbox --help` stays fast and needs neither package.
    from drivers.cli import end_progress, format_report, progress_printer
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

        print("== 2. A reader identifies themselves at the cabinet")
        _card_step(sim, hw)
        _qr_step(sim, hw)
        print()

        door = hw.door(args.door)
        reader, board = hw.reader_of(door.number), hw.board_of(door.number)
        cache = TagCache()
        print(f"== 3. The reader borrows two books from door {door.number}")
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
        print("== 4. The simulator keeps running. In another terminal:")
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
