"""Forwarding circulation results to the ILS exactly once: the durable outbox and its rules.

Why it works this way (issue [5/6], requirement 3):

- **Durable before the wire.** Every loan, return and renewal the server applied becomes one
  ``ils_outbox`` row (ingest calls :func:`enqueue_event` for every applied event, reader
  services :func:`enqueue` for renewals); ``kind`` + ``source`` are unique, so
  re-applying an event cannot queue it twice. Before a request is written to the ILS the
  row is committed as ``sent``; the answer then makes it ``confirmed`` or ``rejected``. A
  crash or a lost answer leaves it ``sent``: *uncertain*.
- **Never a blind retry.** An uncertain row is resolved by asking the ILS what it now holds
  (item information, patron information) before anything is sent again: if the ILS already
  shows the effect, the row is confirmed (``resolved_by = item_information``); only if it
  does not is the row sent again. So a checkout whose answer was lost is never charged twice
  and a checkin never repeated on an item someone has borrowed since.
- **One item at a time, in order.** An item's rows go out in the order of their
  transactions; a later row of an item waits until the earlier one is final. A checkin must
  never reach the ILS before the checkout it ends.
- **Refusals are work for staff.** An ILS refusal (item not found, patron blocked, item
  charged to someone else) is kept with the ILS's own screen message and put in the staff
  exceptions queue — never dropped.

The decisions are pure (:func:`effect_visible`); :class:`Forwarder` drives any
:class:`IlsPort` — the SIP2 client in production, an in-memory ILS in the tests — with the
database in between.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sqlalchemy import Connection, Engine, func, insert, select, update

from syncproto.messages import CabinetEvent

from .db import write_tx
from .schema import ils_outbox

__all__ = [
    "FINAL",
    "Entry",
    "Forwarder",
    "IlsAnswer",
    "IlsItemView",
    "IlsPort",
    "IlsUnreachable",
    "Kind",
    "LostAnswer",
    "effect_visible",
    "enqueue",
    "enqueue_event",
    "record_answer",
    "record_lookup",
    "mark_sent",
    "due_entries",
]

_log = logging.getLogger(__name__)

Kind = Literal["checkout", "checkin", "renew"]
KINDS: tuple[str, ...] = ("checkout", "checkin", "renew")
FINAL = ("confirmed", "rejected")


@dataclass(frozen=True, slots=True)
class Entry:
    """One outbox row, as the forwarder needs it."""

    id: int
    kind: str
    item_id: str
    reader_id: str | None
    transaction_at: datetime
    due: str | None
    offline: bool
    status: str
    attempts: int
    previous_due: str | None = None  # renew: the due date before it


@dataclass(frozen=True, slots=True)
class IlsAnswer:
    """The ILS's answer to a request: ``ok`` (the ok/renewal-ok flag) and its screen message."""

    ok: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class IlsItemView:
    """What the ILS holds now about an item: charged or not, to whom when it says (patron
    information's charged items), and its due date (``YYYY-MM-DD``)."""

    charged: bool
    charged_to: str | None = None
    due: str | None = None


class LostAnswer(Exception):  # noqa: N818 - an event of the wire, not a program error
    """The request may or may not have reached the ILS: the answer never came."""


class IlsUnreachable(Exception):  # noqa: N818
    """Nothing was sent: the ILS could not be reached (connect or login failed)."""


class IlsPort(Protocol):
    """The ILS as the forwarder sees it (implemented by the SIP2 client)."""

    def send(self, entry: Entry) -> IlsAnswer: ...
    def lookup(self, entry: Entry) -> IlsItemView: ...


# ----------------------------------------------------------------------------- the rule


def effect_visible(entry: Entry, view: IlsItemView) -> bool:
    """Whether the ILS already shows ``entry``'s effect (then it must not be sent again).

    checkout: the item is charged, and not to another reader when the ILS names one;
    checkin: the item is not charged; renew: charged (not to another reader) with the
    renewal's due date — or, when the date before the renewal is known, with any due date
    other than that one (an ILS may compute its own renewal date).
    """
    if entry.kind == "checkout":
        return view.charged and (view.charged_to is None or view.charged_to == entry.reader_id)
    if entry.kind == "checkin":
        return not view.charged
    if not view.charged or view.due is None:
        return False
    if view.charged_to is not None and view.charged_to != entry.reader_id:
        return False
    return view.due == entry.due or (entry.previous_due is not None
                                     and view.due != entry.previous_due)


# ----------------------------------------------------------------------------- the table


