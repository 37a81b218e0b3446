"""``lendbox sim`` in a real process: prints where to connect, serves, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from firmware_protocol.messages import Identify

from .conftest import CABINETS, Host

ROOT = Path(__file__).resolve().parents[2]


def test_sim_command_starts_prints_urls_and_stops_on_sigterm(tmp_path: Path) -> None:
    hw = tmp_path / "hw.toml"
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from lendbox.cli import main; sys.exit(main())",
         "sim", "--config", str(CABINETS / "small.toml"), "--hardware-out", str(hw), "--pty"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.startswith("running"):
                break
        text = "\n".join(lines)
        assert "bus usb-1: socket://127.0.0.1:" in text, text
        assert "bus usb-1 pty: /dev/" in text and "control: http://127.0.0.1:" in text
        assert f"hardware config: {hw}" in text
        config = tomllib.loads(hw.read_text(encoding="utf-8"))
        url = config["buses"][0]["url"]
        assert url.startswith("socket://") and config["doors"][0]["number"] == 1
        host = Host(url)
        try:
            frame, _ = host.ask(Identify())
            assert frame is not None
        finally:
            host.close()
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "stopping" in out
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def test_sim_command_reports_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[cabinet]\nid = "x"\n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from lendbox.cli import main; sys.exit(main())",
         "sim", "--config", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "at least one [[buses]]" in proc.stderr
    assert "Traceback" not in proc.stderr
