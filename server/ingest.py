"""Taking in a cabinet's events, durably and exactly once, and answering with its deltas.

Why it works this way (docs/server-contracts.md, "Sync semantics"):

- **Exactly once.** An event is identified both by (cabinet, seq) and by its uuid; whatever
  is already stored changes nothing, so a cabinet may re-send any batch any number of times
  (it does, after every lost reply). A *different* event under a stored seq is a cabinet
  bug (a ledger restored from backup, a reused id): the first one is kept and the other goes
  to the staff exceptions queue with both as evidence — refusing the whole batch would stop
  the cabinet's sync for good.
- **In order.** Circulation only makes sense in sequence (a return must not overtake its
  loan), so an event after a missing seq is stored with ``applied = false`` and applied the
  moment the gap fills, in the same transaction. ``applied_through`` tells the cabinet what
  it may forget; ``gap_from`` where to re-send from.
- **One writer per cabinet.** The caller holds :func:`server.db.lock_cabinet` for the whole
  batch, so two server processes apply one cabinet's batches one after the other.
- **Clock.** ``cabinets.clock_offset_s`` is the cabinet clock minus the server clock
  (positive: the cabinet is ahead), measured from ``batch.sent_at`` against ``now``;
  ``events.at_corrected = at - offset`` puts every cabinet on the server's time line.
  Caveat (reported to the lead): the kiosk agent sends ``sent_at`` on its raw clock while its
  ledger stamps ``at`` with the clock it already corrected, so for a drifted cabinet this
  corrects twice once the agent has measured its offset; the fix is the kiosk sending
  ``sent_at`` on the corrected clock, after which the offset here is the residual error.

:func:`apply_event` is deliberately minimal (item status, borrower, location, version): the
circulation engine of the next slice replaces it and raises its own exceptions there.
"""

from __future__ import annotations

import logging
import uuid as uuid_mod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Row, func, or_, select, text, update

from syncproto.grants import log_id
from syncproto.messages import (
    CabinetEvent,
    DenyDelta,
    ItemInfo,
    ReaderQuery,
    ReaderReply,
    SignedGrant,
    SyncBatch,
    SyncReply,
)

from . import credit, keys
from .schema import cabinets, deny_list, events, exceptions, grants, items, readers

__all__ = [
    "GAP_REPORT_AFTER",
    "GRANTS_MAX",
    "GRANT_TTL",
    "ITEMS_MAX",
    "RECENT_GRANTS",
    "TIERS",
    "CabinetMismatch",
    "ItemVersions",
    "Tier",
    "apply_batch",
    "apply_event",
    "event_of_row",
    "held_events",
    "resolve_reader",
]

_log = logging.getLogger(__name__)

#: At most this many grants ride on one sync reply.
GRANTS_MAX = 500
#: Grants issued this recently (anywhere) go to every cabinet that syncs: a reader resolved
#: at one cabinet can then borrow offline at the next one.
RECENT_GRANTS = timedelta(days=1)
#: A gap older than this (since the first event held behind it arrived) is reported to staff.
GAP_REPORT_AFTER = timedelta(hours=1)
#: At most this many items per reply; the cabinet asks again from the version it got.
ITEMS_MAX = 1000
#: How long a grant signed at resolve time is valid. Shorter than the expected interval
#: between two key rotations: only the current and the previous key stay trusted.
GRANT_TTL = timedelta(days=7)
# Any constant: the PostgreSQL advisory lock that orders writers of items.version.
_ITEM_VERSION_LOCK = 0x6C656E64  # "lend"
_ITEM_VERSION_KEY = "lendbox.item_version"


@dataclass(frozen=True, slots=True)
class Tier:
    """What a credit tier allows: loans at once, and how many of them may be offline."""

    max_loans: int
    offline_allowance: int


#: Credit tiers (信用借阅) by ``readers.tier``, as the default credit policy defines them
#: (kept for readers of this module; grants are signed by :func:`server.credit.issue_grant`,
#: where an unknown tier gets the lowest: the safe side of a configuration slip).
TIERS: dict[str, Tier] = {t.name: Tier(max_loans=t.max_loans, offline_allowance=t.offline_allowance)
                          for t in credit.DEFAULT_POLICY.tiers}


