"""Readers' feedback: purchase recommendations (荐购) and satisfaction ratings (满意率).

荐购: a reader names a book (an ISBN, checked with its check digit so a typo is caught at
once, or a title); staff move it need → review → ordered → shelved, or reject it at any
step before shelving. Every step is kept in ``history`` (shown to the reader, so they see
what became of their wish) and audited. A shelved recommendation names the new copy
(``item_id``), which the reader can then hold.

Ratings come from a cabinet's ``rating`` event (stored exactly once by the event's uuid,
whatever re-sending or re-applying happens) or from the reader's phone. A score outside
1..5 from a cabinet is ignored and logged: refusing it would stall nothing, but storing it
would skew 满意率.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from syncproto.messages import CabinetEvent

from .schema import items, ratings, recommendations

__all__ = [
    "STATUSES",
    "TRANSITIONS",
    "FeedbackRefused",
    "create_recommendation",
    "isbn_problem",
    "list_recommendations",
    "normalize_isbn",
    "rating_from_event",
    "record_rating",
    "set_status",
]

_log = logging.getLogger(__name__)

STATUSES = ("need", "review", "ordered", "shelved", "rejected")
#: Allowed status steps; shelved and rejected are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "need": frozenset({"review", "rejected"}),
    "review": frozenset({"ordered", "rejected"}),
    "ordered": frozenset({"shelved", "rejected"}),
    "shelved": frozenset(),
    "rejected": frozenset(),
}


class FeedbackRefused(Exception):
    """Refused input or step: ``status`` is the HTTP answer (404, 409, 422)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


# ----------------------------------------------------------------------------- ISBN


def normalize_isbn(text: str) -> str:
    """Digits (and a final X) only: readers type ISBNs with hyphens and spaces."""
    return "".join(ch for ch in text.upper() if ch.isdigit() or ch == "X")


def isbn_problem(text: str) -> str | None:
    """Why ``text`` is not a valid ISBN-13 or ISBN-10 (None: it is)."""
    if any(not (ch.isdigit() or ch in "-xX ") for ch in text):
        return "an ISBN has only digits, hyphens and a final X"
    digits = normalize_isbn(text)
    if len(digits) == 13:
        if "X" in digits:
            return "an ISBN-13 has only digits"
        total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits[:12]))
        if (10 - total % 10) % 10 != int(digits[12]):
            return "the ISBN-13 check digit does not match (a typo?)"
        return None
    if len(digits) == 10:
        if "X" in digits[:9]:
            return "only the last character of an ISBN-10 may be X"
        total = sum(int(d) * (10 - i) for i, d in enumerate(digits[:9]))
        check = (11 - total % 11) % 11
        if ("X" if check == 10 else str(check)) != digits[9]:
            return "the ISBN-10 check digit does not match (a typo?)"
        return None
    return f"an ISBN has 10 or 13 digits, not {len(digits)}"


# ----------------------------------------------------------------------------- 荐购


