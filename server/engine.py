"""The circulation engine: what a cabinet's event means for the item, the reader and the grant.

Why it works this way:

- **Causal order per item.** A cabinet's own events are applied in ``seq`` order (ingest holds
  later events behind a gap). Events of *one item* from *different cabinets* are ordered by
  ``at_corrected`` (the cabinet's clock minus its measured offset), each cabinet's events
  staying in their ``seq`` order (a k-way merge), ties broken by cabinet id then seq — the
  same history always gives the same order, whatever order the batches arrived in.
- **Late arrivals re-derive.** When an event arrives that belongs *before* events of the item
  already applied (another cabinet was offline longer), the item's state is recomputed from
  its whole ordered history rather than patched: the simplest rule that is obviously right.
  Re-derivation starts from a shelved item (``on_shelf``); a status staff set by hand before
  the item's first event is not part of the history and is not replayed.
- **Physical facts win; doubts go to staff.** An item a cabinet saw coming back *is* in that
  cabinet, whatever the record said (lost, missing, never lent); a loan a cabinet made offline
  *happened* — the book is with the reader — even if the reader was blocked meanwhile or the
  item was on hold for someone else. The engine records the fact and puts what needs a human
  decision into the ``exceptions`` queue with the evidence (the events involved, the item's
  state) and the resolution actions offered; :func:`resolve_exception` applies one, audited.
- **Overdraft.** A reader's offline loans under one grant beyond the grant's signed
  ``offline_allowance`` suspend the grant (cabinets stop getting it), deny the reader
  (reason ``overdraft``) and open an exception, once per grant.

Holds: :func:`apply_event` takes a ``holds`` lookup (item id → reader id holding it); ingest
passes :func:`server.holds.holder_of`, so an offline loan of a copy reserved for someone
else opens ``loan_over_hold``.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, insert, or_, select, update

from syncproto.messages import CabinetEvent

from . import restock
from . import batchcache
from .ingest import ItemVersions, event_of_row
from .schema import deny_list, events, exceptions, grants, items, readers
from .security import record_audit

__all__ = [
    "ACTIONS",
    "ENGINE_ACTOR",
    "HoldLookup",
    "ITEM_ROW",
    "ItemState",
    "ResolutionRefused",
    "apply_event",
    "resolve_exception",
]

_log = logging.getLogger(__name__)

#: The audit actor of the engine's own deterministic resolutions.
ENGINE_ACTOR = "engine"

#: item id → the reader the item is held for (None: no hold).
HoldLookup = Callable[[Connection, str], str | None]

#: Resolution actions offered per exception kind (the first is the engine's own choice,
#: already applied; staff confirm it or pick another).
ACTIONS: dict[str, list[str]] = {
    "returned_while_lost": ["accept_return", "mark_lost"],
    "loan_over_hold": ["accept_loan", "void_loan"],
    "loan_to_blocked_reader": ["accept_loan", "mark_lost"],
    "overdraft": ["keep_suspended", "lift_suspension"],
    "double_loan": ["keep_later_loan", "keep_earlier_loan", "mark_missing"],
    # ingest: a cabinet's sequence gap that stays open (its later events wait unapplied)
    "sequence_gap": ["acknowledge"],
    # server.ils_outbox: the ILS refused a forwarded loan/return/renewal (its message kept)
    "ils_rejected": ["acknowledge", "resend"],
    # a book from outside the network (server.routing): it stays flagged in the cabinet
    "foreign_item_returned": ["keep_for_owner", "send_to_owner"],
}

#: The kinds of event that change an item (the others are statistics or restock).
ITEM_KINDS = ("loan", "return", "alarm")
_ITEM_KINDS = ITEM_KINDS


class ResolutionRefused(ValueError):
    """A resolution that cannot be applied: ``code`` is the API error (404/409/422)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ItemState:
    """What the ``items`` row says about circulation, plus the loan that is still open (for
    detecting a second loan of an item already out)."""

    status: str = "on_shelf"
    location_cabinet_id: str | None = None
    borrower_id: str | None = None  # a reader the server knows (foreign key)
    due: str | None = None
    open_loan: dict[str, Any] | None = None  # the loan event (JSON) not yet returned


@dataclass(slots=True)
class _Finding:
    """A conflict met while folding: an exception (``kind`` in :data:`ACTIONS`) or, with
    ``audit_only``, a deterministic resolution that is only written down."""

    kind: str
    trigger: CabinetEvent
    involved: list[dict[str, Any]]
    reader_id: str | None = None
    audit_only: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- helpers


