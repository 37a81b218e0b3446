"""`lendbox demo` runs its whole story through the real console script and exits cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from lendbox.demo import DEMO_CARD_UID, DEMO_ECARD_QR

ROOT = Path(__file__).resolve().parents[2]


def test_demo_story_prints_the_self_test_verdict_and_two_loans() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lendbox.cli", "demo", "--no-wait"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "all parts passed" in out
    assert "24 doors, 150 tagged books" in out
    assert out.count("→ loan") == 2 and "→ return" not in out
    assert "door_opened (lock 3)" in out and "door_closed (lock 3)" in out
    # a library card read through the real pcscd: its hash is shown, never the UID
    assert re.search(r"card read through pcscd: UID hash [0-9a-f]{8} \(7-byte UID", out), out
    assert DEMO_CARD_UID.hex() not in out.lower()
    # an e-card QR decoded from the camera emulator's MJPEG stream
    assert f"e-card QR decoded (zxing-cpp): {DEMO_ECARD_QR}" in out
    assert "card reader (Lendbox Virtual PCD 00 00): ok" in out
    # the hardware config lived in a temporary folder that is gone afterwards
    hw = next(line.split()[-1] for line in out.splitlines() if "hardware config:" in line)
    assert not Path(hw).exists()


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
    proc = subprocess.run(
        [sys.executable, "-m", "lendbox.cli", "demo", "--no-wait"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "card reader: failed to start — PcscdError: pcscd not found" in out
    story = out.split("== 2.", 1)[1].split("== 3.", 1)[0]
    assert [line for line in story.splitlines() if "card reader" in line] == [
        line for line in story.splitlines() if "card reader: not available (" in line]
    assert len([line for line in story.splitlines() if "card reader" in line]) == 1
    assert f"e-card QR decoded (zxing-cpp): {DEMO_ECARD_QR}" in out
    assert "all parts passed" in out and out.count("→ loan") == 2