def _rec_json(conn: Connection, row: Row[Any]) -> dict[str, Any]:
    out = {"id": row.id, "isbn": row.isbn, "title": row.title, "note": row.note,
           "status": row.status, "item_id": row.item_id, "history": list(row.history or []),
           "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}
    if row.status == "shelved" and row.item_id:
        item = conn.execute(select(items.c.status, items.c.location_cabinet_id)
                            .where(items.c.id == row.item_id)).first()
        if item is not None:
            out["item"] = {"item_id": row.item_id, "status": item.status,
                           "cabinet_id": item.location_cabinet_id}
    return out


def create_recommendation(conn: Connection, *, reader_id: str, isbn: str | None, title: str,
                          note: str, now: datetime) -> dict[str, Any]:
    """A reader's 荐购 in status ``need``; 422 without a valid ISBN or a title."""
    title = title.strip()
    clean: str | None = None
    if isbn and isbn.strip():
        problem = isbn_problem(isbn.strip())
        if problem:
            raise FeedbackRefused(422, "invalid_isbn", problem)
        clean = normalize_isbn(isbn)
    if clean is None and not title:
        raise FeedbackRefused(422, "invalid_request", "give an ISBN or a title")
    history = [{"status": "need", "at": now.isoformat(), "by": "reader", "note": note}]
    rec_id = conn.execute(insert(recommendations).values(
        reader_id=reader_id, isbn=clean, title=title, note=note, status="need",
        history=history, created_at=now, updated_at=now)
        .returning(recommendations.c.id)).scalar_one()
    row = conn.execute(select(recommendations).where(recommendations.c.id == rec_id)).one()
    return _rec_json(conn, row)


def list_recommendations(conn: Connection, *, reader_id: str | None = None,
                         status: str | None = None) -> list[dict[str, Any]]:
    """Recommendations, newest first (one reader's, or all for staff)."""
    query = select(recommendations)
    if reader_id is not None:
        query = query.where(recommendations.c.reader_id == reader_id)
    if status is not None:
        query = query.where(recommendations.c.status == status)
    rows = conn.execute(query.order_by(recommendations.c.id.desc())).all()
    return [_rec_json(conn, r) | ({} if reader_id else {"reader_id": r.reader_id})
            for r in rows]


def set_status(conn: Connection, *, rec_id: int, status: str, note: str, item_id: str | None,
               by: str, now: datetime) -> dict[str, Any]:
    """One step of a recommendation (404 unknown, 409 not allowed from its status, 422
    unknown status or item). The caller audits it."""
    if status not in STATUSES:
        raise FeedbackRefused(422, "invalid_status", f"status must be one of {STATUSES}")
    row = conn.execute(select(recommendations).where(recommendations.c.id == rec_id)
                       .with_for_update()).first()
    if row is None:
        raise FeedbackRefused(404, "unknown_recommendation", f"no recommendation {rec_id}")
    if status not in TRANSITIONS[row.status]:
        allowed = sorted(TRANSITIONS[row.status]) or "nothing (it is final)"
        raise FeedbackRefused(409, "illegal_transition", f"recommendation {rec_id} is "
                              f"{row.status!r}; it can move to {allowed}, not {status!r}")
    if item_id is not None:
        if status != "shelved":
            raise FeedbackRefused(422, "invalid_request", "item_id is given only when shelved")
        if conn.execute(select(items.c.id).where(items.c.id == item_id)).first() is None:
            raise FeedbackRefused(422, "unknown_item", f"no item {item_id!r}")
    history = [*list(row.history or []),
               {"status": status, "at": now.isoformat(), "by": by, "note": note}]
    conn.execute(update(recommendations).where(recommendations.c.id == rec_id).values(
        status=status, history=history, updated_at=now,
        item_id=item_id if item_id is not None else row.item_id))
    return _rec_json(conn, conn.execute(select(recommendations)
                                        .where(recommendations.c.id == rec_id)).one())


# ----------------------------------------------------------------------------- ratings


def record_rating(conn: Connection, *, score: int, comment: str, now: datetime,
                  reader_id: str | None = None, cabinet_id: str | None = None,
                  session: str | None = None, event_uuid: str | None = None) -> bool:
    """Store one rating; False when ``event_uuid`` was stored already (exactly once).
    ValueError for a score outside 1..5."""
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise ValueError("a score is a whole number from 1 to 5")
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    done = conn.execute(dialect.insert(ratings).values(
        event_uuid=event_uuid, reader_id=reader_id, cabinet_id=cabinet_id, session=session,
        score=score, comment=comment[:500], at=now).on_conflict_do_nothing().returning(ratings.c.id))
    # RETURNING, not rowcount: psycopg's rowcount for a skipped row is not reliably 0
    return done.first() is not None


def _clean(value: Any, limit: int) -> str | None:
    """Text from a cabinet payload fit for a column: control characters (PostgreSQL refuses
    NUL) dropped, cut to the column's length — a bad field must not fail the whole batch."""
    if not isinstance(value, str):
        return None
    return "".join(ch for ch in value if ch >= " " and not "\x7f" <= ch <= "\x9f")[:limit]


def rating_from_event(conn: Connection, cabinet_id: str, event: CabinetEvent,
                      now: datetime) -> None:
    """A cabinet's ``rating`` event → one rating row (a bad score is logged and dropped)."""
    payload = event.payload
    try:
        record_rating(conn, score=payload.get("score"),  # type: ignore[arg-type]
                      comment=_clean(payload.get("comment"), 500) or "",
                      now=event.at if event.at.tzinfo is not None else now,
                      reader_id=_clean(payload.get("reader_id"), 64) or None,
                      cabinet_id=cabinet_id, session=_clean(payload.get("session"), 64) or None,
                      event_uuid=str(event.uuid))
    except ValueError:
        _log.warning("cabinet %s: rating event %s with score %r ignored", cabinet_id,
                     event.uuid, payload.get("score"))
