"""Exceptions of firmware_protocol: one tree, rooted at FirmwareProtocolError.

Every failure to understand bytes — a frame off the wire or the memory of an RFID tag —
raises a subclass, so callers can catch the family with one clause and still tell cases apart.
"""

from __future__ import annotations

__all__ = [
    "FirmwareProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "FrameError",
    "Garbage",
    "BadCrc",
    "BadLength",
    "TruncatedFrame",
    "UnknownCommand",
    "BadPayload",
    "TagDataError",
]


class FirmwareProtocolError(Exception):
    """Base of every error raised by firmware_protocol."""


class LocalProtocolError(FirmwareProtocolError):
    """Our side misused the API (e.g. asked to encode a field that does not fit)."""


class RemoteProtocolError(FirmwareProtocolError):
    """The peer (board, host, tag) sent bytes that break the protocol."""


class FrameError(RemoteProtocolError):
    """A frame on the wire could not be accepted. ``raw`` holds the bytes that were dropped."""

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = bytes(raw)


class Garbage(FrameError):
    """Bytes that are not the start of any frame were skipped."""


class BadCrc(FrameError):
    """A frame's CRC did not match its contents."""


class BadLength(FrameError):
    """A frame's length field is outside what the protocol allows."""


class TruncatedFrame(FrameError):
    """A frame stopped before its end (inter-byte gap expired or the stream ended)."""


class UnknownCommand(FrameError):
    """A well-formed frame carried a command code this side does not know."""

    def __init__(self, message: str, raw: bytes = b"", *, command: int = 0, address: int = 0,
                 seq: int = 0) -> None:
        super().__init__(message, raw)
        self.command = command
        self.address = address
        self.seq = seq


class BadPayload(FrameError):
    """A well-formed frame whose payload does not fit its command's layout."""

    def __init__(self, message: str, raw: bytes = b"", *, command: int = 0, address: int = 0,
                 seq: int = 0) -> None:
        super().__init__(message, raw)
        self.command = command
        self.address = address
        self.seq = seq


class TagDataError(RemoteProtocolError):
    """RFID tag memory is blank, truncated or corrupt (ISO 28560 decoding).

    Subclasses in ``firmware_protocol.iso28560`` name the precise cause.
    """
