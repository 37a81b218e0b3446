"""Exceptions of drivers: one tree, rooted at DriverError.

The kiosk and `lendbox diag` catch these and turn them into messages; nothing in drivers
raises a bare exception for a device problem.
"""

from __future__ import annotations

__all__ = [
    "DriverError",
    "DeviceUnavailable",
    "DeviceTimeout",
    "FrameError",
    "DeviceRejected",
    "LockJammed",
    "TagNotFound",
    "TagWriteFailed",
    "CardError",
    "CameraError",
    "TagDataUnreadable",
    "ConfigError",
    "NotSupported",
]


class DriverError(Exception):
    """Base of every error raised by a driver."""


class DeviceUnavailable(DriverError):
    """The device cannot be reached (port missing, reader unplugged, service down)."""


class DeviceTimeout(DriverError):
    """The device did not answer within the protocol's timeout, retries included."""


class FrameError(DriverError):
    """The device's answers stayed unreadable (bad CRC, garbage) after every retry."""


class DeviceRejected(DriverError):
    """The device understood the request and refused it (a NAK with an error code)."""

    def __init__(self, message: str, *, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class LockJammed(DriverError):
    """A lock was pulsed but its bolt did not move."""

    def __init__(self, message: str, *, lock: int) -> None:
        super().__init__(message)
        self.lock = lock


class TagNotFound(DriverError):
    """An addressed RFID tag did not answer."""


class TagWriteFailed(DriverError):
    """A tag answered but a write (AFI, EAS) did not take."""


class CardError(DriverError):
    """A contactless card could not be read."""


class CameraError(DriverError):
    """A camera or image source could not be opened or read."""


class TagDataUnreadable(DriverError):
    """A tag answered but its ISO 28560 data could not be decoded (blank, damaged)."""


class ConfigError(DriverError):
    """A hardware config file is missing, malformed or inconsistent (names the problem)."""


class NotSupported(DriverError):
    """The device family cannot do this."""
