"""The restock list: what staff of a cabinet's servicing branch load into it or take out.

Why one small module every part writes through: holds (load the held copy), cross-branch
returns (take a book home), rotation (stale out, fresh in) and the inventory report
(misplaced books) all produce tasks for the same staff member standing at the same cabinet.
One table and one way to add, cancel and close tasks keeps the list free of duplicates and
lets a restock manifest from the cabinet close whatever it fulfils, whoever asked for it.

A task is ``(cabinet, item, action)`` with a ``reason`` and a ``ref`` naming what asked for it
(``hold:12``, ``transit:3``, ``rotation:…``). At most one open task exists per (cabinet,
item, action): adding it again returns the existing one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, insert, select, update

from .schema import cabinets, restock_tasks

__all__ = [
    "ACTIONS",
    "REASONS",
    "Action",
    "add_task",
    "cancel_tasks",
    "close_for_manifest",
    "open_tasks",
]

Action = Literal["load", "unload"]
ACTIONS: tuple[str, ...] = ("load", "unload")
REASONS: tuple[str, ...] = ("hold", "transit_home", "rotation_in", "rotation_out", "misplaced")


def add_task(conn: Connection, *, cabinet_id: str, item_id: str, action: Action, reason: str,
             ref: str, now: datetime) -> int:
    """Put one task on ``cabinet_id``'s restock list; the id of the open task.

    An open task for the same cabinet, item and action is reused (its reason and ref stay
    those of the first request). ValueError for an unknown action or reason.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown restock action {action!r}; one of {ACTIONS}")
    if reason not in REASONS:
        raise ValueError(f"unknown restock reason {reason!r}; one of {REASONS}")
    existing = conn.execute(select(restock_tasks.c.id).where(
        restock_tasks.c.cabinet_id == cabinet_id, restock_tasks.c.item_id == item_id,
        restock_tasks.c.action == action, restock_tasks.c.status == "open")).first()
    if existing is not None:
        return int(existing.id)
    return int(conn.execute(insert(restock_tasks).values(
        cabinet_id=cabinet_id, item_id=item_id, action=action, reason=reason, ref=ref,
        status="open", created_at=now).returning(restock_tasks.c.id)).scalar_one())


def cancel_tasks(conn: Connection, *, ref: str, now: datetime) -> int:
    """Cancel every open task ``ref`` asked for (a cancelled hold, a received transit); how
    many were cancelled."""
    done = conn.execute(update(restock_tasks).where(
        restock_tasks.c.ref == ref, restock_tasks.c.status == "open").values(
        status="cancelled", closed_at=now))
    return int(done.rowcount or 0)


def close_for_manifest(conn: Connection, *, cabinet_id: str, loaded: Iterable[str],
                       removed: Iterable[str], now: datetime) -> list[dict[str, Any]]:
    """Mark done the open tasks a restock manifest fulfilled: ``load`` tasks of the loaded
    items and ``unload`` tasks of the removed ones, at this cabinet. The closed tasks (id,
    item_id, action, reason, ref), so the caller can move holds and transits on."""
    closed: list[dict[str, Any]] = []
    for action, item_ids in (("load", set(loaded)), ("unload", set(removed))):
        if not item_ids:
            continue
        rows = conn.execute(select(restock_tasks).where(
            restock_tasks.c.cabinet_id == cabinet_id, restock_tasks.c.action == action,
            restock_tasks.c.status == "open", restock_tasks.c.item_id.in_(sorted(item_ids)))
        ).all()
        for row in rows:
            conn.execute(update(restock_tasks).where(restock_tasks.c.id == row.id).values(
                status="done", closed_at=now))
            closed.append({"id": row.id, "item_id": row.item_id, "action": row.action,
                           "reason": row.reason, "ref": row.ref})
    return closed


def open_tasks(conn: Connection, *, cabinet_id: str | None = None,
               branch_id: str | None = None) -> list[dict[str, Any]]:
    """The open tasks of one cabinet, or of every cabinet a branch services, oldest first."""
    query = select(restock_tasks, cabinets.c.branch_id).join(
        cabinets, cabinets.c.id == restock_tasks.c.cabinet_id).where(
        restock_tasks.c.status == "open")
    if cabinet_id is not None:
        query = query.where(restock_tasks.c.cabinet_id == cabinet_id)
    if branch_id is not None:
        query = query.where(cabinets.c.branch_id == branch_id)
    rows = conn.execute(query.order_by(restock_tasks.c.cabinet_id, restock_tasks.c.id)).all()
    return [{"id": r.id, "cabinet_id": r.cabinet_id, "branch_id": r.branch_id,
             "item_id": r.item_id, "action": r.action, "reason": r.reason, "ref": r.ref,
             "created_at": r.created_at.isoformat()} for r in rows]
