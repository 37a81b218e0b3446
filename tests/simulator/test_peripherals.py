"""The simulator's camera and card reader: control API routes and what `lendbox sim` prints.

The camera frames are decoded with zxing-cpp straight from the emulator (the driver side is
tested in tests/drivers/test_peripherals.py). `lendbox sim` runs in its own process, so it
starts its own private pcscd there without touching this process's PC/SC stack.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import zxingcpp

from simulator import Simulator, load_config, parse_config

from .conftest import CABINETS
from .test_control import _call

ROOT = Path(__file__).resolve().parents[2]


def _cabinet(tmp_path: Path, *, camera: bool, card_reader: bool) -> Path:
    text = (CABINETS / "small.toml").read_text(encoding="utf-8")
    text += f"\n[camera]\nenabled = {str(camera).lower()}\n"
    text += f"\n[card_reader]\nenabled = {str(card_reader).lower()}\n"
    path = tmp_path / "cabinet.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def camera_sim(tmp_path: Path) -> Iterator[Simulator]:
    sim = Simulator(load_config(_cabinet(tmp_path, camera=True, card_reader=False))).start()
    try:
        yield sim
    finally:
        sim.stop()


def _seen(sim: Simulator) -> list[tuple[str, str]]:
    assert sim.camera is not None
    found = zxingcpp.read_barcodes(sim.camera.current_frame())
    return [(b.format.name, b.text) for b in found]


def test_camera_routes_show_and_clear(camera_sim: Simulator) -> None:
    assert _call(camera_sim, "POST", "/camera/qr", {"text": "LBX1:x"}) == (200, {"ok": True})
    assert ("QRCode", "LBX1:x") in _seen(camera_sim)
    assert _call(camera_sim, "POST", "/camera/isbn", {"isbn": "978-7-111-12345"})[0] == 200
    assert ("EAN13", "9787111123453") in _seen(camera_sim)  # check digit completed
    assert _call(camera_sim, "POST", "/camera/isbn", {"isbn": "9787111123450"})[0] == 200
    assert _call(camera_sim, "POST", "/camera/clear") == (200, {"ok": True})
    assert _seen(camera_sim) == []
    for bad in ({"isbn": "97871111"}, {"isbn": "97871111234X"}, {"isbn": 9787111123453}, {}):
        status, body = _call(camera_sim, "POST", "/camera/isbn", bad)
        assert status == 400 and body["error"], bad
    state = camera_sim.state()["peripherals"]
    assert state["camera"] == camera_sim.camera_url and state["card_reader"] is False
    assert state["pcsc_socket"] is None and state["errors"] == {}
    assert camera_sim.hardware_config()["camera"] == {"source": camera_sim.camera_url}
    assert "card_reader" not in camera_sim.hardware_config()


def test_camera_routes_without_camera_are_409(sim: Simulator) -> None:
    for path, body in (("/camera/isbn", {"isbn": "9787111123453"}), ("/camera/clear", None),
                       ("/cards/remove", None)):
        status, answer = _call(sim, "POST", path, body)
        assert status == 409 and "configured" in answer["error"], path
    assert "camera" not in sim.hardware_config() and "card_reader" not in sim.hardware_config()


def test_shared_pcscd_slot_must_be_0_or_1() -> None:
    config = parse_config(tomllib.loads((CABINETS / "small.toml").read_text("utf-8")))
    with pytest.raises(ValueError, match="pcsc_slot"):
        Simulator(config, pcsc_slot=2)


def _sim_lines(tmp_path: Path, cabinet: Path, env: dict[str, str]) -> tuple[str, Path]:
    """Run `lendbox sim` until it says "running", stop it with SIGTERM; (its output, hw)."""
    hw = tmp_path / "hw.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lendbox.cli", "sim", "--config", str(cabinet),
         "--hardware-out", str(hw)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("running"):
                break
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        return "\n".join(lines), hw
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.mark.pcsc
def test_sim_command_prints_camera_url_and_pcsc_socket(tmp_path: Path) -> None:
    text, hw = _sim_lines(tmp_path, _cabinet(tmp_path, camera=True, card_reader=True),
                          dict(os.environ))
    config = tomllib.loads(hw.read_text(encoding="utf-8"))
    socket_path = config["card_reader"]["pcsc_socket"]
    assert f"camera: {config['camera']['source']}" in text, text
    assert config["camera"]["source"].startswith("http://127.0.0.1:")
    assert (f"card reader: 'Lendbox Virtual PCD 00 00' on a private pcscd, socket "
            f"{socket_path}") in text, text
    assert f"PCSCLITE_CSOCK_NAME={socket_path}" in text
    assert config["card_reader"]["reader"] == "Lendbox Virtual PCD 00 00"
    assert "failed to start" not in text
    assert not Path(socket_path).exists()  # the simulator's pcscd was stopped with it


def test_sim_command_says_which_peripheral_failed(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no pcscd to be found
    text, hw = _sim_lines(tmp_path, _cabinet(tmp_path, camera=True, card_reader=True), env)
    assert "card reader: failed to start — PcscdError: pcscd not found" in text, text
    assert "camera: http://127.0.0.1:" in text
    config = tomllib.loads(hw.read_text(encoding="utf-8"))
    assert "card_reader" not in config and "camera" in config
