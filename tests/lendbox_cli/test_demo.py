"""`lendbox demo` runs its whole story through the real console script and exits cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
