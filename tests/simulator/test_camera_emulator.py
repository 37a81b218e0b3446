"""Camera emulator: a real MJPEG-over-HTTP stream that OpenCV and the driver read."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.base import Availability
from drivers.camera import Camera, decode_qr
from drivers.errors import DeviceUnavailable
from simulator.camera import FRAME_HEIGHT, FRAME_WIDTH, CameraEmulator, ean13_modules

TOKEN = "LBX1:r=0012345678;t=1;x=1767225600;s=c2lnbmF0dXJlLW9mLXRoZS1saWJyYXJ5LXNlcnZlcg"
ISBN = "9787020002207"


@pytest.fixture
def emulator() -> Iterator[CameraEmulator]:
    emu = CameraEmulator(fps=25).start()
    yield emu
    emu.stop()


def _until(read: object, expected: list[str], within: float = 5.0) -> list[str]:
    """Call ``read`` until it returns ``expected`` or the deadline passes (streams lag a frame or two)."""
    deadline = time.monotonic() + within
    got = read()  # type: ignore[operator]
    while got != expected and time.monotonic() < deadline:
        got = read()  # type: ignore[operator]
    return got


def test_stream_is_multipart_mjpeg(emulator: CameraEmulator) -> None:
    with urllib.request.urlopen(emulator.url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        head = response.read(200)
    assert head.startswith(b"--lendboxframe\r\nContent-Type: image/jpeg\r\n")


def test_still_endpoint_serves_one_jpeg(emulator: CameraEmulator) -> None:
    emulator.show_qr(TOKEN)
    url = emulator.url.replace("stream.mjpg", "still.jpg")
    with urllib.request.urlopen(url, timeout=5) as response:
        data = response.read()
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape == (FRAME_HEIGHT, FRAME_WIDTH, 3)
    assert decode_qr(frame) == [TOKEN]


def test_opencv_opens_the_url_directly(emulator: CameraEmulator) -> None:
    emulator.show_qr(TOKEN)
    cap = cv2.VideoCapture(emulator.url, cv2.CAP_FFMPEG)
    try:
        assert cap.isOpened()
        ok, frame = cap.read()
    finally:
        cap.release()
    assert ok and frame.shape == (FRAME_HEIGHT, FRAME_WIDTH, 3)


def test_driver_follows_what_the_emulator_shows(emulator: CameraEmulator) -> None:
    emulator.show_qr(TOKEN)
    with Camera(emulator.url, timeout=2.0) as cam:
        assert _until(cam.read_qr, [TOKEN]) == [TOKEN]
        emulator.show_qr("LBX1:someone-else")
        assert _until(cam.read_qr, ["LBX1:someone-else"]) == ["LBX1:someone-else"]
        emulator.show_isbn(ISBN[:12])  # 12 digits: the emulator completes the check digit
        assert _until(cam.read_isbns, [ISBN]) == [ISBN]
        emulator.clear()
        assert _until(cam.read_qr, []) == []
        assert cam.status().availability is Availability.OK


def test_stopped_emulator_makes_the_camera_unavailable_then_a_new_one_recovers_it() -> None:
    first = CameraEmulator(fps=25).start()
    first.show_qr(TOKEN)
    cam = Camera(first.url, reconnect_interval=0.0, timeout=1.0)
    try:
        cam.open()
        assert _until(cam.read_qr, [TOKEN]) == [TOKEN]
        port, url = first.port, first.url
        first.stop()
        with pytest.raises(DeviceUnavailable):
            for _ in range(200):
                cam.read_frame()
        assert cam.status().availability is Availability.UNAVAILABLE
        assert "lost" in cam.status().reason

        second = CameraEmulator(port=port, fps=25).start()
        try:
            assert second.url == url  # the camera came back where it was
            second.show_qr("LBX1:again")
            assert _until(cam.read_qr, ["LBX1:again"]) == ["LBX1:again"]
            assert cam.status().availability is Availability.OK
        finally:
            second.stop()
    finally:
        cam.close()


def test_stop_leaves_no_thread_and_frees_the_port() -> None:
    before = set(threading.enumerate())
    emu = CameraEmulator(fps=25).start()
    cap = cv2.VideoCapture(emu.url, cv2.CAP_FFMPEG)  # a client mid-stream while stopping
    assert cap.read()[0]
    emu.stop()
    emu.stop()  # idempotent
    cap.release()
    assert set(threading.enumerate()) <= before
    with pytest.raises(RuntimeError):
        _ = emu.url


def test_degradation_hook_is_applied_to_served_frames() -> None:
    emu = CameraEmulator(degrade=lambda f: (f // 16).astype(np.uint8))  # very low light
    emu.show_qr(TOKEN)
    assert emu.current_frame().mean() < 16


def test_still_file_written_by_the_emulator_is_a_driver_source(tmp_path: Path) -> None:
    emu = CameraEmulator()
    emu.show_qr(TOKEN)
    path = emu.write_still(tmp_path / "card.jpg")
    with Camera(path) as cam:
        assert cam.read_qr() == [TOKEN]


def test_ean13_modules_follow_the_symbol_structure() -> None:
    modules = ean13_modules(ISBN)
    assert len(modules) == 95
    assert modules[:3] == modules[-3:] == "101" and modules[45:50] == "01010"
    with pytest.raises(ValueError):
        ean13_modules("12345")


def test_bad_frames_are_refused() -> None:
    with pytest.raises(ValueError):
        CameraEmulator().show_frame(np.zeros((10, 10, 3), np.uint8))
