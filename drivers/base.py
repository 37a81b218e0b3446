"""What every driver shares: its availability, as Home Assistant integrations report it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Availability", "DeviceStatus"]


class Availability(enum.Enum):
    OK = "ok"
    DEGRADED = "degraded"  # answering, but with errors/retries or a known weakness
    UNAVAILABLE = "unavailable"  # not answering at all


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceStatus:
    """A device's availability and why; ``reason`` is empty when OK."""

    availability: Availability
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"availability": self.availability.value, "reason": self.reason}
