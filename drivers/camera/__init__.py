"""Camera driver: reader e-card QR codes and book EAN-13/ISBN barcodes through OpenCV capture.

The decoding functions are pure (frame in, texts out) and usable without a camera; the
:class:`Camera` driver adds capture, reconnection and availability around them.

The names below load their submodule on first use (PEP 562): OpenCV and its decoders cost
about 16 MB of a process's memory, which a kiosk without a camera, or a module that only
needs the EAN-13 arithmetic of :mod:`drivers.camera.ean`, should not pay.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    **dict.fromkeys(("EAN_BACKENDS", "QR_BACKENDS", "DecoderBackend", "available_backends",
                     "decode_ean13", "decode_isbns", "decode_qr", "get_backend", "to_gray"),
                    "decoders"),
    "Camera": "driver",
    **dict.fromkeys(("ean13_check_digit", "is_valid_ean13", "isbn13_from_ean13"), "ean"),
    **dict.fromkeys(("CameraSource", "SourceKind"), "source"),
}

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


def __getattr__(name: str) -> Any:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'drivers.camera' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"drivers.camera.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
