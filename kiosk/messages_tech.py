"""The technician screens' sentences (zh, en); merged into kiosk.messages.CATALOGUE."""

from __future__ import annotations

TECH: dict[str, tuple[str, str]] = {
}
