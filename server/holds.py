"""Holds (预约): a reader asks for a copy to be waiting at a cabinet of their choice.

The state machine (docs/server-contracts.md, "Services (B)"):

- ``waiting``: the item is not free (on loan, lost, missing, or another hold has it).
- ``assigned``: the item is reserved for this hold and is on the restock lists — ``unload``
  at the cabinet it is in (if that is not the pickup cabinet), ``load`` at the pickup
  cabinet, both with ``ref="hold:<id>"``.
- ``ready``: a restock manifest of the pickup cabinet loaded it (or it was there already);
  it waits ``PICKUP_DAYS`` and a "hold ready" notice is queued.
- ``collected`` (the holder borrowed it, anywhere), ``cancelled`` (the reader), ``expired``
  (not picked up in time): closed for good; the next waiting hold on the item moves up.

Why at most one active (assigned/ready) hold per item: the cabinet can lend a held copy
only to one reader (``ItemInfo.hold_for``) and staff can load one copy into one cabinet.
Waiting holds queue first come, first served (``placed_at``, then id).

Why a hold goes back to ``waiting`` when someone else borrows its item (an offline cabinet
did not know, or staff lent it): the copy is in another reader's hands; the engine opens a
``loan_over_hold`` exception for staff, and the hold is filled again on the return.

A manifest that loads a held item marks the item ``in_cabinet`` at the pickup cabinet here
as well (the routing part does the same for every loaded item): the hold must not depend
on the order in which the two hooks run, and the write is idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from syncproto.grants import log_id
from syncproto.messages import CabinetEvent, HoldInfo

from . import batchcache, feedback, notify, restock
from .schema import cabinets, holds, items, readers

__all__ = [
    "ACTIVE",
    "ASSIGNED_HORIZON",
    "CLOSED",
    "PICKUP_DAYS",
    "HoldRefused",
    "after_event",
    "cancel_hold",
    "expire_holds",
    "for_cabinet",
    "holder_of",
    "list_holds",
    "place_hold",
    "wanted_by_others",
]

_log = logging.getLogger(__name__)

#: Days a ready hold waits in the pickup cabinet before it expires.
PICKUP_DAYS = 3
#: The deadline a cabinet gets for an *assigned* hold (the copy is not loaded yet, so there
#: is no pickup deadline): assigned_at + this + PICKUP_DAYS. Far on purpose — an offline
#: cabinet that got the copy loaded must keep it for the holder; the server's own expiry
#: (and the next sync's hold list, which replaces the cabinet's) is what really ends a hold.
ASSIGNED_HORIZON = timedelta(days=14)

ACTIVE = ("assigned", "ready")
CLOSED = ("collected", "cancelled", "expired")
#: Items a hold can be assigned to at once: somewhere staff can fetch them.
_FETCHABLE = ("in_cabinet", "on_shelf", "in_transit")


@dataclass(frozen=True)
class HoldRefused(Exception):
    """A hold request or change the rules refuse: ``status`` is the HTTP answer."""

    status: int
    code: str
    detail: str

    def __str__(self) -> str:
        return self.detail


def _ref(hold_id: int) -> str:
    return f"hold:{hold_id}"


def _as_dict(row: Row[Any]) -> dict[str, Any]:
    out = dict(row._mapping)
    for key in ("placed_at", "assigned_at", "ready_at", "expires_at", "closed_at"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    return out


# ----------------------------------------------------------------------------- lookups


def holder_of(conn: Connection, item_id: str) -> str | None:
    """The reader an active (assigned or ready) hold reserves ``item_id`` for, else None."""
    if _nobody_holds(conn, item_id):
        return None
    row = conn.execute(select(holds.c.reader_id).where(
        holds.c.item_id == item_id, holds.c.status.in_(ACTIVE))).first()
    return None if row is None else str(row.reader_id)


def _nobody_holds(conn: Connection, item_id: str) -> bool:
    """True when the sync batch's cache knows no hold waits for or reserves this item."""
    cache = batchcache.current(conn)
    return cache is not None and cache.covers(item_id) and item_id not in cache.held_items


def wanted_by_others(conn: Connection, item_id: str, reader_id: str | None) -> bool:
    """Whether a reader other than ``reader_id`` holds ``item_id`` (waiting or active): a
    loan someone waits for is not renewed."""
    return conn.execute(select(holds.c.id).where(
        holds.c.item_id == item_id, holds.c.reader_id != reader_id,
        holds.c.status.in_(("waiting", *ACTIVE)))).first() is not None


