"""Which driver classes speak each protocol family, and how a config builds them.

Why a table: `drivers.hardware` builds a cabinet from any mix of families (issue 2/6) and
must not grow an ``if family == …`` per family; each family says here how to make its bus
link, its lock boards and its readers from the config's specs. Imports are lazy, so a
cabinet pays only for the families it has (pymodbus is imported only for Modbus buses).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..board import ControllerBoard
    from ..cursor import CursorStore
    from ..hardware import BoardSpec, BusSpec, ReaderSpec
    from ..rfid import RfidReader

__all__ = ["FAMILIES", "DriverFamily", "family"]


def _load(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _construct(what: str, make: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a driver constructor with config options, naming the entry on a bad option."""
    try:
        return make(*args, **kwargs)
    except TypeError as exc:  # an option the class does not take
        raise ConfigError(f"{what}: bad option: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}") from None


@dataclass(frozen=True, slots=True)
class DriverFamily:
    """One protocol family: ``kind`` "board" (lock boards) or "reader" (RFID readers).

    ``transport`` is the family's ``BusTransport`` factory (its wire, default line settings
    and frame gap; None = our own protocol); Modbus uses pymodbus's client instead.
    ``board``/``reader`` are the driver classes. All are dotted paths, imported on first use;
    a board's or reader's config ``options`` become the class's keyword arguments.
    """

    name: str
    kind: str
    transport: str | None = None  # makes the family's BusTransport (wire, line, frame gap)
    board: str | None = None
    reader: str | None = None

    def make_transport(self, bus: BusSpec, *, backoff_s: tuple[float, float],
                       port_factory: Any = None) -> Any:
        kwargs: dict[str, Any] = {"baudrate": bus.baudrate, "name": bus.name,
                                  "backoff_s": backoff_s}
        if bus.parity is not None:
            kwargs["parity"] = bus.parity
        if self.name == "modbus":  # pymodbus's own client, not a BusTransport
            return _load("drivers.families.modbus.ModbusLink")(bus.url, **kwargs)
        if port_factory is not None:
            kwargs["port_factory"] = port_factory
        if bus.kind == "usb":
            kwargs["turnaround"] = False
        if self.transport is None:
            from ..transport import BusTransport

            return BusTransport(bus.url, **kwargs)
        return _load(self.transport)(bus.url, **kwargs)

    def make_board(self, transport: Any, spec: BoardSpec, store: CursorStore
                   ) -> ControllerBoard:
        what = f"board {spec.address} ({self.name})"
        options = dict(spec.options)
        if self.name == "lendbox":
            board = _load("drivers.board.LendboxBoard")
            return _construct(what, board, transport, spec.address, cursor_store=store,
                              **options)  # type: ignore[no-any-return]
        if self.name == "modbus":
            io_map = _load("drivers.families.modbus.ModbusIoMap").from_mapping(
                {"unit": spec.address, **options}, where=what)
            board = _load("drivers.families.modbus.ModbusIoBoard")
            return board(transport, io_map)  # type: ignore[no-any-return]
        assert self.board is not None
        return _construct(what, _load(self.board), transport, spec.address,
                          **options)  # type: ignore[no-any-return]

    def board_reader(self, board: Any) -> RfidReader | None:
        """The RFID reader built into a board (our own boards carry the antennas)."""
        if self.name != "lendbox":
            return None
        return _load("drivers.rfid.LendboxRfidReader")(board)  # type: ignore[no-any-return]

    def make_reader(self, transport: Any, spec: ReaderSpec) -> RfidReader:
        assert self.reader is not None
        return _construct(f"reader '{spec.name}' ({self.name})", _load(self.reader), transport,
                          address=spec.address, name=spec.name,
                          **dict(spec.options))  # type: ignore[no-any-return]


FAMILIES: dict[str, DriverFamily] = {
    f.name: f
    for f in (
        DriverFamily("lendbox", "board"),
        DriverFamily("modbus", "board"),
        DriverFamily("cn485", "board", transport="drivers.families.cn485.cn485_transport",
                     board="drivers.families.cn485.Cn485Board"),
        DriverFamily("kerong", "board", transport="drivers.families.kerong.kerong_transport",
                     board="drivers.families.kerong.KerongBoard"),
        DriverFamily("feig", "reader", transport="drivers.families.feig.feig_transport",
                     reader="drivers.families.feig.FeigReader"),
        DriverFamily("rr3036", "reader", transport="drivers.families.rr3036.rr3036_transport",
                     reader="drivers.families.rr3036.RR3036Reader"),
    )
}


def family(name: str) -> DriverFamily:
    """The family called ``name``; ConfigError for an unknown one."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown device family {name!r} (known: "
                          f"{', '.join(FAMILIES)})") from None
