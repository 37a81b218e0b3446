"""The camera driver: open a source with OpenCV, read frames, decode QR e-cards and ISBNs.

Rules it keeps (lendbox conventions §6):
- the constructor only parses and stores configuration; :meth:`Camera.open` touches devices;
- every failure is a :class:`~drivers.errors.CameraError` (bad source, unreadable file,
  misuse) or :class:`~drivers.errors.DeviceUnavailable` (camera or stream not answering);
- a live source (device index or URL) that stops delivering frames is released and reopened
  on a later read, no sooner than ``reconnect_interval`` after the last failed attempt
  (monotonic, injectable clock); no background thread, so nothing to leak;
- :meth:`Camera.status` says ok / degraded / unavailable and why, from the last read, and
  never reports a lost stream as ok.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from drivers.base import Availability, DeviceStatus
from drivers.camera.decoders import (
    EAN_BACKENDS,
    QR_BACKENDS,
    DecoderBackend,
    decode_isbns,
    decode_qr,
    get_backend,
)
from drivers.camera.source import CameraSource, SourceKind
from drivers.errors import CameraError, DeviceUnavailable

__all__ = ["Camera"]

Clock = Callable[[], float]


class Camera:
    """One camera (or image/video file, or network stream) and its QR/EAN-13 decoding.

    Args:
        source: device index (``0``), image path, video path, or URL
            (``http://host:8080/stream.mjpg``, ``rtsp://…``).
        decoder: QR decoder: ``"auto"`` (the preferred installed one, see
            ``docs/qr-decoders.md``) or a name from :data:`drivers.camera.decoders.QR_BACKENDS`.
        isbn_decoder: EAN-13 decoder: ``"auto"`` (first installed of ``EAN_BACKENDS``) or a name.
        reconnect_interval: seconds between reconnection attempts to a lost live source.
        timeout: seconds OpenCV may spend opening a stream or waiting for one frame.
        dark_threshold: mean grey level (0–255) under which frames count as "too dark"
            (lens covered, cabinet light off); the camera is then reported degraded.
        clock: monotonic clock, injectable for tests.

    Raises:
        CameraError: ``source`` cannot be a camera source (see :meth:`CameraSource.parse`).
        ValueError: unknown decoder name, or a negative interval/timeout.
    """

    def __init__(
        self,
        source: int | str | Path,
        *,
        decoder: str = "auto",
        isbn_decoder: str = "auto",
        reconnect_interval: float = 2.0,
        timeout: float = 3.0,
        dark_threshold: float = 12.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if reconnect_interval < 0 or timeout <= 0:
            raise ValueError("reconnect_interval must be ≥ 0 and timeout > 0")
        for name in (decoder, isbn_decoder):
            if name != "auto" and name not in QR_BACKENDS:
                raise ValueError(f"unknown decoder {name!r}; choose from {QR_BACKENDS} or 'auto'")
        self.source = CameraSource.parse(source)
        self._decoder_name = decoder
        self._isbn_decoder_name = isbn_decoder
        self._reconnect_interval = reconnect_interval
        self._timeout_ms = int(timeout * 1000)
        self._dark_threshold = dark_threshold
        self._clock = clock
        self._lock = threading.RLock()
        self._backend: DecoderBackend | None = None
        self._ean_backend: DecoderBackend | None = None
        self._decoder_note = ""
        self._opened = False
        self._cap: cv2.VideoCapture | None = None
        self._still: np.ndarray | None = None
        self._lost_reason = ""
        self._next_attempt = 0.0
        self._last_mean: float | None = None
        self._frames_read = 0
        self._read_failures = 0
        self._reconnect_attempts = 0
        self._reconnects = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        """Open the source and pick the decoder; idempotent.

        Raises:
            CameraError: file missing or not an image/video; no decoder installed.
            DeviceUnavailable: the device or stream cannot be reached now. The camera stays
                closed; call :meth:`open` again later.
        """
        with self._lock:
            if self._opened:
                return
            self._backend, self._decoder_note = self._choose_backend()
            self._ean_backend = get_backend(self._isbn_decoder_name, order=EAN_BACKENDS)
            if self.source.kind is SourceKind.IMAGE:
                self._still = self._load_image(Path(str(self.source.target)))
            else:
                self._cap = self._open_capture()
            self._opened = True
            self._lost_reason = ""

    def close(self) -> None:
        """Release the device or stream; idempotent. A closed camera can be opened again."""
        with self._lock:
            if self._cap is not None:
                self._cap.release()
            self._cap = None
            self._still = None
            self._opened = False
            self._lost_reason = ""
            self._last_mean = None

    def __enter__(self) -> Camera:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`, even while a live stream is lost."""
        return self._opened

    @property
    def decoder(self) -> str:
        """Name of the decoder in use (``""`` before :meth:`open`)."""
        return self._backend.name if self._backend is not None else ""

    # -- reading --------------------------------------------------------------------------------

    def read_frame(self) -> np.ndarray:
        """The next frame, BGR uint8 (a copy for still images, safe to modify).

        Raises:
            CameraError: the camera is not open, or a file source cannot be read.
            DeviceUnavailable: a live source delivered no frame (it is released and will be
                reopened by a later call, after ``reconnect_interval``), or it is still lost.
        """
        with self._lock:
            if not self._opened:
                raise CameraError("camera is not open; call open() first")
            if self._still is not None:
                return self._accept(self._still.copy())
            if self._cap is None:
                self._reconnect()
            assert self._cap is not None
            ok, frame = self._cap.read()
            if ok and frame is not None:
                return self._accept(frame)
            self._read_failures += 1
            if self.source.kind is SourceKind.VIDEO:
                return self._rewind()
            self._lose("no frame from the source")
            raise DeviceUnavailable(f"camera {self.source.describe()}: {self._lost_reason}")

    def read_qr(self) -> list[str]:
        """Read one frame and return the texts of the QR codes on it (often empty).

        Raises:
            as :meth:`read_frame`.
        """
        frame = self.read_frame()
        assert self._backend is not None
        return decode_qr(frame, self._backend)

    def read_isbns(self) -> list[str]:
        """Read one frame and return the valid ISBN-13s on it, for purchase recommendations.

        Raises:
            as :meth:`read_frame`.
        """
        frame = self.read_frame()
        assert self._ean_backend is not None
        return decode_isbns(frame, self._ean_backend)

    # -- availability ---------------------------------------------------------------------------

    def status(self) -> DeviceStatus:
        """Availability from the last read: unavailable when closed or lost; degraded when a
        fallback decoder is in use or frames are too dark to decode; ok otherwise."""
        with self._lock:
            if not self._opened:
                return DeviceStatus(availability=Availability.UNAVAILABLE, reason="not opened")
            if self._lost_reason:
                return DeviceStatus(
                    availability=Availability.UNAVAILABLE,
                    reason=f"{self._lost_reason}; reconnecting every "
                    f"{self._reconnect_interval:g} s",
                )
            if self._last_mean is not None and self._last_mean < self._dark_threshold:
                return DeviceStatus(
                    availability=Availability.DEGRADED,
                    reason=f"frames too dark (mean {self._last_mean:.0f}/255): lens covered "
                    "or light off",
                )
            if self._decoder_note:
                return DeviceStatus(availability=Availability.DEGRADED, reason=self._decoder_note)
            return DeviceStatus(availability=Availability.OK)

    def diagnostics(self) -> dict[str, object]:
        """What a technician needs to see: source (no password), decoder, counters, status."""
        with self._lock:
            return {
                "source": self.source.describe(),
                "kind": self.source.kind.value,
                "decoder": self.decoder,
                "isbn_decoder": self._ean_backend.name if self._ean_backend else "",
                "status": self.status().as_dict(),
                "frames_read": self._frames_read,
                "read_failures": self._read_failures,
                "reconnect_attempts": self._reconnect_attempts,
                "reconnects": self._reconnects,
                "last_frame_mean": None if self._last_mean is None else round(self._last_mean, 1),
            }

    # -- internals ------------------------------------------------------------------------------

    def _choose_backend(self) -> tuple[DecoderBackend, str]:
        if self._decoder_name != "auto":
            return get_backend(self._decoder_name), ""
        backend = get_backend("auto")
        note = ""
        if backend.name != QR_BACKENDS[0]:
            note = f"preferred QR decoder {QR_BACKENDS[0]} not installed; using {backend.name}"
        return backend, note

    @staticmethod
    def _load_image(path: Path) -> np.ndarray:
        if not path.is_file():
            raise CameraError(f"image source {path} does not exist")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise CameraError(f"image source {path} is not a readable image")
        return image

    def _open_capture(self) -> cv2.VideoCapture:
        kind, target = self.source.kind, self.source.target
        if kind is SourceKind.VIDEO and not Path(str(target)).is_file():
            raise CameraError(f"video source {target} does not exist")
        if kind is SourceKind.URL:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self._timeout_ms,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, self._timeout_ms,
            ]
            cap = cv2.VideoCapture(str(target), cv2.CAP_FFMPEG, params)
        elif kind is SourceKind.VIDEO:
            cap = cv2.VideoCapture(str(target), cv2.CAP_FFMPEG)
        else:
            cap = cv2.VideoCapture(int(target))
        if cap.isOpened():
            return cap
        cap.release()
        if kind is SourceKind.VIDEO:
            raise CameraError(f"video source {target} is not a readable video")
        raise DeviceUnavailable(f"camera {self.source.describe()} cannot be opened")

    def _accept(self, frame: np.ndarray) -> np.ndarray:
        self._frames_read += 1
        # Mean of a 1/8-subsampled grey image: cheap and enough to tell "dark" from "lit".
        self._last_mean = float(frame[::8, ::8].mean())
        return frame

    def _rewind(self) -> np.ndarray:
        assert self._cap is not None
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise CameraError(f"video source {self.source.target} yields no frame")
        return self._accept(frame)

    def _lose(self, reason: str) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap = None
        self._lost_reason = f"stream lost: {reason}"
        self._last_mean = None  # "unknown", not the last frame's value
        self._next_attempt = self._clock()  # the first reconnect may be tried at once

    def _reconnect(self) -> None:
        now = self._clock()
        if now < self._next_attempt:
            raise DeviceUnavailable(
                f"camera {self.source.describe()}: {self._lost_reason}; next attempt in "
                f"{self._next_attempt - now:.1f} s"
            )
        self._reconnect_attempts += 1
        try:
            self._cap = self._open_capture()
        except DeviceUnavailable:
            self._next_attempt = now + self._reconnect_interval
            self._lost_reason = "stream lost: reconnect failed"
            raise
        self._reconnects += 1
        self._lost_reason = ""