def _active_hold(conn: Connection, item_id: str) -> Row[Any] | None:
    return conn.execute(select(holds).where(holds.c.item_id == item_id,
                                            holds.c.status.in_(ACTIVE))).first()


def for_cabinet(conn: Connection, cabinet_id: str) -> list[HoldInfo]:
    """The holds a cabinet must know: assigned (to be loaded) and ready (to pick up) ones.

    ``expires_at`` of an assigned hold is a far deadline (:data:`ASSIGNED_HORIZON`).
    """
    rows = conn.execute(select(holds).where(holds.c.pickup_cabinet_id == cabinet_id,
                                            holds.c.status.in_(ACTIVE))
                        .order_by(holds.c.id)).all()
    out = []
    for row in rows:
        if row.status == "ready" and row.expires_at is not None:
            deadline = row.expires_at
        else:
            deadline = ((row.assigned_at or row.placed_at) + ASSIGNED_HORIZON
                        + timedelta(days=PICKUP_DAYS))
        out.append(HoldInfo(item_id=row.item_id, reader_id=row.reader_id, expires_at=deadline))
    return out


def list_holds(conn: Connection, *, reader_id: str | None = None, status: str | None = None,
               cabinet_id: str | None = None) -> list[dict[str, Any]]:
    """Holds, newest first, filtered by reader, status and pickup cabinet."""
    query = select(holds, items.c.title).join(items, items.c.id == holds.c.item_id)
    if reader_id is not None:
        query = query.where(holds.c.reader_id == reader_id)
    if status is not None:
        query = query.where(holds.c.status == status)
    if cabinet_id is not None:
        query = query.where(holds.c.pickup_cabinet_id == cabinet_id)
    return [_as_dict(r) for r in conn.execute(query.order_by(holds.c.id.desc())).all()]


# ----------------------------------------------------------------------------- transitions


def _bump_item(conn: Connection, item_id: str, **values: Any) -> None:
    """New item version (so cabinets get the changed ``hold_for``), plus any ``values``."""
    from .ingest import ItemVersions  # ingest imports this module

    conn.execute(update(items).where(items.c.id == item_id).values(
        version=ItemVersions(conn).next(), **values))


def _make_ready(conn: Connection, hold: Row[Any], now: datetime) -> None:
    expires = now + timedelta(days=PICKUP_DAYS)
    conn.execute(update(holds).where(holds.c.id == hold.id).values(
        status="ready", assigned_at=hold.assigned_at or now, ready_at=now, expires_at=expires))
    restock.cancel_tasks(conn, ref=_ref(hold.id), now=now)  # nothing left to move
    # an earlier, closed hold's "take it out" task must not empty the shelf of this one
    for task in restock.open_tasks(conn, cabinet_id=hold.pickup_cabinet_id):
        if (task["item_id"], task["action"], task["reason"]) == (hold.item_id, "unload", "hold"):
            restock.cancel_tasks(conn, ref=task["ref"], now=now)
    _bump_item(conn, hold.item_id, status="in_cabinet", location_cabinet_id=hold.pickup_cabinet_id,
               borrower_id=None, due=None)
    title = conn.execute(select(items.c.title).where(items.c.id == hold.item_id)).scalar() or ""
    notify.queue(conn, reader_id=hold.reader_id, kind="hold_ready", ref=_ref(hold.id), now=now,
                 body={"hold_id": hold.id, "item_id": hold.item_id, "title": title,
                       "cabinet_id": hold.pickup_cabinet_id, "expires_at": expires.isoformat()})
    _log.info("hold %d ready at %s for reader %s", hold.id, hold.pickup_cabinet_id,
              log_id(hold.reader_id))


def _assign(conn: Connection, hold: Row[Any], item: Row[Any], now: datetime) -> None:
    """Reserve ``item`` for ``hold``: ready if it is already in the pickup cabinet, else
    restock tasks to bring it there."""
    if item.status == "in_cabinet" and item.location_cabinet_id == hold.pickup_cabinet_id:
        _make_ready(conn, hold, now)
        return
    conn.execute(update(holds).where(holds.c.id == hold.id).values(
        status="assigned", assigned_at=now, ready_at=None, expires_at=None))
    ref = _ref(hold.id)
    if item.status == "in_cabinet" and item.location_cabinet_id is not None:
        restock.add_task(conn, cabinet_id=item.location_cabinet_id, item_id=item.id,
                         action="unload", reason="hold", ref=ref, now=now)
    restock.add_task(conn, cabinet_id=hold.pickup_cabinet_id, item_id=item.id, action="load",
                     reason="hold", ref=ref, now=now)
    _bump_item(conn, item.id)


