"""drivers: typed, reliable access to the cabinet's devices.

One module per device family behind a small typed interface: ``ControllerBoard`` (locks,
doors, events) and ``RfidReader`` (inventory, tag data); our own board protocol implements
both (``LendboxBoard``, ``LendboxRfidReader``) over one ``BusTransport`` per serial bus.
``Hardware`` builds them from the cabinet's hardware config; ``drivers.diag`` is what
``lendbox diag`` and the technician screen show.
"""

from __future__ import annotations

from .base import Availability, DeviceStatus
from .board import (
    AntennaHealth,
    BoardCounters,
    BoardInfo,
    ControllerBoard,
    DoorEvent,
    DoorState,
    EventBatch,
    LendboxBoard,
    PartCheck,
    UnlockResult,
)
from .cursor import CursorStore, JsonFileCursorStore, MemoryCursorStore
from .hardware import Hardware, HardwareSpec, load_spec
from .rfid import InventoriedTag, LendboxRfidReader, RfidReader, TagCache, TagSeen, inventory_door
from .transport import BusTransport

__all__ = [
    "AntennaHealth",
    "Availability",
    "BoardCounters",
    "BoardInfo",
    "BusTransport",
    "ControllerBoard",
    "CursorStore",
    "DeviceStatus",
    "DoorEvent",
    "DoorState",
    "EventBatch",
    "Hardware",
    "HardwareSpec",
    "InventoriedTag",
    "JsonFileCursorStore",
    "LendboxBoard",
    "LendboxRfidReader",
    "MemoryCursorStore",
    "PartCheck",
    "RfidReader",
    "TagCache",
    "TagSeen",
    "UnlockResult",
    "inventory_door",
    "load_spec",
]
