"""Door snapshots and the discrepancy report — STUB until the reports part lands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from syncproto.messages import DoorSnapshot

__all__ = ["store_snapshots"]


def store_snapshots(conn: Connection, cabinet_id: str, snapshots: Sequence[DoorSnapshot],
                    now: datetime) -> None:
    """Keep the newest snapshot of each door of ``cabinet_id``."""
