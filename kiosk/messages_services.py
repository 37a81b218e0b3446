"""The reader-services screens' sentences (zh, en); merged into kiosk.messages.CATALOGUE."""

from __future__ import annotations

SERVICES: dict[str, tuple[str, str]] = {
}
