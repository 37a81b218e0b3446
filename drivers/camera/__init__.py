"""Camera driver: reader e-card QR codes and book EAN-13/ISBN barcodes through OpenCV capture.

The decoding functions are pure (frame in, texts out) and usable without a camera; the
:class:`Camera` driver adds capture, reconnection and availability around them.
"""

from drivers.camera.decoders import (
    EAN_BACKENDS,
    QR_BACKENDS,
    DecoderBackend,
    available_backends,
    decode_ean13,
    decode_isbns,
    decode_qr,
    get_backend,
    to_gray,
)
from drivers.camera.driver import Camera
from drivers.camera.ean import ean13_check_digit, is_valid_ean13, isbn13_from_ean13
from drivers.camera.source import CameraSource, SourceKind

__all__ = [
    "EAN_BACKENDS",
    "QR_BACKENDS",
    "Camera",
    "CameraSource",
    "DecoderBackend",
    "SourceKind",
    "available_backends",
    "decode_ean13",
    "decode_isbns",
    "decode_qr",
    "ean13_check_digit",
    "get_backend",
    "is_valid_ean13",
    "isbn13_from_ean13",
    "to_gray",
]
