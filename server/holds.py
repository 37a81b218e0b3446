"""Holds (预约) — STUB until the holds part lands (docs/server-contracts.md, second slice)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from syncproto.messages import CabinetEvent, HoldInfo

__all__ = ["after_event", "for_cabinet", "holder_of"]


def holder_of(conn: Connection, item_id: str) -> str | None:
    """The reader an active (assigned or ready) hold reserves ``item_id`` for, else None."""
    return None


def for_cabinet(conn: Connection, cabinet_id: str) -> list[HoldInfo]:
    """The holds a cabinet must know: assigned (to load) and ready (to pick up) ones."""
    return []


def after_event(conn: Connection, cabinet_id: str, event: CabinetEvent, now: datetime) -> None:
    """An applied cabinet event's effect on holds (collected, ready, a return filling one)."""
