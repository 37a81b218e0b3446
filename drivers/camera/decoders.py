"""QR and EAN-13 decoding of one frame: pure functions over numpy arrays, no camera needed.

Three decoder libraries can be installed; each is wrapped in a small backend with the same
two methods. Which one the driver uses by default was chosen by measurement
(``bench/qr_decode.py``, figures and reasoning in ``docs/qr-decoders.md``): zxing-cpp decoded
the most degraded reader-card QR codes and was the fastest, so it comes first in
:data:`QR_BACKENDS`; the others remain as choices and as fallbacks when it is not installed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import cv2
import numpy as np

from drivers.camera.ean import is_valid_ean13, isbn13_from_ean13
from drivers.errors import CameraError

__all__ = [
    "QR_BACKENDS",
    "EAN_BACKENDS",
    "DecoderBackend",
    "available_backends",
    "decode_ean13",
    "decode_isbns",
    "decode_qr",
    "get_backend",
    "to_gray",
]


class DecoderBackend(Protocol):
    """One decoder library. Both methods take an 8-bit greyscale image and return raw texts."""

    name: str

    def qr(self, gray: np.ndarray) -> list[str]:
        """Texts of the QR codes found (empty list when none)."""
        ...

    def ean13(self, gray: np.ndarray) -> list[str]:
        """Digit strings of the EAN-13 symbols found, *not yet* check-digit validated."""
        ...


class ZxingCppBackend:
    """zxing-cpp (``zxingcpp.read_barcodes``); its binding always tries hard (rotations, downscale)."""

    name = "zxing-cpp"

    def __init__(self) -> None:
        import zxingcpp  # noqa: PLC0415 - optional dependency, imported when chosen

        self._zx = zxingcpp

    def qr(self, gray: np.ndarray) -> list[str]:
        found = self._zx.read_barcodes(gray, formats=self._zx.BarcodeFormat.QRCode)
        return [b.text for b in found if b.valid]

    def ean13(self, gray: np.ndarray) -> list[str]:
        found = self._zx.read_barcodes(gray, formats=self._zx.BarcodeFormat.EAN13)
        return [b.text for b in found if b.valid]


class OpenCvBackend:
    """OpenCV's ``QRCodeDetector`` (multi-code) and ``barcode.BarcodeDetector`` for EAN-13."""

    name = "opencv"

    def _detector(self) -> cv2.QRCodeDetector:
        return cv2.QRCodeDetector()

    def qr(self, gray: np.ndarray) -> list[str]:
        # A fresh detector per call: OpenCV detectors keep state and are not thread-safe;
        # constructing one costs microseconds.
        try:
            ok, texts, _points, _straight = self._detector().detectAndDecodeMulti(gray)
        except cv2.error:
            return []  # OpenCV asserts on some degenerate candidate quadrilaterals
        return [t for t in texts if t] if ok else []

    def ean13(self, gray: np.ndarray) -> list[str]:
        try:
            ok, texts, types, _points = cv2.barcode.BarcodeDetector().detectAndDecodeWithType(gray)
        except cv2.error:
            return []
        if not ok:
            return []
        return [t for t, kind in zip(texts, types, strict=False) if t and kind == "EAN_13"]


class OpenCvArucoBackend(OpenCvBackend):
    """OpenCV's ``QRCodeDetectorAruco``: finder patterns located with the ArUco machinery."""

    name = "opencv-aruco"

    def _detector(self) -> cv2.QRCodeDetector:
        return cv2.QRCodeDetectorAruco()


class PyzbarBackend:
    """ZBar through pyzbar; needs the system library ``libzbar0``."""

    name = "pyzbar"

    def __init__(self) -> None:
        from pyzbar import pyzbar  # noqa: PLC0415 - optional; raises ImportError without libzbar

        self._pz = pyzbar

    def _read(self, gray: np.ndarray, symbol: object) -> list[str]:
        found = self._pz.decode(gray, symbols=[symbol])
        return [r.data.decode("utf-8", errors="replace") for r in found]

    def qr(self, gray: np.ndarray) -> list[str]:
        return self._read(gray, self._pz.ZBarSymbol.QRCODE)

    def ean13(self, gray: np.ndarray) -> list[str]:
        return self._read(gray, self._pz.ZBarSymbol.EAN13)