def _entry(row: Any) -> Entry:
    return Entry(id=row.id, kind=row.kind, item_id=row.item_id, reader_id=row.reader_id,
                 transaction_at=row.transaction_at, due=row.due, offline=bool(row.offline),
                 status=row.status, attempts=int(row.attempts), previous_due=row.previous_due)


def enqueue(conn: Connection, *, kind: str, source: str, item_id: str, reader_id: str | None,
            cabinet_id: str | None, transaction_at: datetime, due: str | None, offline: bool,
            now: datetime, previous_due: str | None = None) -> bool:
    """Queue one result (True) unless ``(kind, source)`` is queued already (False)."""
    if kind not in KINDS:
        raise ValueError(f"unknown ILS kind {kind!r}; one of {KINDS}")
    exists = conn.execute(select(ils_outbox.c.id).where(
        ils_outbox.c.kind == kind, ils_outbox.c.source == source)).first()
    if exists is not None:
        return False
    conn.execute(insert(ils_outbox).values(
        kind=kind, source=source, item_id=item_id, reader_id=reader_id, cabinet_id=cabinet_id,
        transaction_at=transaction_at.astimezone(UTC), due=due, previous_due=previous_due,
        offline=offline,
        status="pending", attempts=0, created_at=now, updated_at=now))
    return True


def event_row(cabinet_id: str, event: CabinetEvent, now: datetime) -> dict[str, Any] | None:
    """The outbox row a cabinet's loan (→ checkout) or return (→ checkin) becomes; None for
    other events and events without an item (not the ILS's business)."""
    item_id = event.payload.get("item_id")
    if event.kind not in ("loan", "return") or not isinstance(item_id, str) or not item_id:
        return None
    reader = event.payload.get("reader_id")
    due = event.payload.get("due")
    return {"kind": "checkout" if event.kind == "loan" else "checkin",
            "source": str(event.uuid), "item_id": item_id,
            "reader_id": reader if isinstance(reader, str) else None,
            "cabinet_id": cabinet_id, "transaction_at": event.at.astimezone(UTC),
            "due": due[:10] if isinstance(due, str) and event.kind == "loan" else None,
            "previous_due": None, "offline": event.offline, "status": "pending",
            "attempts": 0, "created_at": now, "updated_at": now}


def enqueue_event(conn: Connection, cabinet_id: str, event: CabinetEvent,
                  now: datetime) -> bool:
    """A cabinet's loan (→ checkout) or return (→ checkin) into the outbox; other events and
    events without an item are not the ILS's business (False)."""
    row = event_row(cabinet_id, event, now)
    return row is not None and enqueue_rows(conn, [row]) == 1


# Built once: building an insert per row costs more Python time than the database takes.
_INSERT_ROW = insert(ils_outbox)


