"""Cross-branch returns (通借通还): where a returned book goes, and what a restock manifest moved.

Why it works this way:

- **The book's home decides, the returning cabinet's branch may keep it.** A book returned
  at cabinet C (branch Bc) *stays* when its home branch (``items.home_branch_id``) is Bc, or
  when Bc is ``floating`` and the book belongs to Bc's library (a floating collection keeps
  what readers bring, but only its own library's books: another library's property always
  goes back to it). Otherwise a ``transits`` row (``waiting_pickup``) and an ``unload`` task
  ``transit_home`` (``ref="transit:<id>"``) on C's restock list send it home. The book is
  physically in C, so ``items`` keeps saying ``in_cabinet`` at C until staff take it out.
- **City ↔ county: straight to the home branch.** ``branches.parent_id`` is *not* used for
  routing: a county branch's book returned at a city cabinet goes to the county branch, and
  a city book returned in a county goes to its city branch — never via the parent. The home
  branch is where the book is catalogued and shelved; routing through the parent would only
  add a hop and a second handover. A floating county branch floats only for its own
  library's books like any other branch (county and city branches of one library share
  the library, so a city book returned to a floating county cabinet stays there).
- **No home branch.** An item the server does not know (or without a home branch) is routed
  by its owner library (the return's ``owner_library``, else ``items.owner_library``): the
  returning branch's own library → stays (nowhere better to send it); another library of
  the network → a transit to that library (``to_library``, no branch); a library outside
  the network (not in ``libraries``) → the exception ``foreign_item_returned``: the book stays
  ``in_cabinet`` and is flagged — never "lost" — and staff choose ``keep_for_owner`` or
  ``send_to_owner`` (an unload task). An empty owner (a tag that says nothing) stays: there
  is nothing to route by, and the inventory report lists it.
- **A hold takes precedence.** A book ``holds.holder_of`` reserves does not go home (the
  holds part moves it to the pickup cabinet instead).
- **Exactly once.** A transit is keyed by the return event's uuid (``return_uuid`` unique)
  and ingest applies each event once; a return is routed only if, after the engine applied
  it, the item really is in C (a late return that re-derivation placed before later events
  routes nothing). A newer return or a loan of the book supersedes its open transit
  (``cancelled``, tasks cancelled): one book has at most one open transit.
- **Restock manifests.** ``close_for_manifest`` closes the tasks the handover fulfilled;
  removed books with a waiting transit are ``in_transit`` (items ``in_transit``, no
  location), other removed books are ``on_shelf``, loaded books are ``in_cabinet`` at C.
  An id both removed and loaded in one manifest ends loaded (it was put back). Ids the
  server has no item for (unreadable tags, uids) are skipped: a manifest does not invent
  catalogue rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from syncproto.messages import CabinetEvent

from . import batchcache, restock
from .ingest import ItemVersions
from .schema import branches, cabinets, items, libraries, transits
from .security import record_audit

__all__ = [
    "FOREIGN_KIND",
    "OPEN_STATUSES",
    "STATUSES",
    "Route",
    "TransitRefused",
    "after_event",
    "receive",
    "route_for",
    "transit_json",
]

_log = logging.getLogger(__name__)

#: The exception kind of a book from outside the network (server.engine.ACTIONS has its
#: resolution actions).
FOREIGN_KIND = "foreign_item_returned"
#: Every transit status, in life order; ``cancelled``: superseded by a loan or a newer return.
STATUSES = ("waiting_pickup", "in_transit", "received", "cancelled")
OPEN_STATUSES = ("waiting_pickup", "in_transit")


@dataclass(frozen=True, slots=True)
class Route:
    """Where a returned book goes: ``stay``, ``transit`` (to a branch and/or library) or
    ``foreign`` (outside the network); ``why`` is for logs and tests."""

    action: Literal["stay", "transit", "foreign"]
    why: str
    to_branch_id: str | None = None
    to_library: str = ""


class TransitRefused(ValueError):
    """A transit action that cannot be applied: ``status`` and ``code`` are the API error."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


# ----------------------------------------------------------------------------- the rule


def route_for(*, returning_branch: Row[Any], home_branch: Row[Any] | None, owner: str,
              network: Iterable[str]) -> Route:
    """The routing rule (module docstring), pure: branch rows have ``id``, ``library_isil``
    and ``floating``; ``network`` is the ISILs of the network's libraries."""
    if home_branch is not None:
        if home_branch.id == returning_branch.id:
            return Route("stay", "home branch")
        if returning_branch.floating and home_branch.library_isil == returning_branch.library_isil:
            return Route("stay", "floating branch of the same library")
        return Route("transit", "home branch elsewhere", home_branch.id, home_branch.library_isil)
    if not owner or owner == returning_branch.library_isil:
        return Route("stay", "no home branch; own library" if owner else "no owner known")
    if owner not in set(network):
        return Route("foreign", "owner outside the network", None, owner)
    return Route("transit", "another library of the network", None, owner)


