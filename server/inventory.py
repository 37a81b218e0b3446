"""Door snapshots and the inventory discrepancy report (issue 6, requirement 8).

A cabinet counts a door's RFID tags after every door close and sends what it saw
(``SyncBatch.inventory``). :func:`store_snapshots` keeps the newest count per door;
:func:`discrepancies` compares those counts with what the server believes (``items``).

Kinds, checked in this order so every snapshot item lands in at most one kind:

- ``foreign``: the tag's owner library is not in the network (通借通还 covers only
  ``libraries``) — kept and flagged, never "lost";
- ``unexpected``: in a snapshot, but ``items`` says loaned / on_shelf / lost / missing /
  in_transit, or does not know the item at all;
- ``misplaced``: ``items`` says in_cabinet at *another* cabinet;
- ``other_library``: where it should be, but owned by another network library than the
  cabinet's branch's (it should travel home);
- ``missing``: ``items`` says in_cabinet at this cabinet, and no reported door saw it.

Time rule (why): a count is a photograph, the database a film. An item with any applied
event (loan, return, alarm — at any cabinet — or a restock manifest naming it) whose
corrected time is *after* the snapshot's corrected time changed since the count, so the
count says nothing about it: it is skipped (counted as ``changed_since`` in the cabinet
summary) and judged on the next snapshot. Snapshot times are cabinet clock times; they are
corrected with the cabinet's latest measured offset (``cabinets.clock_offset_s``) to compare
them with ``events.at_corrected``.

Doors never reported (why not "everything missing"): the server does not know how many doors
a cabinet has. A cabinet with no snapshot at all gets no rows, only ``status: no_snapshot``
in :func:`summary`. An in_cabinet item whose last placing event (a return or a restock load
at this cabinet) names a door without a snapshot is ``unverified`` (counted, not flagged);
an item with no placing event (set in_cabinet by hand) is checked against all reported
doors.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from syncproto.messages import DoorSnapshot

from .schema import branches, cabinets, door_snapshots, events, items, libraries
from .security import aware_utc

__all__ = ["ADOPTABLE", "KINDS", "adopt", "discrepancies", "report", "store_snapshots", "summary"]

#: Discrepancy kinds, in the order an item is tested for them.
KINDS = ("foreign", "unexpected", "misplaced", "other_library", "missing")

_CHUNK = 500


def store_snapshots(conn: Connection, cabinet_id: str, snapshots: Sequence[DoorSnapshot],
                    now: datetime) -> None:
    """Keep the newest snapshot of each door of ``cabinet_id``.

    A snapshot not newer than the stored one (by the cabinet's own clock, which is the
    right clock to order one cabinet's counts) is ignored: a re-sent batch must not put an
    old count back over a newer one. The caller holds the cabinet's lock (ingest).
    """
    newest: dict[int, DoorSnapshot] = {}
    for snap in snapshots:  # one batch may carry two counts of one door: keep the later
        if snap.door not in newest or aware_utc(newest[snap.door].taken_at) < aware_utc(
                snap.taken_at):
            newest[snap.door] = snap
    if not newest:
        return
    stored = {row.door: row.taken_at for row in conn.execute(
        select(door_snapshots.c.door, door_snapshots.c.taken_at)
        .where(door_snapshots.c.cabinet_id == cabinet_id))}
    for door, snap in sorted(newest.items()):
        taken = aware_utc(snap.taken_at)
        values = {"taken_at": taken, "unreadable": snap.unreadable, "received_at": now,
                  "items": [{"item_id": i.item_id, "owner_library": i.owner_library}
                            for i in snap.items]}
        if door not in stored:
            conn.execute(door_snapshots.insert().values(cabinet_id=cabinet_id, door=door,
                                                        **values))
        elif aware_utc(stored[door]) < taken:
            conn.execute(update(door_snapshots).where(
                door_snapshots.c.cabinet_id == cabinet_id,
                door_snapshots.c.door == door).values(**values))


# ----------------------------------------------------------------------------- the report


@dataclass
class _Door:
    door: int
    taken_at: datetime  # as the cabinet reported it
    corrected: datetime  # comparable with events.at_corrected
    items: list[dict[str, Any]]
    unreadable: int


@dataclass
class _Cabinet:
    id: str
    library: str | None
    doors: dict[int, _Door] = field(default_factory=dict)
    changed_since: int = 0
    unverified: int = 0


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i:i + _CHUNK]


def _load_cabinets(conn: Connection, cabinet_id: str | None) -> dict[str, _Cabinet]:
    stmt = (select(cabinets.c.id, cabinets.c.clock_offset_s, branches.c.library_isil)
            .select_from(cabinets.outerjoin(branches, branches.c.id == cabinets.c.branch_id))
            .order_by(cabinets.c.id))
    if cabinet_id is not None:
        stmt = stmt.where(cabinets.c.id == cabinet_id)
    cabs: dict[str, _Cabinet] = {}
    offsets: dict[str, float] = {}
    for row in conn.execute(stmt):
        cabs[row.id] = _Cabinet(row.id, row.library_isil)
        offsets[row.id] = float(row.clock_offset_s or 0.0)
    snap_stmt = select(door_snapshots).order_by(door_snapshots.c.cabinet_id, door_snapshots.c.door)
    if cabinet_id is not None:
        snap_stmt = snap_stmt.where(door_snapshots.c.cabinet_id == cabinet_id)
    for row in conn.execute(snap_stmt):
        cab = cabs.get(row.cabinet_id)
        if cab is None:
            continue
        taken = aware_utc(row.taken_at)
        cab.doors[row.door] = _Door(row.door, taken,
                                    taken - timedelta(seconds=offsets[row.cabinet_id]),
                                    list(row.items or []), int(row.unreadable or 0))
    return cabs


def _manifest(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    manifest = payload.get("manifest")
    return manifest if isinstance(manifest, Mapping) else {}


def _ids(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _door_of(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _restock_changes(conn: Connection, since: datetime) -> dict[str, datetime]:
    """item → corrected time of the newest applied restock manifest naming it after
    ``since``, network-wide (read once per report: manifests are few, their ids in JSON)."""
    latest: dict[str, datetime] = {}
    for payload, at in conn.execute(
            select(events.c.payload, events.c.at_corrected)
            .where(events.c.applied.is_(True), events.c.kind == "restock",
                   events.c.at_corrected > since)):
        manifest = _manifest(payload or {})
        at = aware_utc(at)
        for item_id in _ids(manifest.get("loaded")) + _ids(manifest.get("removed")):
            if item_id not in latest or latest[item_id] < at:
                latest[item_id] = at
    return latest


def _latest_changes(conn: Connection, item_ids: Sequence[str], since: datetime,
                    restocked: Mapping[str, datetime]) -> dict[str, datetime]:
    """item → corrected time of its newest applied event after ``since`` (restocks too)."""
    latest = {i: restocked[i] for i in item_ids if i in restocked and restocked[i] > since}
    for chunk in _chunks(item_ids):
        for item_id, at in conn.execute(
                select(events.c.item_id, events.c.at_corrected)
                .where(events.c.applied.is_(True), events.c.at_corrected > since,
                       events.c.item_id.in_(chunk))):
            at = aware_utc(at)
            if item_id not in latest or latest[item_id] < at:
                latest[item_id] = at
    return latest


def _placing_doors(conn: Connection, cabinet_id: str,
                   item_ids: Sequence[str]) -> dict[str, int | None]:
    """item → the door named by its newest placing event at this cabinet (return or restock
    load); items with no such event are absent."""
    newest: dict[str, tuple[datetime, int, int | None]] = {}

    def placed(item_id: str, at: datetime, seq: int, door: int | None) -> None:
        if item_id not in newest or newest[item_id][:2] < (at, seq):
            newest[item_id] = (at, seq, door)

    for chunk in _chunks(item_ids):
        for row in conn.execute(
                select(events.c.item_id, events.c.at_corrected, events.c.seq, events.c.payload)
                .where(events.c.cabinet_id == cabinet_id, events.c.applied.is_(True),
                       events.c.kind == "return", events.c.item_id.in_(chunk))):
            placed(row.item_id, aware_utc(row.at_corrected), row.seq,
                   _door_of((row.payload or {}).get("door")))
    wanted = set(item_ids)
    for restock in conn.execute(
            select(events.c.at_corrected, events.c.seq, events.c.payload)
            .where(events.c.cabinet_id == cabinet_id, events.c.applied.is_(True),
                   events.c.kind == "restock")):
        manifest = _manifest(restock.payload or {})
        # as server.routing reads a manifest: an unreadable tag was no load
        for item_id in set(_ids(manifest.get("loaded"))) - set(_ids(manifest.get("unreadable"))):
            if item_id in wanted:
                placed(item_id, aware_utc(restock.at_corrected), restock.seq,
                       _door_of(manifest.get("door")))
    return {item_id: door for item_id, (_, _, door) in newest.items()}


def _items_by_id(conn: Connection, item_ids: Iterable[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    ids = sorted(set(item_ids))
    for chunk in _chunks(ids):
        for row in conn.execute(select(items.c.id, items.c.status, items.c.location_cabinet_id,
                                       items.c.owner_library).where(items.c.id.in_(chunk))):
            found[row.id] = row
    return found


def _classify(cab: _Cabinet, owner: str, row: Any, network: set[str]) -> str | None:
    """The kind of a snapshot item, or None when the snapshot agrees with the server."""
    if owner and owner not in network:
        return "foreign"
    if row is None or row.status != "in_cabinet":
        return "unexpected"
    if row.location_cabinet_id != cab.id:
        return "misplaced"
    if owner and cab.library is not None and owner != cab.library:
        return "other_library"
    return None


def _believed(row: Any) -> dict[str, Any]:
    if row is None:
        return {"status": "unknown", "location_cabinet_id": None}
    return {"status": row.status, "location_cabinet_id": row.location_cabinet_id}


def _row(kind: str, cab: _Cabinet, door: _Door | None, item_id: str, owner: str, item: Any,
         now: datetime | None) -> dict[str, Any]:
    snapshot_at = door.taken_at if door is not None else min(
        d.taken_at for d in cab.doors.values())
    age = None if now is None else round((aware_utc(now) - snapshot_at).total_seconds(), 1)
    return {"kind": kind, "cabinet_id": cab.id, "door": door.door if door else None,
            "item_id": item_id, "owner_library": owner, "believed": _believed(item),
            "snapshot_at": snapshot_at.isoformat(), "snapshot_age_s": age}


def _cabinet_rows(conn: Connection, cab: _Cabinet, network: set[str],
                  restocked: Mapping[str, datetime],
                  now: datetime | None) -> list[dict[str, Any]]:
    # the newest door that saw each item (a book moved between doors between two counts)
    seen_at: dict[str, tuple[_Door, str]] = {}
    for counted in sorted(cab.doors.values(), key=lambda d: (d.taken_at, d.door)):
        for entry in counted.items:
            item_id = str(entry.get("item_id") or "")
            if item_id:
                seen_at[item_id] = (counted, str(entry.get("owner_library") or ""))
    in_cabinet = [r.id for r in conn.execute(select(items.c.id).where(
        items.c.status == "in_cabinet", items.c.location_cabinet_id == cab.id))]
    candidates = sorted(set(seen_at) | set(in_cabinet))
    known = _items_by_id(conn, seen_at)
    since = min(d.corrected for d in cab.doors.values())
    changed = _latest_changes(conn, candidates, since, restocked)

    rows: list[dict[str, Any]] = []
    for item_id, (seen_door, reported_owner) in sorted(seen_at.items()):
        item = known.get(item_id)
        owner = reported_owner or (item.owner_library if item is not None else "") or ""
        kind = _classify(cab, owner, item, network)
        if kind is None:
            continue
        if item_id in changed and changed[item_id] > seen_door.corrected:
            cab.changed_since += 1
            continue
        rows.append(_row(kind, cab, seen_door, item_id, owner, item, now))

    absent = [i for i in in_cabinet if i not in seen_at]
    placing = _placing_doors(conn, cab.id, absent)
    absent_rows = _items_by_id(conn, absent)
    for item_id in sorted(absent):
        door_no = placing.get(item_id)
        door = cab.doors.get(door_no) if door_no is not None else None
        if door_no is not None and door is None:
            cab.unverified += 1  # it went into a door that never reported a count
            continue
        counted_at = door.corrected if door is not None else since
        if item_id in changed and changed[item_id] > counted_at:
            cab.changed_since += 1
            continue
        item = absent_rows.get(item_id)
        rows.append(_row("missing", cab, door, item_id,
                         item.owner_library if item is not None else "", item, now))
    return rows


def report(conn: Connection, cabinet_id: str | None = None, *,
           now: datetime | None = None) -> dict[str, Any]:
    """``{"discrepancies": rows, "cabinets": summary rows}`` in one pass (see module doc)."""
    cabs = _load_cabinets(conn, cabinet_id)
    network = {r.isil for r in conn.execute(select(libraries.c.isil))}
    rows: list[dict[str, Any]] = []
    reported = [cab for cab in cabs.values() if cab.doors]
    if reported:
        oldest = min(d.corrected for cab in reported for d in cab.doors.values())
        restocked = _restock_changes(conn, oldest)
        for cab in reported:
            rows.extend(_cabinet_rows(conn, cab, network, restocked, now))
    order = {kind: i for i, kind in enumerate(KINDS)}
    rows.sort(key=lambda r: (r["cabinet_id"], order[r["kind"]], r["door"] or 0, r["item_id"]))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    for r in rows:
        counts[r["cabinet_id"]][r["kind"]] += 1
    return {"discrepancies": rows,
            "cabinets": [_summary_row(cab, counts[cab.id], now) for cab in cabs.values()]}


def _summary_row(cab: _Cabinet, counts: Mapping[str, int],
                 now: datetime | None) -> dict[str, Any]:
    doors = sorted(cab.doors.values(), key=lambda d: d.door)
    oldest = min((d.taken_at for d in doors), default=None)
    newest = max((d.taken_at for d in doors), default=None)
    return {
        "cabinet_id": cab.id, "status": "ok" if doors else "no_snapshot",
        "doors_reported": [d.door for d in doors],
        "oldest_snapshot_at": oldest.isoformat() if oldest else None,
        "newest_snapshot_at": newest.isoformat() if newest else None,
        "oldest_snapshot_age_s": (None if now is None or oldest is None
                                  else round((aware_utc(now) - oldest).total_seconds(), 1)),
        "items_seen": sum(len(d.items) for d in doors),
        "unreadable": sum(d.unreadable for d in doors),
        "changed_since": cab.changed_since, "unverified": cab.unverified,
        **{f"{kind}_count": counts.get(kind, 0) for kind in KINDS},
    }


def discrepancies(conn: Connection, cabinet_id: str | None = None, *,
                  now: datetime | None = None) -> list[dict[str, Any]]:
    """The discrepancy rows: ``{kind, cabinet_id, door, item_id, owner_library, believed:
    {status, location_cabinet_id}, snapshot_at, snapshot_age_s}`` (``now`` only fills the
    age). ``door`` is None for a missing item whose door is not known."""
    return list(report(conn, cabinet_id, now=now)["discrepancies"])


def summary(conn: Connection, cabinet_id: str | None = None, *,
            now: datetime | None = None) -> list[dict[str, Any]]:
    """Per cabinet: ``status`` (``ok`` | ``no_snapshot``), ``doors_reported``, snapshot
    times, ``unreadable`` tags, ``changed_since`` / ``unverified`` counts, counts per kind."""
    return list(report(conn, cabinet_id, now=now)["cabinets"])


#: What :func:`adopt` may move into the cabinet: the count is the physical truth for books
#: the server has on the shelf, does not know, lost, missing or placed in another cabinet. A
#: book the server has on loan (a return never recorded?) or in transit is left to staff.
ADOPTABLE = frozenset({"on_shelf", "unknown", "lost", "missing"})


def adopt(conn: Connection, cabinet_id: str, now: datetime) -> dict[str, Any]:
    """Take the cabinet's latest count as its stock: ``unexpected`` items the server has on
    the shelf, lost, missing or does not know, and ``misplaced`` ones, become ``in_cabinet``
    here (an unknown one is added with its owner library). Why: a cabinet commissioned or
    filled without a restock manifest (before lendbox, a technician's re-baseline) has books
    the server never saw arrive; staff confirm the count instead of editing items one by one.

    Returns ``{"adopted": [item ids], "left": [{item_id, status}]}`` (left: loaned or in
    transit — those need a person). The caller audits it; ``KeyError`` for an unknown
    cabinet, ``LookupError`` for a cabinet that never reported a count."""
    from .ingest import ItemVersions

    result = report(conn, cabinet_id, now=now)
    if not result["cabinets"]:
        raise KeyError(cabinet_id)
    if result["cabinets"][0]["status"] == "no_snapshot":
        raise LookupError(f"cabinet {cabinet_id} has not reported a count yet")
    versions = ItemVersions(conn)
    adopted: list[str] = []
    left: list[dict[str, str]] = []
    for row in result["discrepancies"]:
        if row["kind"] not in ("unexpected", "misplaced"):
            continue
        status = row["believed"]["status"]
        item_id = row["item_id"]
        if row["kind"] == "unexpected" and status not in ADOPTABLE:
            left.append({"item_id": item_id, "status": status})
            continue
        values = {"status": "in_cabinet", "location_cabinet_id": cabinet_id,
                  "borrower_id": None, "due": None, "version": versions.next()}
        if status == "unknown":
            conn.execute(items.insert().values(id=item_id,
                                               owner_library=row["owner_library"][:32], **values))
        else:
            conn.execute(update(items).where(items.c.id == item_id).values(**values))
        adopted.append(item_id)
    return {"adopted": adopted, "left": left}
