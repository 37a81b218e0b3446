"""`lendbox demo` runs its whole story through the real console script and exits cleanly:
self-test, then a real kiosk process played through its HTTP API."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from lendbox.kiosk_story import CARD_UID

ROOT = Path(__file__).resolve().parents[2]


def _demo(env: dict[str, str] | None = None, extra: tuple[str, ...] = ()) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "lendbox.cli", "demo", "--no-wait", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=240, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_demo_story_through_the_kiosk_api() -> None:
    out = _demo()
    assert "all parts passed" in out
    assert "24 doors, 150 tagged books" in out
    assert "the story stopped" not in out, out
    # 4a: the QR code is read by the kiosk's camera; two loans on the screen and in the ledger
    assert "the cabinet's camera read the QR code" in out
    assert "借阅成功：2 册" in out and "Borrowed: 2 book(s)" in out
    # 4b: a library card through the real pcscd starts a session; the UID is never printed
    assert "session started by the card reader: role reader" in out
    assert CARD_UID.lower() not in out.lower()
    # 4c: another branch's book is returned without login
    assert "已还书 1 册" in out and "return 3901" in out
    # 4d/4e: offline, one loan allowed, one refused at the cabinet's cap with the reason shown
    assert "cabinet online: False; offline exposure 1 of 2" in out
    assert "本柜离线借阅已达上限" in out and "he puts back" in out
    # 4f: the outbox reaches the server, offline loans flagged
    assert "4 loans (2 made offline, flagged for reconciliation)" in out
    # 4g: power cut mid-session: recovery counts the door and records the loan
    story = out.split("== 4g.", 1)[1]
    assert "recovery: intent" in story and "R0056789" in story.split("recovery:", 1)[1]
    # 5: the real central server, two branches, two cabinets syncing
    network = out.split("== 5.", 1)[1]
    assert "catalogue: 80 books imported" in network
    assert re.search(r"she takes (\d+)《\S+》; the server: loaned, due \d{4}-\d\d-\d\d", network)
    assert re.search(r"transit #\d+: \d+ from sz-county-0001 to sz-city, waiting_pickup", network)
    assert "county staff's restock list: unload" in network and "(transit_home)" in network
    assert "cabinet B online: False" in network
    assert re.search(r"the offline loan reconciled: \d+ loaned", network)
    assert "loan_to_blocked_reader" in network
    # the ILS (lendbox ils-sim over SIP2): forwarded exactly once, through a crash mid-stream
    assert "ILS outbox: {'pending': 0, 'sent': 0, 'confirmed': 3, 'rejected': 0}" in network
    assert "(no-block, offline)" in network
    assert "'sent': 1" in network and "resolved by item_information, applied by the ILS 1×" in network
    assert re.search(r"reconciliation: outbox \{'pending': 0, 'sent': 0, 'confirmed': 6, "
                     r"'rejected': 0\}; ILS journal 6 transactions; applied twice: none; "
                     r"lost: none", network)
    # every temporary file lived in a folder that is gone afterwards
    hw = next(line.split()[-1] for line in out.splitlines() if "hardware config:" in line)
    assert not Path(hw).parent.exists()


def test_demo_rejects_a_missing_config() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lendbox.cli", "demo", "--no-wait", "--config", "/nonexistent.toml"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr


def test_demo_goes_on_without_a_card_reader(tmp_path: Path) -> None:
    """No pcscd on the PATH: one line says the card reader is not available, the rest runs."""
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty folder: no pcscd, nothing else needed
    out = _demo(env, ("--no-network",))
    assert "card reader: failed to start — PcscdError: pcscd not found" in out
    assert "no card reader in this run" in out
    assert "the story stopped" not in out, out
    assert "all parts passed" in out and "借阅成功：2 册" in out