def enqueue_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Queue many :func:`event_row` rows in one statement, in their order (the forwarder
    sends an item's rows by id); a ``(kind, source)`` already queued, in the table or
    earlier in ``rows``, is skipped. How many were queued."""
    if not rows:
        return 0
    sources = sorted({r["source"] for r in rows})
    queued: set[tuple[str, str]] = set()
    for i in range(0, len(sources), 500):
        queued.update((k, s) for k, s in conn.execute(
            select(ils_outbox.c.kind, ils_outbox.c.source)
            .where(ils_outbox.c.source.in_(sources[i:i + 500]))).all())
    fresh = []
    for row in rows:
        key = (row["kind"], row["source"])
        if key not in queued:
            queued.add(key)
            fresh.append(row)
    if fresh:
        conn.execute(_INSERT_ROW, fresh)
    return len(fresh)


def due_entries(conn: Connection, limit: int = 100) -> list[Entry]:
    """What to do next: for each item, its earliest unfinished row (pending, or sent and
    uncertain), oldest items first. A later row of an item waits for the earlier one."""
    open_rows = conn.execute(
        select(ils_outbox).where(ils_outbox.c.status.in_(("pending", "sent")))
        .order_by(ils_outbox.c.transaction_at, ils_outbox.c.id).limit(limit * 4)).all()
    seen: set[str] = set()
    out: list[Entry] = []
    for row in open_rows:
        if row.item_id in seen:
            continue
        seen.add(row.item_id)
        out.append(_entry(row))
        if len(out) >= limit:
            break
    return out


def _set(conn: Connection, entry_id: int, now: datetime, **values: Any) -> None:
    conn.execute(update(ils_outbox).where(ils_outbox.c.id == entry_id).values(
        updated_at=now, **values))


def mark_sent(conn: Connection, entry_id: int, now: datetime) -> None:
    """Commit this before the request goes out: from here on the row is uncertain."""
    _set(conn, entry_id, now, status="sent", attempts=ils_outbox.c.attempts + 1)


def record_answer(conn: Connection, entry: Entry, answer: IlsAnswer, now: datetime) -> str:
    """The ILS answered: confirmed, or rejected with its message (and a staff exception)."""
    if answer.ok:
        _set(conn, entry.id, now, status="confirmed", resolved_by="answer",
             ils_message=answer.message[:300] or None)
        return "confirmed"
    _set(conn, entry.id, now, status="rejected", resolved_by="answer",
         ils_message=answer.message[:300] or None)
    _reject_to_staff(conn, entry, answer.message, now)
    return "rejected"


def record_lookup(conn: Connection, entry: Entry, view: IlsItemView, now: datetime) -> str:
    """An uncertain row after asking the ILS: confirmed if the effect shows, else pending."""
    if effect_visible(entry, view):
        _set(conn, entry.id, now, status="confirmed", resolved_by="item_information")
        return "confirmed"
    _set(conn, entry.id, now, status="pending")
    return "pending"


def _reject_to_staff(conn: Connection, entry: Entry, message: str, now: datetime) -> None:
    from .engine import _open_exception

    _open_exception(conn, "ils_rejected", item_id=entry.item_id, cabinet_id=None,
                    reader_id=entry.reader_id, now=now, dedupe_key=f"ils:{entry.id}",
                    evidence={"outbox_id": entry.id, "kind": entry.kind,
                              "transaction_at": entry.transaction_at.isoformat(),
                              "due": entry.due, "ils_message": message})


def counts(conn: Connection) -> dict[str, int]:
    """Rows per status (the fleet view and the demo's reconciliation line)."""
    return {str(r.status): int(r.n) for r in conn.execute(
        select(ils_outbox.c.status, func.count().label("n")).group_by(ils_outbox.c.status))}


# ----------------------------------------------------------------------------- the loop


@dataclass
class Forwarder:
    """Drains the outbox into an :class:`IlsPort`, one durable step at a time.

    Each step is its own transaction, so a crash anywhere leaves the outbox in a state the
    next run continues from (an uncertain ``sent`` row is looked up, never resent blind).
    """

    engine: Engine
    ils: IlsPort
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    batch: int = 100

    def run_once(self) -> dict[str, int]:
        """One pass over what is due; counts of what happened (stops early when the ILS
        cannot be reached)."""
        done = {"confirmed": 0, "rejected": 0, "looked_up": 0, "lost": 0, "unreachable": 0}
        with self.engine.connect() as conn:
            todo = due_entries(conn, self.batch)
        for entry in todo:
            try:
                self._step(entry, done)
            except IlsUnreachable:
                done["unreachable"] += 1
                break
        return done

    def _step(self, entry: Entry, done: dict[str, int]) -> None:
        if entry.status == "sent":  # uncertain: ask before anything else
            view = self.ils.lookup(entry)
            done["looked_up"] += 1
            with write_tx(self.engine) as conn:
                if record_lookup(conn, entry, view, self.clock()) == "confirmed":
                    done["confirmed"] += 1
                    return
            entry = _replace_status(entry, "pending")
        with write_tx(self.engine) as conn:
            mark_sent(conn, entry.id, self.clock())
        try:
            answer = self.ils.send(entry)
        except LostAnswer:
            done["lost"] += 1  # stays "sent": the next pass looks it up
            return
        except IlsUnreachable:
            with write_tx(self.engine) as conn:  # nothing went out: plainly pending again
                _set(conn, entry.id, self.clock(), status="pending")
            raise
        with write_tx(self.engine) as conn:
            done[record_answer(conn, entry, answer, self.clock())] += 1

    def drain(self, max_passes: int = 1000) -> dict[str, int]:
        """Passes until nothing is due (or ``max_passes``); the summed counts."""
        total: dict[str, int] = {}
        for _ in range(max_passes):
            with self.engine.connect() as conn:
                if not due_entries(conn, 1):
                    break
            for key, value in self.run_once().items():
                total[key] = total.get(key, 0) + value
        return total


def _replace_status(entry: Entry, status: str) -> Entry:
    from dataclasses import replace

    return replace(entry, status=status)


def pending_of(conn: Connection, item_ids: Sequence[str]) -> list[Entry]:
    """The unfinished rows of some items (for staff screens and tests)."""
    rows = conn.execute(select(ils_outbox).where(
        ils_outbox.c.item_id.in_(list(item_ids)),
        ils_outbox.c.status.in_(("pending", "sent"))).order_by(ils_outbox.c.id)).all()
    return [_entry(r) for r in rows]