class CabinetMismatch(ValueError):
    """A batch or event naming another cabinet than the one that signed it (HTTP 403)."""


# ----------------------------------------------------------------------------- times


def _utc(value: datetime) -> datetime:
    """Aware UTC: SQLite stores datetimes without their offset, so everything written is UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(UTC)


def _from_db(value: datetime) -> datetime:
    """A datetime read back: SQLite returns it naive (it was written as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ----------------------------------------------------------------------------- events


def event_of_row(row: Row[Any] | Mapping[str, Any]) -> CabinetEvent:
    """The CabinetEvent a stored ``events`` row was made from (``at`` in UTC): evidence for
    staff, and what tests compare."""
    m = row._mapping if isinstance(row, Row) else row
    return CabinetEvent(cabinet_id=m["cabinet_id"], seq=m["seq"], uuid=uuid_mod.UUID(m["uuid"]),
                        kind=m["kind"], at=_from_db(m["at"]), mono=m["mono"],
                        boot_id=m["boot_id"], offline=m["offline"], payload=m["payload"])


def _event_json(event: CabinetEvent) -> dict[str, Any]:
    return event.model_dump(mode="json")


def _str_field(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


class ItemVersions:
    """Hands out ``items.version`` numbers for one transaction.

    The number is global (a cabinet asks for "everything after version v"), so writers must
    commit in the order they number, or a cabinet could read v+2 before v+1 commits and
    never see v+1. SQLite's single writer gives that for free; on PostgreSQL the first
    number taken locks an advisory transaction lock held until commit.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def next(self) -> int:
        # The counter lives on the connection, tied to its current transaction: every
        # ItemVersions of one transaction (engine, routing, holds…) shares it, so two parts
        # never hand out the same number; a new transaction starts again from the table.
        tx = self._conn.get_transaction()
        state = self._conn.info.get(_ITEM_VERSION_KEY)
        if state is not None and state[0] is tx:
            last = int(state[1])
        else:
            if self._conn.dialect.name == "postgresql":
                self._conn.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                   {"k": _ITEM_VERSION_LOCK})
            last = int(self._conn.execute(
                select(func.coalesce(func.max(items.c.version), 0))).scalar_one())
        last += 1
        self._conn.info[_ITEM_VERSION_KEY] = (tx, last)
        return last


def apply_event(conn: Connection, cabinet_id: str, event: CabinetEvent, now: datetime,
                versions: ItemVersions | None = None,
                outbox: list[dict[str, Any]] | None = None) -> None:
    """Apply one event's effect on the item, in sequence order (the caller's duty).

    Delegates to the circulation engine (:func:`server.engine.apply_event`): item state
    machine, causal order across cabinets, conflicts into the staff exceptions queue.
    ``outbox``: collect the event's ILS outbox row there (the caller queues the batch's rows
    with :func:`server.ils_outbox.enqueue_rows` before it commits) instead of inserting it.
    """
    # engine, holds and routing import this module
    from . import holds, ils_outbox, routing
    from .engine import apply_event as engine_apply_event

    engine_apply_event(conn, cabinet_id, event, now, versions, holds=holds.holder_of)
    # holds first: a returned book a waiting hold takes does not go home
    holds.after_event(conn, cabinet_id, event, now)
    routing.after_event(conn, cabinet_id, event, now)
    # the ILS's share (loan → checkout, return → checkin), queued in this transaction and
    # whether an ILS is configured or not (server/ils_service.py forwards it)
    if outbox is None:
        ils_outbox.enqueue_event(conn, cabinet_id, event, now)
    elif (row := ils_outbox.event_row(cabinet_id, event, now)) is not None:
        outbox.append(row)


def _record_conflict(conn: Connection, cabinet_id: str, kind: str, kept: CabinetEvent,
                     refused: CabinetEvent, now: datetime) -> None:
    """Put a refused event in the exceptions queue, once however often it is re-sent."""
    refused_uuid = str(refused.uuid)
    existing = conn.execute(
        select(exceptions.c.evidence).where(exceptions.c.kind == kind,
                                            exceptions.c.cabinet_id == cabinet_id)).all()
    for row in existing:
        evidence = row.evidence or {}
        if (evidence.get("refused") or {}).get("uuid") == refused_uuid:
            return
    _log.warning("cabinet %s: %s at seq %d (kept %s, refused %s)", cabinet_id, kind,
                 refused.seq, kept.uuid, refused.uuid)
    # item_id/reader_id stay empty: the (kind, item, cabinet, created_at) key is meant for
    # the engine's exceptions, and two conflicts on one item in one batch would collide.
    conn.execute(exceptions.insert().values(
        kind=kind, item_id=None, cabinet_id=cabinet_id, reader_id=None,
        evidence={"seq": refused.seq, "kept": _event_json(kept), "refused": _event_json(refused),
                  "received_at": now.isoformat()},
        actions=["acknowledge"], status="open", created_at=now))


def _store_events(conn: Connection, cabinet_id: str, applied_through: int,
                  batch_events: Iterable[CabinetEvent], offset_s: float, now: datetime) -> None:
    """Insert the batch's new events (``applied = false``); conflicts go to exceptions."""
    batch_events = list(batch_events)
    if not batch_events:
        return
    seqs = sorted({e.seq for e in batch_events})
    uuids = sorted({str(e.uuid) for e in batch_events})
    by_seq: dict[int, CabinetEvent] = {}
    by_uuid: dict[str, CabinetEvent] = {}
    for chunk in _chunks(seqs, 500):
        for row in conn.execute(select(events).where(events.c.cabinet_id == cabinet_id,
                                                     events.c.seq.in_(chunk))):
            by_seq[row.seq] = event_of_row(row)
    for chunk in _chunks(uuids, 500):
        for row in conn.execute(select(events).where(events.c.uuid.in_(chunk))):
            by_uuid[row.uuid] = event_of_row(row)

    new_rows: list[dict[str, Any]] = []
    for event in batch_events:
        key = str(event.uuid)
        known = by_seq.get(event.seq)
        if known is not None:
            if known.uuid != event.uuid:
                _record_conflict(conn, cabinet_id, "sequence_conflict", known, event, now)
            continue
        other = by_uuid.get(key)
        if other is not None:
            # The uuid is stored under another (cabinet, seq): "changes nothing", but this
            # seq stays missing and the cabinet's sync will stall there, so staff must know.
            _record_conflict(conn, cabinet_id, "uuid_conflict", other, event, now)
            continue
        if event.seq <= applied_through:
            # Below applied_through yet not stored: the database lost it (a restore). Keep
            # it, unapplied: replaying it now would apply it out of order.
            _log.warning("cabinet %s: seq %d arrived below applied_through %d and was not "
                         "stored; kept unapplied", cabinet_id, event.seq, applied_through)
        at = _utc(event.at)
        new_rows.append({
            "cabinet_id": cabinet_id, "seq": event.seq, "uuid": key, "kind": event.kind,
            "at": at, "at_corrected": at - timedelta(seconds=offset_s), "mono": event.mono,
            "boot_id": event.boot_id, "offline": event.offline, "payload": dict(event.payload),
            "item_id": _str_field(event.payload, "item_id"), "received_at": now,
            "grant_id": (_str_field(event.payload, "grant_id") or "")[:64] or None,
            "applied": False,
        })
        by_seq[event.seq] = event
        by_uuid[key] = event
    if new_rows:
        conn.execute(events.insert(), new_rows)


