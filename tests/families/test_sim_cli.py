"""``lendbox sim`` with the all-families demo cabinet: every bus served, the hardware config
it writes builds every device of every family."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from drivers.board import ControllerBoard
from drivers.hardware import Hardware
from drivers.rfid import RfidReader
from simulator import load_config

ROOT = Path(__file__).resolve().parents[2]
MIXED = ROOT / "simulator" / "cabinets" / "mixed.toml"


def test_sim_serves_mixed_cabinet_and_its_hardware_config_builds(tmp_path: Path) -> None:
    hw_file = tmp_path / "hw.toml"
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/lendbox"), "sim", "--config", str(MIXED), "--hardware-out",
         str(hw_file)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("running"):
                break
        out = "\n".join(lines)
        assert any(x.startswith("running") for x in lines), out
        config = load_config(MIXED)
        for bus in config.buses:
            assert any(x.startswith(f"bus {bus.name}: socket://127.0.0.1:") for x in lines), out
        assert f"hardware config: {hw_file}" in out
        with Hardware.from_file(hw_file, backoff_s=(0.05, 0.2)) as hw:
            assert {b.family for b in hw.spec.buses} == {"kerong", "cn485", "modbus", "feig",
                                                         "rr3036"}
            assert set(hw.boards) == {b.address for b in config.boards}
            assert set(hw.readers) == {r.name for r in config.readers}
            assert sorted(hw.doors) == sorted(d.number for d in config.doors)
            for board in hw.boards.values():
                assert isinstance(board, ControllerBoard)
                assert len(board.states()) >= 1  # and it answers over the served bus
            for door in hw.doors:
                reader = hw.reader_of(door)
                assert isinstance(reader, RfidReader)
            assert hw.reader_of(4).inventory(hw.door(4).antenna)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