def _promote(conn: Connection, item_id: str, now: datetime) -> Row[Any] | None:
    """Give a free item to its oldest waiting hold; that hold, or None."""
    if _active_hold(conn, item_id) is not None:
        return None
    # the row lock orders two holds (or a hold and a sync) racing for one copy on PostgreSQL
    item = conn.execute(select(items).where(items.c.id == item_id).with_for_update()).first()
    if item is None or item.status not in _FETCHABLE:
        return None
    nxt = conn.execute(select(holds).where(holds.c.item_id == item_id,
                                           holds.c.status == "waiting")
                       .order_by(holds.c.placed_at, holds.c.id).limit(1)).first()
    if nxt is not None:
        _assign(conn, nxt, item, now)
    return nxt


def _close(conn: Connection, hold: Row[Any], status: str, now: datetime) -> None:
    """Close ``hold``; a copy left sitting in the pickup cabinet goes to the next waiting
    hold or back out (an ``unload`` task)."""
    conn.execute(update(holds).where(holds.c.id == hold.id).values(status=status, closed_at=now))
    restock.cancel_tasks(conn, ref=_ref(hold.id), now=now)
    if hold.status not in ACTIVE:
        return
    _bump_item(conn, hold.item_id)  # hold_for changes
    if status == "collected":
        return
    taken = _promote(conn, hold.item_id, now)
    if hold.status == "ready" and (taken is None or taken.pickup_cabinet_id
                                   != hold.pickup_cabinet_id):
        restock.add_task(conn, cabinet_id=hold.pickup_cabinet_id, item_id=hold.item_id,
                         action="unload", reason="hold", ref=_ref(hold.id), now=now)


def _back_to_waiting(conn: Connection, hold: Row[Any], now: datetime) -> None:
    conn.execute(update(holds).where(holds.c.id == hold.id).values(
        status="waiting", assigned_at=None, ready_at=None, expires_at=None))
    restock.cancel_tasks(conn, ref=_ref(hold.id), now=now)


# ----------------------------------------------------------------------------- reader actions


def _free_hold_slots(conn: Connection, cabinet: Row[Any]) -> int | None:
    """Slots of the pickup cabinet still free for held copies (None: capacity unknown).

    Held copies (assigned or ready) reserve a slot each; stock that no hold claims fills the
    rest: free = capacity − unheld stock − active holds.
    """
    if not cabinet.capacity:
        return None
    stock = conn.execute(select(func.count()).select_from(items).where(
        items.c.status == "in_cabinet", items.c.location_cabinet_id == cabinet.id)).scalar_one()
    held_here = conn.execute(select(func.count()).select_from(holds).join(
        items, items.c.id == holds.c.item_id).where(
        holds.c.pickup_cabinet_id == cabinet.id, holds.c.status.in_(ACTIVE),
        items.c.status == "in_cabinet", items.c.location_cabinet_id == cabinet.id)).scalar_one()
    active = conn.execute(select(func.count()).select_from(holds).where(
        holds.c.pickup_cabinet_id == cabinet.id, holds.c.status.in_(ACTIVE))).scalar_one()
    return int(cabinet.capacity) - (int(stock) - int(held_here)) - int(active)


def place_hold(conn: Connection, *, reader_id: str, item_id: str, pickup_cabinet_id: str,
               now: datetime) -> dict[str, Any]:
    """Place a hold; assigned (or ready) at once when the item is free. Raises
    :class:`HoldRefused` (404 unknown item/cabinet, 403 blocked reader, 409 not lendable,
    already held or on loan to this reader, pickup cabinet full)."""
    reader = conn.execute(select(readers.c.status).where(readers.c.id == reader_id)).first()
    if reader is None or reader.status != "ok":
        raise HoldRefused(403, "reader_blocked", "this card may not place holds now; please "
                          "contact the library")
    item = conn.execute(select(items).where(items.c.id == item_id).with_for_update()).first()
    if item is None:
        raise HoldRefused(404, "unknown_item", f"no item {item_id!r}")
    cabinet = conn.execute(select(cabinets).where(cabinets.c.id == pickup_cabinet_id)).first()
    if cabinet is None or not cabinet.active:
        raise HoldRefused(404, "unknown_cabinet", f"no active cabinet {pickup_cabinet_id!r}")
    if item.reference_only or item.status in ("lost", "missing"):
        raise HoldRefused(409, "not_lendable", f"item {item_id!r} cannot be lent "
                          f"({'reference only' if item.reference_only else item.status})")
    if item.status == "loaned" and item.borrower_id == reader_id:
        raise HoldRefused(409, "already_on_loan", "you have this item on loan already")
    mine = conn.execute(select(holds.c.id).where(
        holds.c.item_id == item_id, holds.c.reader_id == reader_id,
        holds.c.status.in_(("waiting", *ACTIVE)))).first()
    if mine is not None:
        raise HoldRefused(409, "already_held", f"you already hold this item (hold {mine.id})")
    in_pickup = item.status == "in_cabinet" and item.location_cabinet_id == cabinet.id
    free = _free_hold_slots(conn, cabinet)
    if not in_pickup and free is not None and free <= 0:
        raise HoldRefused(409, "pickup_cabinet_full", f"cabinet {cabinet.id!r} has no free slot "
                          "for held books now; choose another cabinet or try again later")
    hold_id = int(conn.execute(holds.insert().values(
        reader_id=reader_id, item_id=item_id, pickup_cabinet_id=cabinet.id, status="waiting",
        placed_at=now).returning(holds.c.id)).scalar_one())
    _promote(conn, item_id, now)
    return _get(conn, hold_id)