def _chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def _apply_pending(conn: Connection, cabinet_id: str, applied_through: int,
                   now: datetime) -> tuple[int, int | None]:
    """Apply held events that are now contiguous, in seq order; (applied_through, gap_from)."""
    pending = conn.execute(
        select(events).where(events.c.cabinet_id == cabinet_id, events.c.applied.is_(False),
                             events.c.seq > applied_through)
        .order_by(events.c.seq)).all()
    from . import batchcache

    contiguous: list[Any] = []
    for row in pending:
        if row.seq != applied_through + len(contiguous) + 1:
            break
        contiguous.append(row)
    if contiguous and conn.dialect.name == "postgresql":
        # Before reading any item: a batch of another cabinet touching the same item must
        # not commit between our reads and our writes (a lost update). The lock ItemVersions
        # takes at the first write came too late for that; taking it here serialises the
        # appliers of batches exactly as the version numbering already did.
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ITEM_VERSION_LOCK})
    versions = ItemVersions(conn)
    done: list[int] = []
    item_ids = {i for r in contiguous if (i := _str_field(r.payload or {}, "item_id"))}
    reader_ids = {i for r in contiguous if (i := _str_field(r.payload or {}, "reader_id"))}
    from .engine import ITEM_KINDS

    last = contiguous[-1].seq if contiguous else 0
    # one insert for the batch's ILS outbox rows: two statements per event were half the
    # time of an ingest (bench/server_ingest.py)
    outbox: list[dict[str, Any]] = []
    with batchcache.installed(conn, item_ids, reader_ids,
                              history=(cabinet_id, last, ITEM_KINDS)):
        for row in contiguous:
            apply_event(conn, cabinet_id, event_of_row(row), now, versions, outbox)
            done.append(row.seq)
            applied_through = row.seq
    from . import ils_outbox

    ils_outbox.enqueue_rows(conn, outbox)
    for chunk in _chunks(done, 500):
        conn.execute(update(events).where(events.c.cabinet_id == cabinet_id,
                                          events.c.seq.in_(chunk)).values(applied=True))
    held = len(pending) > len(done)
    return applied_through, (applied_through + 1 if held else None)