# ----------------------------------------------------------------------------- helpers


def _str(payload: Any, key: str) -> str | None:
    value = payload.get(key) if isinstance(payload, dict) else None
    return value if isinstance(value, str) and value else None


def _ids(values: Any) -> set[str]:
    """The item ids of a manifest list (anything but short strings is ignored)."""
    if not isinstance(values, list):
        return set()
    return {v for v in values if isinstance(v, str) and 0 < len(v) <= 64}


def _branch(conn: Connection, branch_id: str | None) -> Row[Any] | None:
    if branch_id is None:
        return None
    cache = batchcache.current(conn)
    if cache is not None:
        return cache.branch(branch_id)
    return conn.execute(select(branches).where(branches.c.id == branch_id)).first()


def _cancel_open(conn: Connection, item_id: str, now: datetime, *,
                 keep_uuid: str | None = None) -> None:
    """Supersede the item's open transits (the book is elsewhere now) and their tasks."""
    cache = batchcache.current(conn)
    if cache is not None and cache.covers(item_id) and item_id not in cache.transit_items:
        return  # the batch's cache knows it has none
    rows = conn.execute(select(transits.c.id, transits.c.return_uuid).where(
        transits.c.item_id == item_id, transits.c.status.in_(OPEN_STATUSES))).all()
    for row in rows:
        if row.return_uuid == keep_uuid:
            continue
        conn.execute(update(transits).where(transits.c.id == row.id).values(status="cancelled"))
        restock.cancel_tasks(conn, ref=f"transit:{row.id}", now=now)


# Built once: a return is on the sync path, where building a statement costs more than
# running it.
_TRANSIT_OF_RETURN = select(transits.c.id).where(transits.c.return_uuid == bindparam("uuid"))


def _set_item(conn: Connection, versions: ItemVersions, item_id: str, **values: Any) -> bool:
    """Update the item row with a new version (cabinets get item deltas by version)."""
    done = conn.execute(update(items).where(items.c.id == item_id).values(
        version=versions.next(), **values))
    return bool(done.rowcount)


# ----------------------------------------------------------------------------- events


def after_event(conn: Connection, cabinet_id: str, event: CabinetEvent, now: datetime) -> None:
    """An applied event's routing effects: a return going home, a manifest's loads/removals,
    a loan superseding a transit (called by ingest after the engine and holds)."""
    if event.kind == "return":
        _on_return(conn, cabinet_id, event, now)
    elif event.kind == "restock":
        _on_restock(conn, cabinet_id, event, now)
    elif event.kind == "loan":
        item_id = _str(event.payload, "item_id")
        cache = batchcache.current(conn)
        if item_id is not None and cache is not None and cache.covers(item_id) \
                and item_id not in cache.transit_items:
            return  # no open transit to supersede
        item = None if item_id is None else conn.execute(
            select(items.c.status).where(items.c.id == item_id)).first()
        if item_id is not None and item is not None and item.status == "loaned":
            _cancel_open(conn, item_id, now)  # borrowed before staff picked it up


def _on_return(conn: Connection, cabinet_id: str, event: CabinetEvent, now: datetime) -> None:
    # deferred: engine imports ingest, which imports this module lazily
    from . import engine, holds

    item_id = _str(event.payload, "item_id")
    if item_id is None:
        return
    item = conn.execute(engine.ITEM_ROW, {"item_id": item_id}).first()
    if item is None or item.status != "in_cabinet" or item.location_cabinet_id != cabinet_id:
        return  # re-derivation put the return before later events: the book is not here
    cache = batchcache.current(conn)
    branch_id = (cache.cabinet_branch(cabinet_id) if cache is not None else conn.execute(
        select(cabinets.c.branch_id).where(cabinets.c.id == cabinet_id)).scalar_one())
    returning = _branch(conn, branch_id)
    assert returning is not None  # cabinets.branch_id is a foreign key
    owner = _str(event.payload, "owner_library") or item.owner_library or ""
    network = (cache.network() if cache is not None
               else conn.execute(select(libraries.c.isil)).scalars().all())
    route = route_for(returning_branch=returning, home_branch=_branch(conn, item.home_branch_id),
                      owner=owner, network=network)
    uuid = str(event.uuid)
    if route.action == "foreign":
        # the engine's queue helper: one dedupe rule and one shape for every exception
        engine._open_exception(conn, FOREIGN_KIND, item_id=item_id, cabinet_id=cabinet_id,
                              reader_id=_str(event.payload, "reader_id"), now=now,
                              dedupe_key=uuid, evidence={
                                  "events": [event.model_dump(mode="json")],
                                  "owner_library": owner})
        return
    _cancel_open(conn, item_id, now, keep_uuid=uuid)
    if route.action == "stay" or holds.holder_of(conn, item_id) is not None:
        return
    if conn.execute(_TRANSIT_OF_RETURN, {"uuid": uuid}).first():
        return
    if cache is not None:
        cache.transit_opened(item_id)
    transit_id = int(conn.execute(insert(transits).values(
        item_id=item_id, from_cabinet_id=cabinet_id, to_branch_id=route.to_branch_id,
        to_library=route.to_library, status="waiting_pickup", return_uuid=uuid,
        created_at=now).returning(transits.c.id)).scalar_one())
    restock.add_task(conn, cabinet_id=cabinet_id, item_id=item_id, action="unload",
                     reason="transit_home", ref=f"transit:{transit_id}", now=now)
    _log.info("item %s returned at %s goes to %s (%s)", item_id, cabinet_id,
              route.to_branch_id or route.to_library, route.why)


