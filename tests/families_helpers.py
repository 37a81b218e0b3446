"""Serve third-party device emulators on a real TCP port, without the full Simulator.

    with serve(lambda model: [FeigReader(model, 1)], FeigDeviceWire(), baudrate=38400) as bus:
        transport = BusTransport(bus.url, ...)
        bus.faults.configure(garble_rate=0.01, drop_rate=0.05, seed=3)
        ... bus.model, bus.stats, bus.devices ...

Wired like ``simulator.simulator.Simulator``: one ``CabinetModel`` (a cabinet TOML from
``simulator/cabinets``), one model lock, ``LinkFaults`` + ``LinkStats`` and a ``BusServer``
with the family's ``DeviceWire`` on a free port of 127.0.0.1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.config import BusConfig, load_config
from simulator.faults import LinkFaults
from simulator.line import LinkStats
from simulator.model import CabinetModel
from simulator.transport import BusServer

__all__ = ["CABINETS", "ServedBus", "serve"]

CABINETS = Path(__file__).resolve().parent.parent / "simulator" / "cabinets"


@dataclass
class ServedBus:
    url: str
    model: CabinetModel
    faults: LinkFaults
    stats: LinkStats
    lock: threading.RLock
    server: BusServer
    devices: list[Any] = field(default_factory=list)


@contextmanager
def serve(make_devices: Callable[[CabinetModel], Sequence[Any]], wire: Any, *,
          baudrate: int, cabinet: str | Path = "small.toml", bus_name: str = "family-bus",
          model: CabinetModel | None = None) -> Iterator[ServedBus]:
    """Serve the devices ``make_devices(model)`` with ``wire`` at ``baudrate``; stop on exit."""
    if model is None:
        path = Path(cabinet)
        if not path.is_absolute():
            path = CABINETS / path
        model = CabinetModel(load_config(path), time.monotonic)
    lock = threading.RLock()
    faults, stats = LinkFaults(), LinkStats()
    devices = list(make_devices(model))
    server = BusServer(BusConfig(name=bus_name, kind="rs485", baudrate=baudrate), devices, lock,
                       faults, stats, wire=wire)
    server.start()
    try:
        yield ServedBus(url=server.url, model=model, faults=faults, stats=stats, lock=lock,
                        server=server, devices=devices)
    finally:
        server.stop()