def held_events(conn: Connection, cabinet_id: str) -> tuple[int, datetime | None]:
    """How many events of the cabinet wait behind a gap, and since when (first received)."""
    row = conn.execute(select(func.count(), func.min(events.c.received_at)).where(
        events.c.cabinet_id == cabinet_id, events.c.applied.is_(False))).one()
    return int(row[0]), (_from_db(row[1]) if row[1] is not None else None)


def _report_lasting_gap(conn: Connection, cabinet_id: str, gap_from: int, now: datetime) -> None:
    """A gap still open :data:`GAP_REPORT_AFTER` after the first held event arrived will not
    fill by itself (the cabinet lost the event: a restored ledger, a disk fault): staff get
    a ``sequence_gap`` exception, once per gap, with what is held behind it."""
    from .engine import _open_exception

    held, since = held_events(conn, cabinet_id)
    if since is None or now - since < GAP_REPORT_AFTER:
        return
    _open_exception(conn, "sequence_gap", item_id=None, cabinet_id=cabinet_id, reader_id=None,
                    now=now, dedupe_key=f"gap:{cabinet_id}:{gap_from}",
                    evidence={"gap_from": gap_from, "held_events": held,
                              "held_since": since.isoformat()})


# ----------------------------------------------------------------------------- deltas


def _grants_delta(conn: Connection, batch: SyncBatch, trusted: Mapping[str, str],
                  now: datetime) -> list[SignedGrant]:
    """The newest usable grant of each reader who borrowed or returned in this batch, then
    of readers granted anywhere in the last day; at most :data:`GRANTS_MAX`."""
    base = (select(grants.c.reader_id, grants.c.signed, grants.c.issued_at)
            .join(readers, readers.c.id == grants.c.reader_id)
            .where(grants.c.expires_at > now, grants.c.suspended.is_(False),
                   readers.c.status == "ok")
            .order_by(grants.c.issued_at.desc(), grants.c.grant_id.desc()))
    batch_readers = sorted({r for e in batch.events
                            if (r := _str_field(e.payload, "reader_id")) is not None})
    rows: list[Any] = []
    for chunk in _chunks(batch_readers, 500):
        rows.extend(conn.execute(base.where(grants.c.reader_id.in_(chunk))).all())
    rows.extend(conn.execute(base.where(grants.c.issued_at > now - RECENT_GRANTS)
                             .limit(GRANTS_MAX)).all())
    chosen: dict[str, tuple[datetime, SignedGrant]] = {}
    for row in rows:
        grant = SignedGrant.model_validate(row.signed)
        if grant.key_id not in trusted:  # signed by a key cabinets no longer accept
            continue
        issued = _from_db(row.issued_at)
        if row.reader_id not in chosen or chosen[row.reader_id][0] < issued:
            chosen[row.reader_id] = (issued, grant)
    # The batch's readers first: they are the ones this cabinet is lending to now.
    first = [r for r in batch_readers if r in chosen]
    rest = sorted((r for r in chosen if r not in set(first)),
                  key=lambda r: chosen[r][0], reverse=True)
    return [chosen[r][1] for r in [*first, *rest][:GRANTS_MAX]]


