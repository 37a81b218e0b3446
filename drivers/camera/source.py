"""What a camera source string means: a device index, an image file, a video file or a URL.

Parsing is pure and done in the driver's constructor, so a typo in the configuration is
reported at start-up rather than when a reader first holds up a QR code; nothing is opened.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from drivers.errors import CameraError

__all__ = ["IMAGE_SUFFIXES", "STREAM_SCHEMES", "CameraSource", "SourceKind"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm"})
STREAM_SCHEMES = frozenset({"http", "https", "rtsp", "rtsps", "rtmp", "udp", "tcp"})


class SourceKind(enum.Enum):
    DEVICE = "device"  # a local camera by index (/dev/video<N> on Linux)
    IMAGE = "image"  # a still image file, served as the same frame on every read
    VIDEO = "video"  # a video file, rewound at its end
    URL = "url"  # a network stream, e.g. MJPEG over HTTP or RTSP; reconnected when lost


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraSource:
    """A parsed source. ``target`` is an ``int`` for devices, else a path or URL string."""

    kind: SourceKind
    target: int | str

    @property
    def live(self) -> bool:
        """Live sources can disappear and come back, so they are reconnected."""
        return self.kind in (SourceKind.DEVICE, SourceKind.URL)

    @classmethod
    def parse(cls, source: int | str | Path) -> CameraSource:
        """Classify ``source``: an int or digit string is a device index, ``scheme://`` a URL,
        a path with an image suffix a still image, any other path a video file.

        Raises:
            CameraError: negative index, empty string, or an unsupported URL scheme.
        """
        if isinstance(source, bool):
            raise CameraError("a camera source is an index, a path or a URL, not a bool")
        if isinstance(source, int) or (isinstance(source, str) and source.isascii()
                                       and source.isdigit()):
            index = int(source)
            if index < 0:
                raise CameraError(f"camera index must be ≥ 0, got {index}")
            return cls(kind=SourceKind.DEVICE, target=index)
        if isinstance(source, Path):
            source = str(source)
        if not source.strip():
            raise CameraError("empty camera source")
        if "://" in source:
            scheme = urlsplit(source).scheme.lower()
            if scheme not in STREAM_SCHEMES:
                raise CameraError(
                    f"unsupported camera URL scheme {scheme!r}; use one of "
                    f"{sorted(STREAM_SCHEMES)} or a plain file path"
                )
            return cls(kind=SourceKind.URL, target=source)
        if Path(source).suffix.lower() in IMAGE_SUFFIXES:
            return cls(kind=SourceKind.IMAGE, target=source)
        return cls(kind=SourceKind.VIDEO, target=source)

    def describe(self) -> str:
        """The source for logs and diagnostics, with any URL password removed."""
        if self.kind is not SourceKind.URL:
            return f"{self.kind.value}:{self.target}"
        parts = urlsplit(str(self.target))
        if parts.password is None:
            return str(self.target)
        netloc = f"{parts.username}:***@{parts.hostname}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
