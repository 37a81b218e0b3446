"""Exceptions of the simulator: one tree, rooted at SimulatorError.

The control API maps them to HTTP codes in one place (``control.py``): a request naming a door
or item that does not exist is a 404, an action the physical state forbids (taking a book out of
a closed door) is a 409, a malformed request or config is a 400 / a clear startup error.
"""

from __future__ import annotations

__all__ = ["SimulatorError", "ConfigError", "NotFound", "Conflict", "NotConfigured"]


class SimulatorError(Exception):
    """Base of every error the simulator raises on purpose."""


class ConfigError(SimulatorError, ValueError):
    """A cabinet config file is malformed; the message names the file, key and problem."""


class NotFound(SimulatorError, LookupError):
    """A door, item, bus, board or antenna that the cabinet does not have."""


class Conflict(SimulatorError):
    """The physical state forbids the action (door locked, door closed, door full...)."""


class NotConfigured(SimulatorError):
    """An optional device (card reader, camera) is not part of this cabinet or not available."""