def _deny_delta(conn: Connection, after: int) -> list[DenyDelta]:
    """One delta from the cabinet's version to the newest: each reader's last change wins."""
    rows = conn.execute(select(deny_list.c.version, deny_list.c.reader_id, deny_list.c.denied)
                        .where(deny_list.c.version > after).order_by(deny_list.c.version)).all()
    if not rows:
        return []
    state: dict[str, bool] = {}
    for row in rows:
        state[row.reader_id] = bool(row.denied)
    return [DenyDelta(from_version=after, to_version=rows[-1].version,
                      added=sorted(r for r, d in state.items() if d),
                      removed=sorted(r for r, d in state.items() if not d))]


def _items_delta(conn: Connection, cabinet_id: str, after: int) -> tuple[list[ItemInfo], int]:
    """Items changed after version ``after`` that this cabinet must know — those located in
    it, and those an assigned or ready hold brings here (with ``hold_for``: the cabinet
    lends a held copy only to its holder) — and the version the cabinet is at once it has
    them.

    A copy whose hold ended while it was elsewhere is not sent again: the reply's hold list
    (which replaces the cabinet's) is what tells the cabinet the hold is gone.
    """
    from .schema import holds

    # The newest version first: an item committed after this read has a higher number (see
    # ItemVersions), so nothing at or below `newest` can appear later.
    newest = int(conn.execute(select(func.coalesce(func.max(items.c.version), 0))).scalar_one())
    held_here = select(holds.c.item_id).where(holds.c.pickup_cabinet_id == cabinet_id,
                                              holds.c.status.in_(("assigned", "ready")))
    rows = conn.execute(
        select(items).where(or_(items.c.location_cabinet_id == cabinet_id,
                                items.c.id.in_(held_here)),
                            items.c.version > after, items.c.version <= newest)
        .order_by(items.c.version).limit(ITEMS_MAX)).all()
    holders: dict[str, str] = {}
    ids = [r.id for r in rows]
    for chunk in _chunks(ids, 500):
        for h in conn.execute(select(holds.c.item_id, holds.c.reader_id).where(
                holds.c.item_id.in_(chunk), holds.c.status.in_(("assigned", "ready")))):
            holders[h.item_id] = h.reader_id
    infos = [ItemInfo(item_id=r.id, title=r.title, author=r.author, category=r.category,
                      owner_library=r.owner_library, home_branch=r.home_branch_id or "",
                      reference_only=r.reference_only, hold_for=holders.get(r.id))
             for r in rows]
    version = rows[-1].version if len(rows) == ITEMS_MAX else max(newest, after)
    return infos, int(version)


# ----------------------------------------------------------------------------- batches


