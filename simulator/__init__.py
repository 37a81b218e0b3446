"""simulator: a physical model of a lending cabinet and device emulators speaking its bytes.

See README.md in this folder for the config format, control API, faults and timing model.
"""

from __future__ import annotations

from .board import BoardEmulator, BoardResult
from .config import CabinetConfig, load_config, parse_config
from .errors import Conflict, ConfigError, NotConfigured, NotFound, SimulatorError
from .faults import LinkFaults
from .line import LinkStats
from .model import CabinetModel, SimItem
from .simulator import Simulator

__all__ = [
    "Simulator",
    "SimItem",
    "CabinetModel",
    "CabinetConfig",
    "BoardEmulator",
    "BoardResult",
    "LinkFaults",
    "LinkStats",
    "load_config",
    "parse_config",
    "SimulatorError",
    "ConfigError",
    "NotFound",
    "Conflict",
    "NotConfigured",
]
