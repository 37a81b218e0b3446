"""Cross-branch returns (通借通还) and restock manifests — STUB until the routing part lands."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from syncproto.messages import CabinetEvent

__all__ = ["after_event"]


def after_event(conn: Connection, cabinet_id: str, event: CabinetEvent, now: datetime) -> None:
    """An applied event's routing effects: a return going home, a manifest's loads/removals."""