def _get(conn: Connection, hold_id: int) -> dict[str, Any]:
    row = conn.execute(select(holds, items.c.title).join(items, items.c.id == holds.c.item_id)
                       .where(holds.c.id == hold_id)).one()
    return _as_dict(row)


def cancel_hold(conn: Connection, *, hold_id: int, reader_id: str,
                now: datetime) -> dict[str, Any]:
    """The reader cancels their hold (404 if not theirs, 409 if already closed)."""
    hold = conn.execute(select(holds).where(holds.c.id == hold_id)).first()
    if hold is None or hold.reader_id != reader_id:
        raise HoldRefused(404, "unknown_hold", f"you have no hold {hold_id}")
    if hold.status in CLOSED:
        raise HoldRefused(409, "hold_closed", f"hold {hold_id} is already {hold.status}")
    _close(conn, hold, "cancelled", now)
    return _get(conn, hold_id)


def expire_holds(conn: Connection, now: datetime) -> list[int]:
    """Expire ready holds past their pickup deadline; the expired hold ids."""
    rows = conn.execute(select(holds).where(holds.c.status == "ready",
                                            holds.c.expires_at <= now)
                        .order_by(holds.c.id)).all()
    for hold in rows:
        _close(conn, hold, "expired", now)
        _log.info("hold %d expired at %s", hold.id, hold.pickup_cabinet_id)
    return [int(h.id) for h in rows]


# ----------------------------------------------------------------------------- cabinet events


def after_event(conn: Connection, cabinet_id: str, event: CabinetEvent, now: datetime) -> None:
    """An applied cabinet event's effect on holds (collected, ready, a return filling one),
    and the ratings a cabinet collected."""
    payload = event.payload
    if event.kind == "loan":
        _on_loan(conn, payload, now)
    elif event.kind == "return":
        _on_return(conn, cabinet_id, payload, now)
    elif event.kind == "alarm":
        _on_alarm(conn, payload, now)
    elif event.kind == "restock":
        _on_manifest(conn, cabinet_id, payload, now)
    elif event.kind == "rating":
        feedback.rating_from_event(conn, cabinet_id, event, now)


