"""Camera driver: pure decoding on generated images, EAN-13/ISBN rules, sources and errors.

No mocks: QR images come from the ``qrcode`` package (bench set) and the simulator's
renderer; streams come from the real emulator over HTTP.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import zxingcpp
from hypothesis import given
from hypothesis import strategies as st

from bench.qr_images import qr_samples
from drivers.base import Availability
from drivers.camera import (
    QR_BACKENDS,
    Camera,
    CameraSource,
    SourceKind,
    available_backends,
    decode_ean13,
    decode_isbns,
    decode_qr,
    ean13_check_digit,
    get_backend,
    is_valid_ean13,
    isbn13_from_ean13,
)
from drivers.errors import CameraError, DeviceUnavailable
from simulator.camera import CameraEmulator, blank_frame, render_ean13_frame, render_qr_frame

TOKEN = "LBX1:r=0012345678;t=2;x=1767225600;s=Qk9PS1MtQVJFLUZPUi1FVkVSWU9ORS1hdC0zLWFt"
ISBN = "9780306406157"

# -- pure decoding --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", available_backends())
def test_each_backend_decodes_an_independently_encoded_clean_qr(backend: str) -> None:
    sample = next(s for s in qr_samples(per_kind=1, seed=7) if s.kind == "clean")
    assert decode_qr(sample.frame, backend) == [sample.expected]


@pytest.mark.parametrize("backend", available_backends())
def test_each_backend_finds_nothing_on_an_empty_scene(backend: str) -> None:
    assert decode_qr(blank_frame(3), backend) == []


def test_auto_decoder_reads_the_simulator_qr_in_colour_and_grey() -> None:
    frame = render_qr_frame(TOKEN)
    assert decode_qr(frame) == [TOKEN]
    assert decode_qr(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)) == [TOKEN]


def test_isbn_with_correct_check_digit_is_returned() -> None:
    assert decode_isbns(render_ean13_frame(ISBN)) == [ISBN]


def test_wrong_check_digit_is_rejected_although_the_bars_are_readable() -> None:
    wrong = ISBN[:12] + "8"
    frame = render_ean13_frame(wrong)
    # The symbol itself is legible: zxing-cpp reads it and flags the checksum.
    raw = zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.EAN13, return_errors=True)
    assert [b.text for b in raw] == [wrong] and raw[0].error is not None
    assert decode_ean13(frame) == []
    assert decode_isbns(frame) == []


def test_valid_ean13_outside_bookland_is_not_an_isbn() -> None:
    ean = "4006381333931"  # a valid retail EAN-13
    frame = render_ean13_frame(ean)
    assert decode_ean13(frame) == [ean]
    assert decode_isbns(frame) == []


@pytest.mark.parametrize("name", ["zxing-cpp", "pyzbar", "opencv"])
def test_each_library_reads_the_isbn(name: str) -> None:
    if name not in available_backends():
        pytest.skip(f"{name} not installed")
    assert decode_isbns(render_ean13_frame(ISBN), name) == [ISBN]


def test_bad_frames_and_decoder_names_raise_clear_errors() -> None:
    with pytest.raises(ValueError):
        decode_qr(np.zeros((10, 10), np.float32))
    with pytest.raises(ValueError):
        decode_qr(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ValueError):
        get_backend("tesseract")


# -- EAN-13 / ISBN arithmetic -----------------------------------------------------------------

twelve_digits = st.text(alphabet="0123456789", min_size=12, max_size=12)


@given(twelve_digits)
def test_a_completed_ean13_is_valid(first12: str) -> None:
    code = first12 + str(ean13_check_digit(first12))
    assert is_valid_ean13(code)


@given(st.sampled_from(["978", "979"]), st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_a_valid_bookland_code_is_its_own_isbn(prefix: str, body: str) -> None:
    code = prefix + body
    code += str(ean13_check_digit(code))
    assert isbn13_from_ean13(code) == code
    assert isbn13_from_ean13(f"{code[:3]}-{code[3:4]}-{code[4:12]}-{code[12]}") == code


@given(twelve_digits, st.integers(0, 12), st.integers(1, 9))
def test_any_single_digit_change_is_rejected(first12: str, position: int, delta: int) -> None:
    code = first12 + str(ean13_check_digit(first12))
    changed = code[:position] + str((int(code[position]) + delta) % 10) + code[position + 1 :]
    assert not is_valid_ean13(changed)
    assert isbn13_from_ean13(changed) is None


@given(st.text(max_size=20))
def test_arbitrary_text_never_raises(text: str) -> None:
    assert is_valid_ean13(text) in (True, False)
    isbn13_from_ean13(text)


def test_non_ascii_digits_and_wrong_lengths_are_invalid() -> None:
    assert not is_valid_ean13("٩٧٨٠٣٠٦٤٠٦١٥٧")  # Arabic-Indic digits
    assert not is_valid_ean13(ISBN[:-1])
    assert isbn13_from_ean13("4006381333931") is None
    with pytest.raises(ValueError):
        ean13_check_digit("97803064061")


# -- sources ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        (0, SourceKind.DEVICE),
        ("2", SourceKind.DEVICE),
        ("card.png", SourceKind.IMAGE),
        ("clip.avi", SourceKind.VIDEO),
        ("http://127.0.0.1:8080/stream.mjpg", SourceKind.URL),
        ("rtsp://cam/1", SourceKind.URL),
    ],
)
def test_sources_are_classified(source: int | str, kind: SourceKind) -> None:
    assert CameraSource.parse(source).kind is kind


@pytest.mark.parametrize("source", [-1, "", "ftp://host/x.jpg", True])
def test_bad_sources_are_rejected_at_construction(source: object) -> None:
    with pytest.raises(CameraError):
        Camera(source)  # type: ignore[arg-type]


def test_url_password_is_not_shown_in_diagnostics() -> None:
    cam = Camera("rtsp://admin:secret@10.0.0.5:554/stream")
    assert "secret" not in str(cam.diagnostics())


def test_constructor_touches_nothing_and_reads_need_open() -> None:
    cam = Camera("/nonexistent/card.png")
    assert cam.status().availability is Availability.UNAVAILABLE
    with pytest.raises(CameraError):
        cam.read_frame()
    with pytest.raises(CameraError):
        cam.open()
    assert not cam.is_open


def test_image_file_source(tmp_path: Path) -> None:
    path = tmp_path / "card.png"
    cv2.imwrite(str(path), render_qr_frame(TOKEN))
    with Camera(path) as cam:
        assert cam.read_qr() == [TOKEN]
        assert cam.read_qr() == [TOKEN]  # a still image is served again
        assert cam.status().availability is Availability.OK


def test_unreadable_files_give_camera_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image")
    with pytest.raises(CameraError):
        Camera(garbage).open()
    bad_video = tmp_path / "garbage.avi"
    bad_video.write_bytes(b"not a video" * 100)
    with pytest.raises(CameraError):
        Camera(bad_video).open()
    with pytest.raises(CameraError):
        Camera(tmp_path / "missing.avi").open()


def test_video_file_source_is_read_and_rewound(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for _ in range(3):
        writer.write(render_ean13_frame(ISBN))
    writer.release()
    with Camera(path) as cam:
        assert [cam.read_isbns() for _ in range(5)] == [[ISBN]] * 5  # past the end: rewound


def test_dark_frames_degrade_the_status(tmp_path: Path) -> None:
    path = tmp_path / "dark.png"
    cv2.imwrite(str(path), np.full((480, 640, 3), 3, np.uint8))
    with Camera(path) as cam:
        cam.read_frame()
        status = cam.status()
    assert status.availability is Availability.DEGRADED and "dark" in status.reason


def test_decoder_can_be_chosen() -> None:
    with pytest.raises(ValueError):
        Camera(0, decoder="tesseract")
    cam = Camera("x.png", decoder=QR_BACKENDS[-1])
    assert cam.decoder == ""  # chosen at open(), not before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_url_is_device_unavailable() -> None:
    cam = Camera(f"http://127.0.0.1:{_free_port()}/stream.mjpg", timeout=1.0)
    with pytest.raises(DeviceUnavailable):
        cam.open()
    assert cam.status().availability is Availability.UNAVAILABLE


def test_missing_device_index_is_device_unavailable() -> None:
    with pytest.raises(DeviceUnavailable):
        Camera(63).open()


# -- reconnect on a real stream, with an injected clock --------------------------------------


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def emulator() -> Iterator[CameraEmulator]:
    emu = CameraEmulator(fps=25).start()
    yield emu
    emu.stop()


def _read_until(cam: Camera, expected: list[str], within: float = 5.0) -> list[str]:
    """Read QR frames until ``expected`` shows (stream frames may lag by a buffer or two)."""
    deadline = time.monotonic() + within
    texts = cam.read_qr()
    while texts != expected and time.monotonic() < deadline:
        texts = cam.read_qr()
    return texts


def test_reconnect_backs_off_then_recovers_on_the_same_port(emulator: CameraEmulator) -> None:
    clock = FakeClock()
    emulator.show_qr(TOKEN)
    cam = Camera(emulator.url, reconnect_interval=5.0, timeout=1.0, clock=clock)
    with cam:
        assert _read_until(cam, [TOKEN]) == [TOKEN]
        port = emulator.port
        emulator.stop()

        with pytest.raises(DeviceUnavailable):
            for _ in range(200):  # frames already buffered may still arrive
                cam.read_frame()
        assert cam.status().availability is Availability.UNAVAILABLE
        with pytest.raises(DeviceUnavailable):
            cam.read_frame()  # immediate attempt after the loss: refused
        attempts = cam.diagnostics()["reconnect_attempts"]
        with pytest.raises(DeviceUnavailable):
            cam.read_frame()  # within the interval: no new attempt
        assert cam.diagnostics()["reconnect_attempts"] == attempts

        back = CameraEmulator(port=port, fps=25).start()
        try:
            back.show_qr("LBX1:back")
            clock.now += 5.0
            assert _read_until(cam, ["LBX1:back"]) == ["LBX1:back"]
            assert cam.status().availability is Availability.OK
            assert cam.diagnostics()["reconnects"] == 1
        finally:
            back.stop()