def _on_restock(conn: Connection, cabinet_id: str, event: CabinetEvent, now: datetime) -> None:
    manifest = event.payload.get("manifest")
    if not isinstance(manifest, dict):
        return
    unreadable = _ids(manifest.get("unreadable"))
    loaded = _ids(manifest.get("loaded")) - unreadable
    removed = _ids(manifest.get("removed")) - loaded
    restock.close_for_manifest(conn, cabinet_id=cabinet_id, loaded=loaded, removed=removed,
                               now=now)
    versions = ItemVersions(conn)
    for item_id in sorted(removed):
        _picked_up(conn, versions, item_id, now)
    for item_id in sorted(loaded):
        if not _set_item(conn, versions, item_id, status="in_cabinet",
                         location_cabinet_id=cabinet_id, borrower_id=None, due=None):
            _log.info("manifest of %s loaded %s, which is no known item", cabinet_id, item_id)


def _picked_up(conn: Connection, versions: ItemVersions, item_id: str, now: datetime) -> None:
    """A removed book: on its way home if a transit waits for it, else back on a shelf."""
    transit = conn.execute(select(transits.c.id).where(
        transits.c.item_id == item_id, transits.c.status == "waiting_pickup")
        .order_by(transits.c.id.desc())).first()
    if transit is None:
        _set_item(conn, versions, item_id, status="on_shelf", location_cabinet_id=None,
                  borrower_id=None, due=None)
        return
    conn.execute(update(transits).where(transits.c.id == transit.id).values(
        status="in_transit", picked_up_at=now))
    # taken out of another cabinet than the one it was returned to: that task is moot
    restock.cancel_tasks(conn, ref=f"transit:{transit.id}", now=now)
    _set_item(conn, versions, item_id, status="in_transit", location_cabinet_id=None,
              borrower_id=None, due=None)


# ----------------------------------------------------------------------------- staff


def transit_json(row: Row[Any]) -> dict[str, Any]:
    """A transit as the staff API shows it (``title`` when the row was joined with items)."""
    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {"id": row.id, "item_id": row.item_id, "title": getattr(row, "title", None),
            "from_cabinet_id": row.from_cabinet_id, "to_branch_id": row.to_branch_id,
            "to_library": row.to_library, "status": row.status, "return_uuid": row.return_uuid,
            "created_at": iso(row.created_at), "picked_up_at": iso(row.picked_up_at),
            "received_at": iso(row.received_at)}


def receive(conn: Connection, transit_id: int, *, username: str, now: datetime) -> dict[str, Any]:
    """Staff received the book at its destination: the transit is ``received``, the item
    ``on_shelf`` (no cabinet), the transit's remaining tasks cancelled; audited.

    TransitRefused 404 for an unknown transit, 409 for one already received or cancelled.
    A ``waiting_pickup`` transit may be received too (staff took the book without a manifest,
    e.g. through a maintenance door): the physical fact wins.
    """
    row = conn.execute(select(transits).where(transits.c.id == transit_id)
                       .with_for_update()).first()
    if row is None:
        raise TransitRefused(404, "not_found", f"no transit {transit_id}")
    if row.status not in OPEN_STATUSES:
        code = "already_received" if row.status == "received" else "transit_cancelled"
        raise TransitRefused(409, code, f"transit {transit_id} is {row.status}; only a "
                             "waiting_pickup or in_transit transit can be received")
    conn.execute(update(transits).where(transits.c.id == transit_id).values(
        status="received", received_at=now, picked_up_at=row.picked_up_at or now))
    restock.cancel_tasks(conn, ref=f"transit:{transit_id}", now=now)
    _set_item(conn, ItemVersions(conn), row.item_id, status="on_shelf",
              location_cabinet_id=None, borrower_id=None, due=None)
    record_audit(conn, at=now, actor=username, action="transit.receive",
                 target=f"transit:{transit_id}",
                 detail={"item_id": row.item_id, "was": row.status,
                         "from_cabinet_id": row.from_cabinet_id,
                         "to_branch_id": row.to_branch_id, "to_library": row.to_library})
    done = conn.execute(select(transits).where(transits.c.id == transit_id)).one()
    return transit_json(done)
