"""The card reader and the camera through the hardware config, end to end.

Real parts only: the simulator's camera emulator serves a real MJPEG stream decoded by
OpenCV; the card is a virtual card on the session's private pcscd (``pcsc_stack``), read
through pyscard → libpcsclite → pcscd → vpcd. The simulator shares that daemon (one private
PC/SC stack per process, see docs/pcsc.md) and uses its second reader slot, so the
``pcsc_card`` tests on slot 0 are not disturbed. Where a fresh process matters (setting
``PCSCLITE_CSOCK_NAME`` before the first PC/SC call) the test runs one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.card_reader import uid_digest
from drivers.cli import main as diag_main
from drivers.diag import check_devices, read_card, run_selftest, watch_camera
from drivers.errors import ConfigError
from drivers.hardware import Hardware, bind_pcsc_socket, parse_spec
from simulator import Simulator, parse_config
from tests.pcsc_fixtures import PcscStack, reader_empty, wait_until

from .conftest import ROOT, TWO_BOARDS

UID = bytes.fromhex("04A1B2C3D4E5F6")
SLOT = 1  # the pcsc_card fixture uses slot 0

PERIPHERAL_CABINET = TWO_BOARDS + """
[camera]
enabled = true

[card_reader]
enabled = true
"""

BASE: dict[str, Any] = {
    "cabinet": {"id": "t"},
    "buses": [{"name": "b", "url": "socket://127.0.0.1:9"}],
    "boards": [{"address": 1, "bus": "b"}],
    "doors": [{"number": 1, "board": 1, "lock": 1, "antenna": 1}],
}


def _with(**sections: Any) -> dict[str, Any]:
    return {**BASE, **sections}


def _post(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


# ------------------------------------------------------------------ config, no I/O


def test_sections_build_devices_without_io() -> None:
    hw = Hardware.from_dict(_with(card_reader={"reader": "ACS ACR122"},
                                  camera={"source": "http://127.0.0.1:9/stream.mjpg",
                                          "decoder": "pyzbar"}))
    assert hw.card_reader is not None and hw.card_reader.reader_match == "ACS ACR122"
    assert hw.camera is not None and not hw.camera.is_open
    assert hw.spec.camera is not None and hw.spec.camera.decoder == "pyzbar"
    hw.close()
    bare = Hardware.from_dict(BASE)
    assert bare.card_reader is None and bare.camera is None
    assert parse_spec(_with(camera={"source": 0})).camera.source == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(("sections", "message"), [
    ({"card_reader": "yes"}, "[card_reader] must be a table"),
    ({"card_reader": {"reader": 3}}, "'reader' must be a string"),
    ({"card_reader": {"pcsc_socket": ""}}, "'pcsc_socket' must be a non-empty string"),
    ({"card_reader": {"pcsc_socket": "run/pcscd.comm"}}, "'pcsc_socket' must be an absolute"),
    ({"card_reader": {"pcsc_sockt": "/x"}}, "unknown key(s) pcsc_sockt"),
    ({"camera": {}}, "[camera]: missing field 'source'"),
    ({"camera": {"source": True}}, "'source' must be a device index"),
    ({"camera": {"source": -1}}, "camera index must be ≥ 0"),
    ({"camera": {"source": "ftp://cam/x"}}, "unsupported camera URL scheme 'ftp'"),
    ({"camera": {"source": 0, "decoder": "tesseract"}}, "unknown decoder 'tesseract'"),
    ({"camera": {"source": 0, "url": "x"}}, "[camera]: unknown key(s) url"),
])
def test_section_errors_name_the_problem(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_spec(_with(**sections))
    assert message in str(err.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hw.toml"
    path.write_text('[[buses]]\nname = "b"\nurl = "loop://"\n\n[camera]\nsource = ""\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hw\.toml: \[camera\]: 'source' '': empty camera"):
        Hardware.from_file(path)


def test_pcsc_socket_is_set_before_first_use_and_a_second_one_refused(tmp_path: Path) -> None:
    """In a fresh process: the config sets PCSCLITE_CSOCK_NAME; once pyscard is loaded, a
    config naming another socket fails clearly instead of silently talking to the wrong pcscd."""
    script = f"""
import json, os
from drivers.hardware import Hardware
from drivers.errors import ConfigError
base = {BASE!r}
Hardware.from_dict({{**base, "card_reader": {{"pcsc_socket": "/tmp/a/pcscd.comm"}}}})
first = os.environ["PCSCLITE_CSOCK_NAME"]
import smartcard.scard
Hardware.from_dict({{**base, "card_reader": {{"pcsc_socket": "/tmp/a/pcscd.comm"}}}})
try:
    Hardware.from_dict({{**base, "card_reader": {{"pcsc_socket": "/tmp/b/pcscd.comm"}}}})
    error = ""
