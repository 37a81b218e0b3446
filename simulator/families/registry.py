"""How a cabinet config's buses of each protocol family become served, emulated buses.

Why a table: a simulated cabinet may mix families (Kerong boards with a FEIG reader, …), and
``Simulator`` must not grow an ``if family == …`` per family. Each family says which
``DeviceWire`` frames its bytes and how its devices are made from the config, and which of a
board's or reader's ``options`` its *driver* needs in the hardware config (the rest describe
the emulated hardware only, e.g. how many tags a reader packs into one reply).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ..config import BoardConfig, BusConfig, CabinetConfig, ReaderConfig
from ..errors import ConfigError
from ..faults import LinkFaults
from ..line import LinkStats
from ..model import CabinetModel
from ..transport import BusServer

__all__ = ["build_bus", "driver_options"]

#: Options of the emulated hardware only (never passed to a driver).
_SIM_ONLY = {
    "cn485": {"pulse_s", "status_delay_s"},
    "kerong": {"pulse_s", "status_delay_s"},
    "modbus": set(),
    "feig": {"data_sets_per_reply"},
    "rr3036": {"uids_per_reply"},
}
#: Options of the driver only (the emulator does not take them).
_DRIVER_ONLY = {
    "cn485": {"sprung_doors", "settle_s", "read_retries", "noisy_retries"},
    "kerong": {"sprung_doors", "settle_s", "read_retries", "noisy_retries", "pulse_ms"},
    "modbus": {"pulse_ms"},
    "feig": {"first_read_blocks", "max_blocks"},
    "rr3036": {"max_blocks"},
}


def _sim_kwargs(family: str, options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in _DRIVER_ONLY.get(family, set())}


def driver_options(family: str, entry: BoardConfig | ReaderConfig) -> dict[str, Any]:
    """The ``options`` table the hardware config gives this board's or reader's driver."""
    options = {k: v for k, v in entry.options.items() if k not in _SIM_ONLY.get(family, set())}
    if isinstance(entry, BoardConfig):
        if family != "lendbox":
            options.setdefault("locks", entry.locks)
    elif family == "feig":
        options.setdefault("antennas", entry.antennas)
    return options


def _construct(what: str, make: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return make(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"{what}: bad option: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def build_bus(bus: BusConfig, config: CabinetConfig, model: CabinetModel,
              model_lock: threading.RLock, faults: LinkFaults, stats: LinkStats, *,
              pty: bool = False) -> Any:
    """A served bus (``start/stop/unplug/replug``, ``url``, ``pty_path``) of a third-party
    family: its devices built from the config, behind the shared pacing and faults."""
    boards = [b for b in config.boards if b.bus == bus.name]
    readers = [r for r in config.readers if r.bus == bus.name]
    family = bus.family
    if family == "modbus":
        from .modbus import ModbusBus, ModbusModule

        modules = [_construct(f"board {b.address} (modbus)", ModbusModule, unit=b.address,
                              locks=b.locks, **_sim_kwargs(family, b.options)) for b in boards]
        return ModbusBus(bus, model, modules, model_lock=model_lock, faults=faults,
                         stats=stats, pty=pty)
    devices: list[Any]
    if family == "cn485":
        from .cn485 import Cn485Board, Cn485DeviceWire

        wire: Any = Cn485DeviceWire()
        devices = [_construct(f"board {b.address} (cn485)", Cn485Board, b, model,
                              **_sim_kwargs(family, b.options)) for b in boards]
    elif family == "kerong":
        from .kerong import KerongDeviceWire, KerongUnit

        wire = KerongDeviceWire()
        devices = [_construct(f"board {b.address} (kerong)", KerongUnit, b, model,
                              **_sim_kwargs(family, b.options)) for b in boards]
    elif family == "feig":
        from .feig import FeigDeviceWire, FeigReader

        wire = FeigDeviceWire()
        devices = [_construct(f"reader {r.name!r} (feig)", FeigReader, model, r.name,
                              address=r.address, antennas=r.antennas,
                              **_sim_kwargs(family, r.options)) for r in readers]
    elif family == "rr3036":
        from .rr3036 import RR3036DeviceWire, RR3036Module

        if any(r.antennas != 1 for r in readers):
            raise ConfigError(f"bus {bus.name!r}: an RR3036 module has one antenna; use one "
                              "module (reader) per door antenna")
        wire = RR3036DeviceWire()
        devices = [_construct(f"reader {r.name!r} (rr3036)", RR3036Module, model, r.name,
                              address=r.address, **_sim_kwargs(family, r.options))
                   for r in readers]
    else:
        raise ConfigError(f"bus {bus.name!r}: no emulator for family {family!r}")
    return BusServer(bus, devices, model_lock, faults, stats, pty=pty, wire=wire)