def apply_batch(conn: Connection, cabinet_row: Row[Any], batch: SyncBatch,
                now: datetime) -> SyncReply:
    """Store and apply one cabinet batch, exactly once and in order; the reply with deltas.

    The caller holds :func:`server.db.lock_cabinet` on ``cabinet_row`` (read under that
    lock) inside one write transaction. Raises :class:`CabinetMismatch` when the batch or an
    event names another cabinet.
    """
    from . import holds

    now = _utc(now)
    cabinet_id: str = cabinet_row.id
    if batch.cabinet_id != cabinet_id or any(e.cabinet_id != cabinet_id for e in batch.events):
        raise CabinetMismatch(f"a batch of cabinet {cabinet_id!r} may hold only its own events")
    offset_s = (_utc(batch.sent_at) - now).total_seconds()

    _store_events(conn, cabinet_id, int(cabinet_row.applied_through), batch.events, offset_s,
                  now)
    applied_through, gap_from = _apply_pending(conn, cabinet_id,
                                               int(cabinet_row.applied_through), now)
    if gap_from is not None:
        _report_lasting_gap(conn, cabinet_id, gap_from, now)
    if batch.inventory:
        from . import inventory

        inventory.store_snapshots(conn, cabinet_id, batch.inventory, now)

    # fleet status and remote commands (H5): results first, so a command answered in this
    # batch is not delivered again in its reply; only a kiosk that reports a status knows
    # the ``commands`` field of the reply (an older one would refuse the reply)
    from . import fleet_status

    if batch.command_results:
        fleet_status.store_results(conn, cabinet_id, batch.command_results, now)
    if batch.status is not None:
        fleet_status.store_status(conn, cabinet_id, batch.status, now)
    pending_commands = (fleet_status.commands_for_delivery(conn, cabinet_id, now)
                        if batch.status is not None else [])

    keys.ensure_key(conn, now)
    trusted = keys.trusted(conn)
    deny = _deny_delta(conn, batch.deny_version)
    item_infos, items_version = _items_delta(conn, cabinet_id, batch.items_version)
    reply = SyncReply(
        applied_through=applied_through, gap_from=gap_from, server_time=now,
        grants=_grants_delta(conn, batch, trusted, now), deny=deny, items=item_infos,
        items_version=items_version,
        holds=holds.for_cabinet(conn, cabinet_id),
        trusted_keys=trusted,
        commands=pending_commands,
    )
    conn.execute(update(cabinets).where(cabinets.c.id == cabinet_id).values(
        applied_through=applied_through, last_sync_at=now, clock_offset_s=offset_s,
        deny_version_sent=deny[-1].to_version if deny else cabinet_row.deny_version_sent))
    return reply


# ----------------------------------------------------------------------------- readers


def _reader_loans(conn: Connection, reader_id: str) -> int:
    return int(conn.execute(select(func.count()).select_from(items).where(
        items.c.borrower_id == reader_id, items.c.status == "loaned")).scalar_one())


def resolve_reader(conn: Connection, cabinet_row: Row[Any], query: ReaderQuery,
                   now: datetime, *, policy: credit.CreditPolicy = credit.DEFAULT_POLICY
                   ) -> ReaderReply:
    """Who a credential presented at a cabinet belongs to, with a fresh signed grant.

    Exactly one of ``card_hash`` and ``reader_id`` must be given (ValueError otherwise; HTTP
    422). A blocked, suspended or expired reader gets no grant; an ``ok`` one gets a grant
    per the credit ``policy`` (:func:`server.credit.issue_grant`: its tier, raised by its
    history), stored in ``grants`` so that the next sync of any cabinet carries it too.
    Raises :class:`CabinetMismatch` when the query names another cabinet.
    """
    now = _utc(now)
    if query.cabinet_id != cabinet_row.id:
        raise CabinetMismatch("the query names another cabinet")
    if (query.card_hash is None) == (query.reader_id is None):
        raise ValueError("exactly one of card_hash and reader_id is required")
    where = (readers.c.card_hash == query.card_hash if query.card_hash is not None
             else readers.c.id == query.reader_id)
    reader = conn.execute(select(readers).where(where)).first()
    if reader is None:
        return ReaderReply(status="unknown", message="unknown card or reader")
    role: Literal["reader", "staff"] = "staff" if reader.role == "staff" else "reader"
    loans = _reader_loans(conn, reader.id)
    if reader.status != "ok":
        # anything but ok/expired is treated as blocked: the safe reading of an odd status
        status: Literal["blocked", "expired"] = (
            "expired" if reader.status == "expired" else "blocked")
        return ReaderReply(status=status, reader_id=reader.id, display_name=reader.display_name,
                           role=role, loans=loans, message=f"reader is {status}")
    grant = credit.issue_grant(conn, reader.id, now, policy=policy)
    _log.info("resolve at %s: reader %s ok, grant %s", cabinet_row.id, log_id(reader.id),
              grant.grant_id)
    return ReaderReply(status="ok", reader_id=reader.id, display_name=reader.display_name,
                       role=role, loans=loans, grant=grant)
