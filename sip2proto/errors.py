"""Exceptions of sip2proto: one tree, rooted at SIP2Error.

``LocalSIP2Error`` means our side misused the API (a builder or ``encode`` refused a value; it is
also a ``ValueError``); ``RemoteSIP2Error`` means the peer sent bytes we cannot accept. Decoding
never raises anything outside this tree, whatever the bytes.
"""

from __future__ import annotations

__all__ = [
    "SIP2Error",
    "Sip2Error",
    "LocalSIP2Error",
    "EncodeError",
    "ProfileError",
    "RemoteSIP2Error",
    "FramingError",
    "ChecksumError",
    "FieldError",
]


class SIP2Error(Exception):
    """Base of every error raised by sip2proto."""


Sip2Error = SIP2Error  # the spelling of the style guide's error list


class LocalSIP2Error(SIP2Error, ValueError):
    """Our side asked for something the protocol or the profile does not allow."""


class EncodeError(LocalSIP2Error):
    """A message or builder argument cannot be put on the wire. ``field`` names the culprit."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class ProfileError(LocalSIP2Error):
    """A profile (dataclass arguments or TOML file) is invalid. ``key``/``line`` locate it."""

    def __init__(self, message: str, *, key: str = "", line: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.line = line


class RemoteSIP2Error(SIP2Error):
    """The peer sent a frame that could not be accepted. ``raw`` holds that frame's bytes."""

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = bytes(raw)


class FramingError(RemoteSIP2Error):
    """Terminators wrong or missing, an empty or oversized frame."""


class ChecksumError(RemoteSIP2Error):
    """The AZ checksum is wrong, or missing where the profile requires it (answer with 96/97)."""


class FieldError(RemoteSIP2Error):
    """The frame's contents do not fit: unknown message code, short fixed part, bad date,
    undecodable text."""
