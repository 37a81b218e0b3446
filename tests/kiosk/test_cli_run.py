"""`lendbox kiosk key` and `lendbox kiosk run` as a user types them."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

from lendbox.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "kiosk" / "cabinets" / "example.toml"


def test_key_is_created_once_owner_only_and_printed(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "cabinet.toml"
    shutil.copy(EXAMPLE, cfg)
    assert main(["kiosk", "key", str(cfg)]) == 0
    first = capsys.readouterr().out
    key_file = tmp_path / "var" / "sz-futian-0007" / "cabinet.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert main(["kiosk", "key", str(cfg)]) == 0
    assert capsys.readouterr().out == first  # the same key: created only once
    assert first.startswith("cabinet sz-futian-0007 public key: ")
    assert key_file.read_text().strip() not in first  # the private half is never printed


def test_run_refuses_a_bad_config_and_starts_nothing(tmp_path: Path) -> None:
    cfg = tmp_path / "cabinet.toml"
    cfg.write_text(EXAMPLE.read_text(encoding="utf-8").replace("loan_days", "loan_day"),
                   encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "lendbox.cli", "kiosk", "run", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "unknown key 'loan_day'" in proc.stdout and "will not start" in proc.stdout
    assert not (tmp_path / "var").exists()  # no ledger, no key: nothing half-started
