"""A camera emulator: a 640×480 MJPEG-over-HTTP stream showing a QR code or an EAN-13 barcode.

The cabinet's camera driver opens cameras with OpenCV, and OpenCV's FFmpeg backend reads
``multipart/x-mixed-replace`` MJPEG streams over HTTP, the format IP cameras and
``mjpg-streamer`` serve. Serving that same format lets every driver path (open, read, decode,
stream lost, reconnect) run in tests and in ``lendbox demo`` without a webcam.

The emulator also renders still frames (:func:`render_qr_frame`, :func:`render_ean13_frame`)
and can write the current frame to an image file (:meth:`CameraEmulator.write_still`), a
file source the driver opens as well.

Only the standard library, numpy, OpenCV and zxing-cpp (the QR *encoder* here) are used; the
EAN-13 symbol is drawn by hand so a misprinted code (wrong check digit) can be shown too.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import zxingcpp

__all__ = [
    "FRAME_WIDTH",
    "FRAME_HEIGHT",
    "CameraEmulator",
    "Degradation",
    "blank_frame",
    "ean13_modules",
    "render_ean13_frame",
    "render_qr_frame",
]

FRAME_WIDTH = 640
FRAME_HEIGHT = 480
BOUNDARY = "lendboxframe"

Degradation = Callable[[np.ndarray], np.ndarray]
"""A function applied to each served frame (BGR uint8 in, same shape out), e.g. blur."""

# EAN-13 symbol tables (GS1 General Specifications §5.2.1.2): left-half "L" (odd parity)
# patterns, the "R" patterns are their complements, "G" patterns are "R" reversed; the first
# digit is not drawn, it selects the L/G mix of the left half.
_L_CODES = (
    "0001101", "0011001", "0010011", "0111101", "0100011",
    "0110001", "0101111", "0111011", "0110111", "0001011",
)
_R_CODES = tuple("".join("1" if b == "0" else "0" for b in code) for code in _L_CODES)
_G_CODES = tuple(code[::-1] for code in _R_CODES)
_PARITY = (
    "LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG",
    "LGGLLG", "LGGGLG", "LGLGGL", "LGLGLG", "LGGLGL",
)


def blank_frame(seed: int = 0) -> np.ndarray:
    """A 640×480 BGR 'scene' with soft shading and a few shapes, so frames are not flat grey.

    A flat background would flatter detectors; real cabinet cameras see a counter, a hand
    and a phone bezel.
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:FRAME_HEIGHT, 0:FRAME_WIDTH].astype(np.float32)
    shade = 150 + 40 * np.sin(xs / 170.0 + rng.uniform(0, 6)) * np.cos(ys / 210.0)
    frame = np.repeat(shade[:, :, None], 3, axis=2).astype(np.uint8)
    for _ in range(6):
        x, y = int(rng.integers(0, FRAME_WIDTH)), int(rng.integers(0, FRAME_HEIGHT))
        w, h = int(rng.integers(20, 160)), int(rng.integers(20, 120))
        colour = tuple(int(c) for c in rng.integers(40, 220, size=3))
        cv2.rectangle(frame, (x, y), (x + w, y + h), colour, thickness=-1)
    return frame