_FACTORIES: dict[str, type] = {
    "zxing-cpp": ZxingCppBackend,
    "opencv": OpenCvBackend,
    "opencv-aruco": OpenCvArucoBackend,
    "pyzbar": PyzbarBackend,
}

QR_BACKENDS: tuple[str, ...] = ("zxing-cpp", "pyzbar", "opencv-aruco", "opencv")
"""Backend names in order of preference for QR codes (measured: decode rate, then speed)."""

EAN_BACKENDS: tuple[str, ...] = ("pyzbar", "zxing-cpp", "opencv")
"""Order of preference for EAN-13: ZBar read more blurred book barcodes, zxing-cpp is faster."""

_cache: dict[str, DecoderBackend] = {}


def get_backend(name: str = "auto", *, order: tuple[str, ...] = QR_BACKENDS) -> DecoderBackend:
    """The backend called ``name``, or for ``"auto"`` the first installed one of ``order``
    (:data:`QR_BACKENDS` by default; pass :data:`EAN_BACKENDS` for book barcodes).

    Raises:
        ValueError: unknown name (a configuration mistake).
        CameraError: the named library is not installed, or (``"auto"``) none is.
    """
    if name == "auto":
        for candidate in order:
            try:
                return get_backend(candidate)
            except CameraError:
                continue
        raise CameraError("no QR decoder library is installed (zxing-cpp, opencv, pyzbar)")
    if name not in _FACTORIES:
        raise ValueError(f"unknown decoder {name!r}; choose from {sorted(_FACTORIES)} or 'auto'")
    if name not in _cache:
        try:
            _cache[name] = _FACTORIES[name]()
        except ImportError as exc:  # pyzbar raises ImportError when libzbar0 is missing
            raise CameraError(f"decoder {name!r} is not installed: {exc}") from exc
    return _cache[name]


def available_backends() -> list[str]:
    """Names of the installed backends, in order of preference."""
    names = []
    for name in QR_BACKENDS:
        try:
            get_backend(name)
        except CameraError:
            continue
        names.append(name)
    return names


def to_gray(frame: np.ndarray) -> np.ndarray:
    """An 8-bit single-channel view of a BGR, BGRA or greyscale frame.

    Raises:
        ValueError: not a 2-D or 3-D uint8 array with 1, 3 or 4 channels.
    """
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError("a frame is a uint8 numpy array")
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"unsupported frame shape {frame.shape}")


def _unique(texts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(texts))


def _resolve(
    backend: str | DecoderBackend, order: tuple[str, ...] = QR_BACKENDS
) -> DecoderBackend:
    return get_backend(backend, order=order) if isinstance(backend, str) else backend


def decode_qr(frame: np.ndarray, backend: str | DecoderBackend = "auto") -> list[str]:
    """Texts of the QR codes in a frame, each once, in the decoder's order.

    The texts are returned as read; whether one is a genuine, unexpired reader e-card is for
    the kiosk's credential check (it verifies the signature), not the camera.

    Raises:
        ValueError: the frame is not an image array, or the backend name is unknown.
        CameraError: the named backend is not installed.
    """
    gray = to_gray(frame)
    return _unique(_resolve(backend).qr(gray))


def decode_ean13(frame: np.ndarray, backend: str | DecoderBackend = "auto") -> list[str]:
    """EAN-13 codes in a frame whose check digit is right; others are dropped, never corrected.

    ``"auto"`` picks from :data:`EAN_BACKENDS`, not :data:`QR_BACKENDS`. A check digit only
    catches single errors: the benchmark saw decoders return a *valid* but wrong EAN-13 from
    a damaged symbol about once in 20-40 frames, so callers acting on the result (a
    purchase recommendation) should confirm it on a second frame.

    Raises:
        as :func:`decode_qr`.
    """
    gray = to_gray(frame)
    return _unique(t for t in _resolve(backend, EAN_BACKENDS).ean13(gray) if is_valid_ean13(t))


def decode_isbns(frame: np.ndarray, backend: str | DecoderBackend = "auto") -> list[str]:
    """ISBN-13s (valid EAN-13 with a 978/979 prefix) in a frame, for purchase recommendations.

    Raises:
        as :func:`decode_qr`.
    """
    isbns = (isbn13_from_ean13(t) for t in decode_ean13(frame, backend))
    return [i for i in isbns if i is not None]