except ConfigError as exc:
    error = str(exc)
print(json.dumps({{"first": first, "error": error}}))
"""
    env = {k: v for k, v in os.environ.items() if k != "PCSCLITE_CSOCK_NAME"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["first"] == "/tmp/a/pcscd.comm"
    assert "pcsc_socket /tmp/b/pcscd.comm cannot be used" in result["error"]
    assert "/tmp/a/pcscd.comm" in result["error"]
    assert "once per process" in result["error"]


def test_pcsc_socket_in_use_in_this_process(pcsc_stack: PcscStack) -> None:
    bind_pcsc_socket(str(pcsc_stack.socket_path))  # the one in use: fine
    with pytest.raises(ConfigError, match="once per process"):
        bind_pcsc_socket("/nonexistent/pcscd.comm")
    assert os.environ["PCSCLITE_CSOCK_NAME"] == str(pcsc_stack.socket_path)


# ------------------------------------------------------------------ against the simulator


@pytest.fixture
def psim(pcsc_stack: PcscStack) -> Iterator[Simulator]:
    """Two boards, a camera and a card reader on the session's pcscd (slot 1), with HTTP."""
    sim = Simulator(parse_config(tomllib.loads(PERIPHERAL_CABINET)), pcscd=pcsc_stack.daemon,
                    pcsc_slot=SLOT)
    sim.start()
    try:
        assert sim.peripheral_errors == {}
        yield sim
    finally:
        sim.stop()
        assert pcsc_stack.daemon.running(), "the shared pcscd must outlive the simulator"
        assert wait_until(lambda: reader_empty(pcsc_stack.reader_names[SLOT]))


@pytest.fixture
def phw(psim: Simulator, tmp_path: Path) -> Iterator[Hardware]:
    hw = Hardware.from_file(psim.write_hardware_config(tmp_path / "hw.toml"))
    try:
        yield hw
    finally:
        hw.close()