def _str(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


def _open_holds(conn: Connection, item_id: str) -> list[Row[Any]]:
    """The item's waiting and active holds: one query, so the common event — an item nobody
    holds — costs the sync path a single indexed lookup (none inside a sync batch)."""
    if _nobody_holds(conn, item_id):
        return []
    return list(conn.execute(select(holds).where(
        holds.c.item_id == item_id, holds.c.status.in_(("waiting", *ACTIVE)))).all())


def _on_loan(conn: Connection, payload: dict[str, Any], now: datetime) -> None:
    item_id, reader_id = _str(payload, "item_id"), _str(payload, "reader_id")
    open_holds = _open_holds(conn, item_id) if item_id else []
    if item_id is None or not open_holds:
        return
    active = next((h for h in open_holds if h.status in ACTIVE), None)
    if active is not None and active.reader_id != reader_id:
        # loaned over the hold (the engine's loan_over_hold exception): refilled on return
        _back_to_waiting(conn, active, now)
        _bump_item(conn, item_id)
    mine = next((h for h in open_holds if reader_id and h.reader_id == reader_id), None)
    if mine is not None:
        # re-read: it may have been the active hold just sent back to waiting (not mine)
        _close(conn, conn.execute(select(holds).where(holds.c.id == mine.id)).one(),
               "collected", now)
    # a late loan can re-derive the copy back into a cabinet: then a waiting hold takes it
    _promote(conn, item_id, now)


def _on_alarm(conn: Connection, payload: dict[str, Any], now: datetime) -> None:
    item_id = _str(payload, "item_id")
    active = _active_hold(conn, item_id) if item_id else None
    if active is None:
        return
    status = conn.execute(select(items.c.status).where(items.c.id == active.item_id)).scalar()
    if status in ("lost", "missing"):  # the copy is gone: the hold waits for it to turn up
        _back_to_waiting(conn, active, now)
        _bump_item(conn, active.item_id)


def _on_return(conn: Connection, cabinet_id: str, payload: dict[str, Any],
               now: datetime) -> None:
    item_id = _str(payload, "item_id")
    open_holds = _open_holds(conn, item_id) if item_id else []
    if item_id is None or not open_holds:
        return
    active = next((h for h in open_holds if h.status in ACTIVE), None)
    if active is None:
        _promote(conn, item_id, now)
        return
    # Read where the engine put the copy, not where this return happened: a late event can
    # re-derive the item's history and leave it elsewhere (or out on loan).
    item = conn.execute(select(items).where(items.c.id == item_id)).one()
    if not (active.status == "ready" and item.status == "in_cabinet"
            and item.location_cabinet_id == active.pickup_cabinet_id):
        _replan(conn, active, now)


def _replan(conn: Connection, hold: Row[Any], now: datetime) -> None:
    """Route an active hold's copy again from where the item row says it is now."""
    _back_to_waiting(conn, hold, now)
    fresh = conn.execute(select(holds).where(holds.c.id == hold.id)).one()
    item = conn.execute(select(items).where(items.c.id == hold.item_id)).one()
    if item.status in _FETCHABLE:
        _assign(conn, fresh, item, now)


def _wanted(conn: Connection, item_id: str) -> bool:
    return conn.execute(select(holds.c.id).where(
        holds.c.item_id == item_id, holds.c.status.in_(("waiting", *ACTIVE)))).first() is not None


def _on_manifest(conn: Connection, cabinet_id: str, payload: dict[str, Any],
                 now: datetime) -> None:
    manifest = payload.get("manifest")
    if not isinstance(manifest, dict):
        return
    def ids(key: str) -> set[str]:
        values = manifest.get(key)
        if not isinstance(values, list):
            return set()
        # ids no item can have (too long, NUL) would only make PostgreSQL fail the batch
        return {i for i in values if isinstance(i, str) and 0 < len(i) <= 64 and "\x00" not in i}

    loaded = ids("loaded") - ids("unreadable")  # as the routing part reads a manifest
    removed = ids("removed") - loaded
    for item_id in sorted(loaded):
        _loaded(conn, cabinet_id, item_id, now)
    for item_id in sorted(removed):
        _removed(conn, cabinet_id, item_id, now)


def _loaded(conn: Connection, cabinet_id: str, item_id: str, now: datetime) -> None:
    item = conn.execute(select(items.c.id).where(items.c.id == item_id)).first()
    if item is None or not _wanted(conn, item_id):
        return
    # the book is physically here (routing writes the same right after)
    _bump_item(conn, item_id, status="in_cabinet", location_cabinet_id=cabinet_id,
               borrower_id=None, due=None)
    hold = _active_hold(conn, item_id)
    if hold is None:
        _promote(conn, item_id, now)
    elif hold.pickup_cabinet_id == cabinet_id:
        if hold.status == "assigned":
            # the load is done, not cancelled: close it before ready cancels the rest
            restock.close_for_manifest(conn, cabinet_id=cabinet_id, loaded=[item_id],
                                       removed=[], now=now)
            _make_ready(conn, hold, now)
    else:
        _replan(conn, hold, now)


def _removed(conn: Connection, cabinet_id: str, item_id: str, now: datetime) -> None:
    item = conn.execute(select(items.c.id).where(items.c.id == item_id)).first()
    if item is None or not _wanted(conn, item_id):
        return
    # taken out (wherever the record had it): on a shelf now, as routing writes right after
    _bump_item(conn, item_id, status="on_shelf", location_cabinet_id=None, borrower_id=None,
               due=None)
    hold = _active_hold(conn, item_id)
    if hold is None:
        _promote(conn, item_id, now)
    else:
        # out of the pickup cabinet before collection, or out of the wrong one: load it again
        _replan(conn, hold, now)