def _str(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


def _ev_json(event: CabinetEvent) -> dict[str, Any]:
    return event.model_dump(mode="json")


def _state_json(state: ItemState) -> dict[str, Any]:
    return {"status": state.status, "location_cabinet_id": state.location_cabinet_id,
            "borrower_id": state.borrower_id, "due": state.due}


def _known_reader(conn: Connection, reader_id: str | None) -> str | None:
    """The id if the server knows the reader (the foreign key allows nothing else)."""
    if reader_id is None:
        return None
    cache = batchcache.current(conn)
    if cache is not None:
        return reader_id if cache.reader_exists(reader_id) else None
    row = conn.execute(select(readers.c.id).where(readers.c.id == reader_id)).first()
    return reader_id if row is not None else None


# ----------------------------------------------------------------------------- ordering


def _history(conn: Connection, cabinet_id: str, event: CabinetEvent,
             item_id: str) -> list[Row[Any]]:
    """The item's applied events plus this one, in causal order.

    "Applied" is: this cabinet's events up to this seq (ingest applies in seq order and flags
    them at the end of the batch, so the flag cannot be trusted within the batch), and other
    cabinets' events flagged applied (committed by their own batches).
    """
    cache = batchcache.current(conn)
    cached = cache.history(cabinet_id, item_id, event.seq) if cache is not None else None
    if cached is not None:
        return _causal_order(cached)
    rows = conn.execute(_HISTORY, {"item_id": item_id, "cabinet_id": cabinet_id,
                                   "seq": event.seq}).all()
    return _causal_order(rows)


# Built once: constructing a statement costs more Python time than SQLite takes to run it.
_HISTORY = select(events).where(
    events.c.item_id == bindparam("item_id"), events.c.kind.in_(_ITEM_KINDS),
    or_(and_(events.c.cabinet_id == bindparam("cabinet_id"), events.c.seq <= bindparam("seq")),
        and_(events.c.cabinet_id != bindparam("cabinet_id"), events.c.applied.is_(True))))
#: One item's row by ``item_id`` (shared by the sync path's hooks).
ITEM_ROW = select(items).where(items.c.id == bindparam("item_id"))
_INSERT_ITEM = insert(items)
_WRITE_ITEM = update(items).where(items.c.id == bindparam("item_key")).values(
    status=bindparam("status"), location_cabinet_id=bindparam("location_cabinet_id"),
    borrower_id=bindparam("borrower_id"), due=bindparam("due"), version=bindparam("version"),
    last_loan_at=bindparam("last_loan_at"))


def _causal_order(rows: Sequence[Row[Any]]) -> list[Row[Any]]:
    """Merge per-cabinet seq-ordered streams by corrected time (ties: cabinet id, seq)."""
    streams: dict[str, list[Row[Any]]] = {}
    for row in rows:
        streams.setdefault(row.cabinet_id, []).append(row)
    for stream in streams.values():
        stream.sort(key=lambda r: r.seq)

    def key(row: Row[Any]) -> tuple[datetime, str, int]:
        at = row.at_corrected
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        return at, row.cabinet_id, row.seq

    heap = [(key(s[0]), cab, 0) for cab, s in streams.items()]
    heapq.heapify(heap)
    ordered: list[Row[Any]] = []
    while heap:
        _, cab, i = heapq.heappop(heap)
        ordered.append(streams[cab][i])
        if i + 1 < len(streams[cab]):
            heapq.heappush(heap, (key(streams[cab][i + 1]), cab, i + 1))
    return ordered


# ----------------------------------------------------------------------------- the fold


def _step(conn: Connection, state: ItemState, cabinet_id: str,
          event: CabinetEvent) -> tuple[ItemState, list[_Finding]]:
    """One event's effect on the item state, and the conflicts it shows (pure but for the
    reader lookup)."""
    findings: list[_Finding] = []
    payload = event.payload
    if event.kind == "loan":
        reader_id = _str(payload, "reader_id")
        if state.open_loan is not None:
            # Two loans with no return between: one book cannot be in two readers' hands.
            findings.append(_Finding("double_loan", event, [state.open_loan, _ev_json(event)],
                                     reader_id))
        elif state.status in ("lost", "missing"):
            findings.append(_Finding("loan_while_lost", event, [_ev_json(event)], reader_id,
                                     audit_only=True, extra={"was": state.status}))
        due = _str(payload, "due")
        return ItemState("loaned", None, _known_reader(conn, reader_id),
                         due[:10] if due else None, _ev_json(event)), findings
    if event.kind == "return":
        involved = [_ev_json(event)]
        if state.status in ("lost", "missing"):
            findings.append(_Finding("returned_while_lost", event, involved,
                                     _str(payload, "reader_id"), extra={"was": state.status}))
        elif state.open_loan is None and state.status != "loaned":
            if not (state.status == "in_cabinet" and state.location_cabinet_id == cabinet_id):
                findings.append(_Finding("return_without_loan", event, involved,
                                         audit_only=True, extra={"was": state.status}))
        return ItemState("in_cabinet", cabinet_id, None, None, None), findings
    # alarm naming the item: it left without a loan; its last known place stays
    return replace(state, status="missing", borrower_id=None, due=None, open_loan=None), findings


def _fold(conn: Connection, rows: Sequence[Row[Any]],
          start: ItemState) -> tuple[ItemState, list[_Finding]]:
    state, found = start, []
    for row in rows:
        state, more = _step(conn, state, row.cabinet_id, event_of_row(row))
        found.extend(more)
    return state, found


# ----------------------------------------------------------------------------- exceptions


def _open_exception(conn: Connection, kind: str, *, item_id: str | None, cabinet_id: str | None,
                    reader_id: str | None, evidence: dict[str, Any], now: datetime,
                    dedupe_key: str) -> bool:
    """Queue one exception unless one with this kind and key exists; True if queued.

    ``created_at`` is nudged by microseconds when another exception of the same kind, item
    and cabinet was queued at the same instant (the table's unique key)."""
    for row in conn.execute(select(exceptions.c.evidence).where(
            exceptions.c.kind == kind, exceptions.c.item_id == item_id
            if item_id is not None else exceptions.c.item_id.is_(None))):
        if (row.evidence or {}).get("key") == dedupe_key:
            return False
    created = now
    while conn.execute(select(exceptions.c.id).where(
            exceptions.c.kind == kind, exceptions.c.item_id == item_id,
            exceptions.c.cabinet_id == cabinet_id, exceptions.c.created_at == created)).first():
        created += timedelta(microseconds=1)
    _log.warning("exception %s: item %s at cabinet %s", kind, item_id, cabinet_id)
    conn.execute(insert(exceptions).values(
        kind=kind, item_id=item_id, cabinet_id=cabinet_id, reader_id=reader_id,
        evidence={**evidence, "key": dedupe_key}, actions=ACTIONS[kind],
        status="open", created_at=created))
    return True


def _record(conn: Connection, item_id: str, finding: _Finding, state: ItemState,
            now: datetime, current_uuid: str) -> None:
    key = "|".join(sorted(str(e["uuid"]) for e in finding.involved))
    evidence = {"events": finding.involved, "item_state": _state_json(state), **finding.extra}
    if finding.audit_only:
        if str(finding.trigger.uuid) == current_uuid:  # not again when re-deriving
            record_audit(conn, at=now, actor=ENGINE_ACTOR, action=f"engine.{finding.kind}",
                         target=f"item:{item_id}", detail=evidence)
        return
    _open_exception(conn, finding.kind, item_id=item_id, cabinet_id=finding.trigger.cabinet_id,
                    reader_id=finding.reader_id, evidence=evidence, now=now, dedupe_key=key)


# ----------------------------------------------------------------------------- arrival checks


def _check_loan(conn: Connection, cabinet_id: str, event: CabinetEvent, item_id: str,
                now: datetime, holds: HoldLookup | None) -> None:
    """Rules judged against the world as the server knows it now (not replayed on
    re-derivation): hold for someone else, reader blocked meanwhile, grant overdraft."""
    reader_id = _str(event.payload, "reader_id")
    ev = _ev_json(event)
    key = str(event.uuid)
    if holds is not None:
        holder = holds(conn, item_id)
        if holder is not None and holder != reader_id:
            _open_exception(conn, "loan_over_hold", item_id=item_id, cabinet_id=cabinet_id,
                            reader_id=reader_id, now=now, dedupe_key=key,
                            evidence={"events": [ev], "hold_for": holder})
    if reader_id is None or not event.offline:
        return  # an online loan was decided by the server itself: nothing to judge later
    reader = conn.execute(select(readers.c.status).where(readers.c.id == reader_id)).first()
    if reader is not None and reader.status != "ok":
        _open_exception(conn, "loan_to_blocked_reader", item_id=item_id, cabinet_id=cabinet_id,
                        reader_id=reader_id, now=now, dedupe_key=key,
                        evidence={"events": [ev], "reader_status": reader.status})
    grant_id = _str(event.payload, "grant_id")
    if grant_id is not None:
        _check_overdraft(conn, cabinet_id, event, reader_id, grant_id, now)


def _check_overdraft(conn: Connection, cabinet_id: str, event: CabinetEvent, reader_id: str,
                     grant_id: str, now: datetime) -> None:
    grant = conn.execute(select(grants).where(grants.c.grant_id == grant_id,
                                              grants.c.reader_id == reader_id)).first()
    if grant is None or grant.suspended:
        return
    allowance = int((grant.signed or {}).get("offline_allowance", 0))
    issued = grant.issued_at
    issued = issued.replace(tzinfo=UTC) if issued.tzinfo is None else issued
    candidates = conn.execute(select(events).where(
        events.c.grant_id == grant_id, events.c.kind == "loan", events.c.offline.is_(True),
        events.c.at_corrected >= issued - timedelta(days=1),
        or_(and_(events.c.cabinet_id == cabinet_id, events.c.seq <= event.seq),
            and_(events.c.cabinet_id != cabinet_id, events.c.applied.is_(True))))).all()
    loans = [r for r in candidates if (r.payload or {}).get("grant_id") == grant_id
             and (r.payload or {}).get("reader_id") == reader_id]
    if len(loans) <= allowance:
        return
    conn.execute(update(grants).where(grants.c.grant_id == grant_id).values(suspended=True))
    conn.execute(insert(deny_list).values(reader_id=reader_id, denied=True, reason="overdraft",
                                          at=now))
    _open_exception(conn, "overdraft", item_id=_str(event.payload, "item_id"),
                    cabinet_id=cabinet_id, reader_id=reader_id, now=now,
                    dedupe_key=f"grant:{grant_id}",
                    evidence={"events": [_ev_json(event_of_row(r)) for r in loans],
                              "grant_id": grant_id, "offline_allowance": allowance,
                              "offline_loans": len(loans)})


# ----------------------------------------------------------------------------- apply


def _write_state(conn: Connection, item_id: str, state: ItemState, versions: ItemVersions,
                 owner: str, row: Row[Any] | None, loan_at: datetime | None) -> None:
    """Write the item's new state (``row``: it as read before; ``loan_at``: a loan's time,
    kept in ``last_loan_at`` when it is the newest — rotation's "not borrowed for N days")."""
    values = {**_state_json(state), "version": versions.next()}
    last_loan = None if row is None else row.last_loan_at
    if loan_at is not None and (last_loan is None or last_loan < loan_at):
        last_loan = loan_at
    if row is not None:
        conn.execute(_WRITE_ITEM, {"item_key": item_id, "last_loan_at": last_loan, **values})
        return
    conn.execute(_INSERT_ITEM, {"id": item_id, "owner_library": owner[:32],
                                "last_loan_at": last_loan, **values})


def apply_event(conn: Connection, cabinet_id: str, event: CabinetEvent, now: datetime,
                versions: ItemVersions | None = None, *,
                holds: HoldLookup | None = None) -> None:
    """Apply one stored event of ``cabinet_id`` (called in the cabinet's seq order).

    The event must already be in ``events`` (ingest stores a batch before applying it): its
    place in the item's history is read from there. Events not about an item change nothing.
    """
    item_id = _str(event.payload, "item_id")
    if item_id is None or event.kind not in _ITEM_KINDS:
        return
    versions = versions or ItemVersions(conn)
    history = _history(conn, cabinet_id, event, item_id)
    me = str(event.uuid)
    position = next((i for i, r in enumerate(history) if r.uuid == me), None)
    if position is None:  # not stored (a caller outside ingest): it is simply the newest
        position = len(history)
    row = conn.execute(ITEM_ROW, {"item_id": item_id}).first()

    if position >= len(history) - 1:
        # The usual case: the event is the newest of the item — one step from the row.
        prior, _ = _fold(conn, history[:position], ItemState())
        start = prior if row is None else ItemState(
            row.status, row.location_cabinet_id, row.borrower_id, row.due, prior.open_loan)
        state, found = _step(conn, start, cabinet_id, event)
    else:
        # An event that belongs before others already applied: re-derive from the history.
        _log.info("item %s: event %s/%d arrived late, re-deriving", item_id, cabinet_id,
                  event.seq)
        state, found = _fold(conn, history, ItemState())
    for finding in found:
        _record(conn, item_id, finding, state, now, me)
    _write_state(conn, item_id, state, versions, _str(event.payload, "owner_library") or "",
                 row, event.at.astimezone(UTC) if event.kind == "loan" else None)
    if event.kind == "loan":
        _check_loan(conn, cabinet_id, event, item_id, now, holds)


# ----------------------------------------------------------------------------- resolution


def _set_item(conn: Connection, item_id: str | None, **values: Any) -> None:
    if item_id is None:
        return
    values["version"] = ItemVersions(conn).next()
    conn.execute(update(items).where(items.c.id == item_id).values(**values))


def _loan_values(conn: Connection, loan: Mapping[str, Any]) -> dict[str, Any]:
    payload = loan.get("payload") or {}
    due = _str(payload, "due")
    return {"status": "loaned", "location_cabinet_id": None,
            "borrower_id": _known_reader(conn, _str(payload, "reader_id")),
            "due": due[:10] if due else None}


def resolve_exception(conn: Connection, exception_id: int, action: str, note: str,
                      staff_id: int, username: str, now: datetime) -> dict[str, Any]:
    """Apply staff's choice for an open exception, audited in the same transaction.

    Only an action the exception offers is accepted (422 otherwise); a resolved one is 409.
    Effects: ``accept_*``/``keep_suspended``/``keep_later_loan`` confirm what the engine did;
    ``void_loan`` puts the item back in the cabinet; ``mark_lost``/``mark_missing`` set that
    status; ``keep_earlier_loan`` gives the item back to the first borrower;
    ``lift_suspension`` un-suspends the grant and clears the reader's overdraft denial;
    ``send_to_owner`` (a foreign book) puts an unload task on the cabinet's restock list,
    ``keep_for_owner`` leaves it there, flagged.
    """
    row = conn.execute(select(exceptions).where(exceptions.c.id == exception_id)
                       .with_for_update()).first()
    if row is None:
        raise ResolutionRefused(404, "not_found", f"no exception {exception_id}")
    if row.status != "open":
        raise ResolutionRefused(409, "already_resolved",
                                f"exception {exception_id} was resolved ({row.resolution})")
    offered = list(row.actions or [])
    if action not in offered:
        raise ResolutionRefused(422, "action_not_offered",
                                f"action {action!r} is not offered for this {row.kind}; "
                                f"offered: {offered}")
    evidence = row.evidence or {}
    involved = evidence.get("events") or []
    if action == "void_loan":
        _set_item(conn, row.item_id, status="in_cabinet", location_cabinet_id=row.cabinet_id,
                  borrower_id=None, due=None)
    elif action == "mark_lost":
        _set_item(conn, row.item_id, status="lost", borrower_id=None, due=None)
    elif action == "mark_missing":
        _set_item(conn, row.item_id, status="missing", borrower_id=None, due=None)
    elif action == "keep_earlier_loan" and involved:
        _set_item(conn, row.item_id, **_loan_values(conn, involved[0]))
    elif action == "send_to_owner" and row.item_id is not None and row.cabinet_id is not None:
        # staff take it out at the next restock visit and post it to its owner
        restock.add_task(conn, cabinet_id=row.cabinet_id, item_id=row.item_id, action="unload",
                         reason="transit_home", ref=f"exception:{exception_id}", now=now)
    elif action == "resend":  # staff fixed the cause in the ILS: forward it again
        from .schema import ils_outbox

        conn.execute(update(ils_outbox).where(ils_outbox.c.id == evidence.get("outbox_id"))
                     .values(status="pending", updated_at=now))
    elif action == "lift_suspension":
        grant_id = evidence.get("grant_id")
        conn.execute(update(grants).where(grants.c.grant_id == grant_id).values(suspended=False))
        if row.reader_id is not None:
            conn.execute(insert(deny_list).values(reader_id=row.reader_id, denied=False,
                                                  reason="overdraft_cleared", at=now))
    conn.execute(update(exceptions).where(exceptions.c.id == exception_id).values(
        status="resolved", resolution=action, resolved_by=staff_id, resolved_at=now))
    record_audit(conn, at=now, actor=username, action="exception.resolve",
                 target=f"exception:{exception_id}",
                 detail={"kind": row.kind, "action": action, "note": note,
                         "item_id": row.item_id, "reader_id": row.reader_id})
    return {"id": exception_id, "kind": row.kind, "status": "resolved", "resolution": action}