def _paste_centered(frame: np.ndarray, symbol: np.ndarray, centre: tuple[int, int]) -> None:
    """Paste a greyscale symbol into a BGR frame, clipped to the frame."""
    h, w = symbol.shape
    cx, cy = centre
    x0, y0 = max(0, cx - w // 2), max(0, cy - h // 2)
    x1, y1 = min(FRAME_WIDTH, x0 + w), min(FRAME_HEIGHT, y0 + h)
    frame[y0:y1, x0:x1] = symbol[: y1 - y0, : x1 - x0, None]


def _optics(frame: np.ndarray) -> np.ndarray:
    """A slight lens blur: no camera delivers pixel-perfect edges, and some detectors
    (OpenCV's barcode detector) miss perfectly sharp synthetic bars."""
    return cv2.GaussianBlur(frame, (5, 5), 0.8)


def render_qr_frame(
    text: str, *, size: int = 260, seed: int = 0, centre: tuple[int, int] | None = None
) -> np.ndarray:
    """A 640×480 BGR frame with a QR code of ``text`` about ``size`` pixels wide, quiet zone included.

    Args:
        text: the payload, e.g. a reader e-card token ``LBX1:...``.
        size: target width of the symbol on the frame, in pixels (≥ 21).
        seed: seeds the background scene.
        centre: where the symbol's centre goes; the frame centre by default.
    """
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    symbol = np.asarray(zxingcpp.write_barcode_to_image(barcode, scale=1, add_quiet_zones=True))
    symbol = cv2.resize(symbol, (size, size), interpolation=cv2.INTER_NEAREST)
    frame = blank_frame(seed)
    _paste_centered(frame, symbol, centre or (FRAME_WIDTH // 2, FRAME_HEIGHT // 2))
    return _optics(frame)


def ean13_modules(digits: str) -> str:
    """The 95 bar/space modules ('1' = bar) of an EAN-13 symbol for 13 digits, drawn as given.

    The check digit is *not* recomputed: a wrong one is drawn, as on a misprinted label.

    Raises:
        ValueError: ``digits`` is not 13 ASCII digits.
    """
    if len(digits) != 13 or not digits.isascii() or not digits.isdigit():
        raise ValueError(f"an EAN-13 symbol needs 13 digits, got {digits!r}")
    values = [int(d) for d in digits]
    parity = _PARITY[values[0]]
    left = "".join(
        (_L_CODES if p == "L" else _G_CODES)[v] for p, v in zip(parity, values[1:7], strict=True)
    )
    right = "".join(_R_CODES[v] for v in values[7:])
    return "101" + left + "01010" + right + "101"


def render_ean13_frame(digits: str, *, module_px: int = 3, seed: int = 0) -> np.ndarray:
    """A 640×480 BGR frame with an EAN-13 symbol of ``digits`` (drawn as given) in the middle.

    Args:
        digits: 13 digits; a 12-digit string is not accepted here (see
            :meth:`CameraEmulator.show_isbn`, which completes it).
        module_px: width of one module in pixels; 3 px gives a 285 px wide symbol.
        seed: seeds the background scene.
    """
    modules = ean13_modules(digits)
    quiet = 11
    row = np.array([0 if m == "1" else 255 for m in "0" * quiet + modules + "0" * quiet], np.uint8)
    row = np.repeat(row, module_px)
    height = max(60, module_px * 40)
    symbol = np.tile(row, (height, 1))
    symbol = cv2.copyMakeBorder(symbol, 12, 12, 0, 0, cv2.BORDER_CONSTANT, value=255)
    frame = blank_frame(seed)
    _paste_centered(frame, symbol, (FRAME_WIDTH // 2, FRAME_HEIGHT // 2))
    return _optics(frame)


def _check_digit(first12: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


class _StreamServer(ThreadingHTTPServer):
    """Joins its handler threads on close, so ``stop()`` leaves no thread behind."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True


class CameraEmulator:
    """Serves what a camera sees as an MJPEG stream on ``http://127.0.0.1:<port>/stream.mjpg``.

    The constructor binds nothing; :meth:`start` binds the port (0 = a free one chosen now)
    and starts the server thread; :meth:`stop` closes every open stream and joins every
    thread. Starting a new emulator with ``port=old.port`` models a camera that comes back.

    Args:
        port: TCP port on 127.0.0.1; 0 picks a free one at :meth:`start`.
        fps: frames per second sent to each client. A client that reads slower than this
            falls behind by the frames buffered in TCP, which is why the default is modest.
        degrade: optional function applied to each frame before JPEG encoding (blur, glare…).
        jpeg_quality: 0–100.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        fps: float = 10.0,
        degrade: Degradation | None = None,
        jpeg_quality: int = 85,
    ) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        self._port = port
        self._period = 1.0 / fps
        self._degrade = degrade
        self._quality = jpeg_quality
        self._lock = threading.Lock()
        self._frame = blank_frame()
        self._jpeg = self._encode(self._frame)
        self._stopping = threading.Event()
        self._server: _StreamServer | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()

    # -- what the camera sees ---------------------------------------------------------------

    def show_qr(self, text: str, *, size: int = 260) -> None:
        """Show a QR code holding ``text`` (e.g. a reader e-card token)."""
        self.show_frame(render_qr_frame(text, size=size))

    def show_isbn(self, isbn13: str) -> None:
        """Show an EAN-13 symbol. 12 digits get their check digit; 13 are drawn as given,
        so a wrong check digit can be shown on purpose."""
        digits = isbn13.replace("-", "")
        if len(digits) == 12 and digits.isdigit():
            digits += _check_digit(digits)
        self.show_frame(render_ean13_frame(digits))

    def clear(self) -> None:
        """Show the empty scene (nothing held up to the camera)."""
        self.show_frame(blank_frame())

    def show_frame(self, frame: np.ndarray) -> None:
        """Show an arbitrary 640×480 BGR frame (degradation, if any, is applied when served)."""
        if frame.shape != (FRAME_HEIGHT, FRAME_WIDTH, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected a {FRAME_WIDTH}x{FRAME_HEIGHT} BGR uint8 frame")
        jpeg = self._encode(frame)
        with self._lock:
            self._frame = frame.copy()
            self._jpeg = jpeg

    def current_frame(self) -> np.ndarray:
        """The frame as served (degradation applied), for comparison in tests."""
        with self._lock:
            jpeg = self._jpeg
        return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)

    def write_still(self, path: str | Path) -> Path:
        """Write the current served frame to an image file (PNG/JPEG by suffix): a file source."""
        path = Path(path)
        if not cv2.imwrite(str(path), self.current_frame()):
            raise OSError(f"could not write {path}")
        return path

    def _encode(self, frame: np.ndarray) -> bytes:
        if self._degrade is not None:
            frame = self._degrade(frame)
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()

    # -- server lifecycle -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the requested one before :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """The stream URL OpenCV opens; valid once started."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return f"http://127.0.0.1:{self._port}/stream.mjpg"

    def start(self) -> CameraEmulator:
        """Bind the port and serve in a background thread; returns self for chaining."""
        if self._server is not None:
            raise RuntimeError("already started")
        self._stopping.clear()
        server = _StreamServer(("127.0.0.1", self._port), self._handler_class())
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"camera-emulator-{self._port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every stream, stop serving and join all threads; idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        with self._lock:
            clients = list(self._clients)
        for sock in clients:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.shutdown()
        server.server_close()  # joins handler threads (block_on_close)
        if thread is not None:
            thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> CameraEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return  # the stream would log one line per request; nothing useful

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?")[0] in ("/still.jpg", "/snapshot.jpg"):
                    emulator._serve_still(self)
                elif self.path.split("?")[0] in ("/", "/stream.mjpg", "/video"):
                    emulator._serve_stream(self)
                else:
                    self.send_error(404)

        return Handler

    def _serve_still(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            jpeg = self._jpeg
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Length", str(len(jpeg)))
        handler.end_headers()
        handler.wfile.write(jpeg)

    def _serve_stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace;boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        with self._lock:
            self._clients.add(handler.connection)
        try:
            while not self._stopping.is_set():
                with self._lock:
                    jpeg = self._jpeg
                part = (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n"
                ).encode("ascii")
                handler.wfile.write(part + jpeg + b"\r\n")
                handler.wfile.flush()
                self._stopping.wait(self._period)
        except OSError:
            pass  # the client went away, or stop() shut the socket
        finally:
            with self._lock:
                self._clients.discard(handler.connection)