def _until(read: Callable[[], list[str]], timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = read()
        if found:
            return found
    return []


@pytest.mark.pcsc
def test_hardware_config_points_at_the_simulated_peripherals(
        psim: Simulator, pcsc_stack: PcscStack, tmp_path: Path) -> None:
    doc = tomllib.loads(psim.write_hardware_config(tmp_path / "hw.toml").read_text("utf-8"))
    assert doc["card_reader"] == {"reader": pcsc_stack.reader_names[SLOT],
                                  "pcsc_socket": str(pcsc_stack.socket_path)}
    assert doc["camera"] == {"source": psim.camera_url}
    assert psim.camera_url and psim.camera_url.startswith("http://127.0.0.1:")


@pytest.mark.pcsc
def test_http_card_is_read_through_pcscd(psim: Simulator, phw: Hardware) -> None:
    assert phw.card_reader is not None
    assert phw.card_reader.read_uid(timeout=0.5) is None  # nothing on the reader yet
    _post(f"{psim.control_url}/cards/present", {"uid": UID.hex().upper()})
    assert phw.card_reader.read_uid(timeout=5.0) == UID
    assert psim.state()["peripherals"]["card_present"] is True
    _post(f"{psim.control_url}/cards/remove")
    assert psim.card_reader_name is not None
    assert wait_until(lambda: reader_empty(str(psim.card_reader_name)))
    assert phw.card_reader.read_uid(timeout=0.0) is None


def test_http_qr_and_isbn_are_decoded_from_the_stream(tmp_path: Path) -> None:
    cabinet = TWO_BOARDS + "\n[camera]\nenabled = true\n"
    with Simulator(parse_config(tomllib.loads(cabinet))) as sim:
        hw = Hardware.from_dict(sim.hardware_config())
        assert hw.camera is not None and hw.card_reader is None
        with hw.camera as camera:
            _post(f"{sim.control_url}/camera/qr", {"text": "LBX1:reader-42:token"})
            assert _until(camera.read_qr) == ["LBX1:reader-42:token"]
            _post(f"{sim.control_url}/camera/isbn", {"isbn": "978-7-111-12345"})
            assert _until(camera.read_isbns) == ["9787111123453"]
            _post(f"{sim.control_url}/camera/clear")
            time.sleep(0.3)  # frames already in flight still show the barcode
            for _ in range(3):
                camera.read_isbns()
            assert camera.read_qr() == [] and camera.read_isbns() == []
        hw.close()


@pytest.mark.pcsc
def test_devices_and_selftest_list_both(psim: Simulator, phw: Hardware,
                                        pcsc_stack: PcscStack, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    report = check_devices(phw)
    assert [(p.device, p.availability) for p in report.peripherals] == [
        ("card reader", "ok"), ("camera", "ok")]
    assert report.passed
    hw_path = psim.write_hardware_config(tmp_path / "devices-hw.toml")
    assert diag_main(["--hardware", str(hw_path), "devices"]) == 0
    out = capsys.readouterr().out
    assert f"card reader ({pcsc_stack.reader_names[SLOT]}): ok" in out
    assert f"camera ({psim.camera_url}): ok" in out
    assert f"PC/SC socket {pcsc_stack.socket_path}" in out
    selftest = run_selftest(phw, link_probes=2)
    assert selftest.passed and selftest.verdict == ["all parts passed"]
    assert {p.device for p in selftest.peripherals} == {"card reader", "camera"}


def test_unavailable_peripherals_are_named_in_the_verdict(
        two_board_sim: Simulator, tmp_path: Path) -> None:
    """A fresh process whose config names a pcscd socket nobody serves and a dead stream."""
    doc = two_board_sim.hardware_config()
    doc["card_reader"] = {"reader": "", "pcsc_socket": str(tmp_path / "pcscd.comm")}
    doc["camera"] = {"source": "http://127.0.0.1:9/stream.mjpg"}
    hw_path = tmp_path / "hw.toml"
    from simulator.simulator import _to_toml

    hw_path.write_text(_to_toml(doc), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PCSCLITE_CSOCK_NAME"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lendbox.cli", "diag", "--hardware", str(hw_path), *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)

    devices = run("devices")
    assert devices.returncode == 1, devices.stderr
    assert "card reader: unavailable — PC/SC service not running" in devices.stdout
    assert "camera (http://127.0.0.1:9/stream.mjpg): unavailable — camera" in devices.stdout
    selftest = run("--json", "selftest")
    assert selftest.returncode == 1, selftest.stderr
    verdict = json.loads(selftest.stdout)["verdict"]
    assert any(v.startswith("card reader: unavailable — PC/SC service not running")
               for v in verdict), verdict
    assert any(v.startswith("camera: unavailable — ") for v in verdict), verdict
    assert not any(v.startswith(("board", "door", "bus")) for v in verdict), verdict


@pytest.mark.pcsc
def test_diag_card_prints_the_hash_never_the_uid(
        psim: Simulator, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    hw_path = psim.write_hardware_config(tmp_path / "hw.toml")
    psim.present_card(UID)
    assert diag_main(["--hardware", str(hw_path), "card", "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert f"UID hash {uid_digest(UID)} (7-byte UID" in out and "PASS" in out
    assert UID.hex() not in out.lower()
    assert diag_main(["--hardware", str(hw_path), "--json", "card", "--timeout", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["uid_digest"] == uid_digest(UID) and UID.hex() not in json.dumps(data).lower()

    # The same from a fresh process, which must set PCSCLITE_CSOCK_NAME itself.
    env = {k: v for k, v in os.environ.items() if k != "PCSCLITE_CSOCK_NAME"}
    proc = subprocess.run(
        [sys.executable, "-m", "lendbox.cli", "diag", "--hardware", str(hw_path), "card",
         "--timeout", "5"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "UID hash " in proc.stdout and UID.hex() not in proc.stdout.lower()

    psim.remove_card()
    assert wait_until(lambda: reader_empty(str(psim.card_reader_name)))
    assert diag_main(["--hardware", str(hw_path), "card", "--timeout", "0.5"]) == 1
    assert "no card within 0.5 s" in capsys.readouterr().out


@pytest.mark.pcsc
def test_diag_camera_prints_qr_and_isbn(psim: Simulator, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    hw_path = psim.write_hardware_config(tmp_path / "hw.toml")
    psim.show_qr("LBX1:diag-camera")
    assert diag_main(["--hardware", str(hw_path), "camera", "--seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert "  QR: LBX1:diag-camera" in out and "PASS" in out
    psim.show_isbn("9787111123453")
    hw = Hardware.from_file(hw_path)
    try:
        check = watch_camera(hw, seconds=1.0)
    finally:
        hw.close()
    assert "9787111123453" in check.isbns and check.frames > 0 and check.passed


def test_diag_card_and_camera_need_their_sections(hw: Hardware) -> None:
    with pytest.raises(ConfigError, match=r"no \[card_reader\] section"):
        read_card(hw, timeout=0)
    with pytest.raises(ConfigError, match=r"no \[camera\] section"):
        watch_camera(hw, seconds=0)
