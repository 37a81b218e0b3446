"""Reader services and their staff side: loans and renewals, holds, 荐购, ratings, notices.

Readers call with their phone's token (:func:`server.routes_readers.current_reader`); staff
with their session and a permission (``circulation.read`` to look, ``collection.manage`` to
act). Every write is audited in its own transaction — readers' actions under the actor
``reader:<id>`` (an id, never a name or a card).

Renewals are counted in the audit table (action ``loan.renew``, keyed by the loan's time)
rather than in a column: a renewal is exactly the kind of act the audit exists for, and the
count per loan falls out of it without a schema change. Caveat: the engine re-derives an
item's state from its events when a late event arrives, which resets ``items.due`` to the
loan's own due date; a renewal made before such a late arrival must then be made again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Connection, select, update

from . import feedback, holds, ils_outbox, notify
from .db import write_tx
from .routes_readers import CurrentReader
from .schema import audit, items
from .security import ApiError, Staff, record_audit, request_engine, request_now, require

__all__ = ["MAX_RENEWALS", "OVERDUE_GRACE_DAYS", "RENEW_DAYS", "RecommendationBody",
           "create_recommendation", "reader_loans", "renew_loan", "router"]

router = APIRouter()

#: A renewal moves the due date this many days past the later of the due date and today.
RENEW_DAYS = 30
#: Renewals per loan.
MAX_RENEWALS = 2
#: A loan overdue by more than this many days cannot be renewed (bring it back first).
OVERDUE_GRACE_DAYS = 3

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable(value: str) -> str:
    # PostgreSQL refuses NUL in text: without this a stray byte would be a 500, not a 422
    if _CONTROL.search(value.replace("\n", "")):
        raise ValueError("must not contain control characters")
    return value


ItemId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
CabinetId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
Status = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,16}$")]
Text = Annotated[str, StringConstraints(max_length=500), AfterValidator(_printable)]
#: A row id: bounded so that a huge number is a 422, not an integer overflow in the database.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HoldBody(_Body):
    item_id: ItemId
    pickup_cabinet_id: CabinetId


class RecommendationBody(_Body):
    isbn: Annotated[str, StringConstraints(max_length=32), AfterValidator(_printable)] | None = None
    title: Annotated[str, StringConstraints(max_length=300), AfterValidator(_printable)] = ""
    note: Text = ""


class RatingBody(_Body):
    score: int = Field(ge=1, le=5, strict=True)
    comment: Text = ""
    cabinet_id: CabinetId | None = None
    session: Annotated[str, StringConstraints(max_length=64), AfterValidator(_printable)] | None = None


class StatusBody(_Body):
    status: Status
    note: Text = ""
    item_id: ItemId | None = None


def _actor(reader_id: str) -> str:
    return f"reader:{reader_id}"


# ----------------------------------------------------------------------------- loans


def _due(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text[:10]) if text else None
    except ValueError:
        return None


def _renewals(conn: Connection, item_id: str, loan_at: datetime | None) -> int:
    """Renewals of the item's current loan (audit rows of this loan's time)."""
    key = loan_at.isoformat() if loan_at is not None else ""
    rows = conn.execute(select(audit.c.detail).where(audit.c.action == "loan.renew",
                                                     audit.c.target == f"item:{item_id}")).all()
    return sum(1 for r in rows if (r.detail or {}).get("loan_at", "") == key)


def _loan_json(conn: Connection, row: Any, today: date) -> dict[str, Any]:
    due = _due(row.due)
    return {"item_id": row.id, "title": row.title, "author": row.author, "due": row.due,
            "overdue": due is not None and due < today,
            "renewals": _renewals(conn, row.id, row.last_loan_at),
            "wanted_by_others": holds.wanted_by_others(conn, row.id, row.borrower_id)}


def reader_loans(conn: Connection, reader_id: str, today: date) -> dict[str, Any]:
    """The reader's loans (due first) and the renewals allowed: the phone's and the
    cabinet's answer (server.routes_cabinet_readers)."""
    rows = conn.execute(select(items).where(items.c.borrower_id == reader_id,
                                            items.c.status == "loaned")
                        .order_by(items.c.due, items.c.id)).all()
    return {"loans": [_loan_json(conn, r, today) for r in rows], "max_renewals": MAX_RENEWALS}


@router.get("/api/readers/me/loans")
def my_loans(request: Request, reader_id: CurrentReader) -> dict[str, Any]:
    """The reader's loans with due dates, overdue flags and renewals used."""
    today = request_now(request).date()
    with request_engine(request).connect() as conn:
        return reader_loans(conn, reader_id, today)


def _renew_refusal(conn: Connection, row: Any, reader_id: str, today: date) -> ApiError | None:
    if holds.wanted_by_others(conn, row.id, reader_id):
        return ApiError(409, "held_for_another", "another reader has placed a hold on this "
                        "book, so it cannot be renewed; please return it by its due date")
    due = _due(row.due)
    if due is not None and (today - due).days > OVERDUE_GRACE_DAYS:
        return ApiError(409, "overdue", f"this loan is {(today - due).days} days overdue "
                        f"(renewal allowed up to {OVERDUE_GRACE_DAYS}); please return it")
    if _renewals(conn, row.id, row.last_loan_at) >= MAX_RENEWALS:
        return ApiError(409, "renewal_limit", f"this loan was renewed {MAX_RENEWALS} times "
                        "already, the most allowed")
    return None


def renew_loan(conn: Connection, *, reader_id: str, item_id: str, now: datetime,
               via: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Renew the reader's loan of ``item_id`` in the caller's write transaction, audited
    under the reader (``via``: extra audit detail, e.g. the cabinet that vouched for them).
    ApiError 404 not the reader's loan, 409 with the reason."""
    today = now.date()
    row = conn.execute(select(items).where(items.c.id == item_id).with_for_update()).first()
    if row is None or row.status != "loaned" or row.borrower_id != reader_id:
        raise ApiError(404, "not_your_loan", f"you have no loan of item {item_id!r}")
    refusal = _renew_refusal(conn, row, reader_id, today)
    if refusal is not None:
        raise refusal
    base = max(_due(row.due) or today, today)
    new_due = (base + timedelta(days=RENEW_DAYS)).isoformat()
    conn.execute(update(items).where(items.c.id == item_id).values(due=new_due))
    loan_at = row.last_loan_at.isoformat() if row.last_loan_at is not None else ""
    record_audit(conn, at=now, actor=_actor(reader_id), action="loan.renew",
                 target=f"item:{item_id}",
                 detail={"loan_at": loan_at, "from": row.due, "due": new_due, **(via or {})})
    count = _renewals(conn, item_id, row.last_loan_at)
    # the ILS gets the renewal too, exactly once (server.ils_outbox)
    ils_outbox.enqueue(conn, kind="renew", source=f"renew:{item_id}:{loan_at}:{count}",
                       item_id=item_id, reader_id=reader_id, cabinet_id=None,
                       transaction_at=now, due=new_due, offline=False, now=now,
                       previous_due=row.due)
    return {"item_id": item_id, "due": new_due, "renewals": count,
            "max_renewals": MAX_RENEWALS}


@router.post("/api/readers/me/loans/{item_id}/renew")
def renew(item_id: ItemId, request: Request, reader_id: CurrentReader) -> dict[str, Any]:
    """Renew a loan by :data:`RENEW_DAYS`; 404 not the reader's loan, 409 with the reason
    (held for someone else, overdue beyond the grace, renewed the most times)."""
    with write_tx(request_engine(request)) as conn:
        return renew_loan(conn, reader_id=reader_id, item_id=item_id, now=request_now(request))


# ----------------------------------------------------------------------------- holds


def _refused(exc: holds.HoldRefused | feedback.FeedbackRefused) -> ApiError:
    return ApiError(exc.status, exc.code, exc.detail)


@router.get("/api/readers/me/holds")
def my_holds(request: Request, reader_id: CurrentReader) -> dict[str, Any]:
    """The reader's holds, newest first, with their status and pickup deadline."""
    with request_engine(request).connect() as conn:
        return {"holds": holds.list_holds(conn, reader_id=reader_id)}


@router.post("/api/readers/me/holds")
def place_hold(body: HoldBody, request: Request, reader_id: CurrentReader) -> JSONResponse:
    """Place a hold (201); refusals as :func:`server.holds.place_hold` (409 when the pickup
    cabinet has no room for held books, with that said)."""
    now = request_now(request)
    with write_tx(request_engine(request)) as conn:
        try:
            hold = holds.place_hold(conn, reader_id=reader_id, item_id=body.item_id,
                                    pickup_cabinet_id=body.pickup_cabinet_id, now=now)
        except holds.HoldRefused as exc:
            raise _refused(exc) from None
        record_audit(conn, at=now, actor=_actor(reader_id), action="hold.place",
                     target=f"hold:{hold['id']}",
                     detail={"item_id": body.item_id, "cabinet_id": body.pickup_cabinet_id,
                             "status": hold["status"]})
    return JSONResponse(status_code=201, content=hold)


@router.delete("/api/readers/me/holds/{hold_id}")
def cancel_hold(hold_id: RowId, request: Request, reader_id: CurrentReader) -> dict[str, Any]:
    """Cancel one of the reader's holds; its restock tasks go, the next reader moves up."""
    now = request_now(request)
    with write_tx(request_engine(request)) as conn:
        try:
            hold = holds.cancel_hold(conn, hold_id=hold_id, reader_id=reader_id, now=now)
        except holds.HoldRefused as exc:
            raise _refused(exc) from None
        record_audit(conn, at=now, actor=_actor(reader_id), action="hold.cancel",
                     target=f"hold:{hold_id}", detail={"item_id": hold["item_id"]})
    return hold


@router.get("/api/holds")
def list_holds(request: Request, _member: Annotated[Staff, Depends(require("circulation.read"))],
               status: Annotated[Status | None, Query()] = None,
               cabinet_id: Annotated[CabinetId | None, Query()] = None) -> dict[str, Any]:
    """All holds (filter by ``status`` and pickup ``cabinet_id``), newest first."""
    with request_engine(request).connect() as conn:
        return {"holds": holds.list_holds(conn, status=status, cabinet_id=cabinet_id)}


@router.post("/api/holds/expire")
def expire_holds(request: Request,
                 member: Annotated[Staff, Depends(require("collection.manage"))]
                 ) -> dict[str, Any]:
    """Run the expiry now: ready holds past their deadline → expired, copies to the next."""
    now = request_now(request)
    with write_tx(request_engine(request)) as conn:
        expired = holds.expire_holds(conn, now)
        record_audit(conn, at=now, actor=member.username, action="holds.expire",
                     detail={"expired": expired})
    return {"expired": expired}


# ----------------------------------------------------------------------------- 荐购, ratings


@router.get("/api/readers/me/recommendations")
def my_recommendations(request: Request, reader_id: CurrentReader) -> dict[str, Any]:
    """The reader's 荐购 with each status step; a shelved one names its copy."""
    with request_engine(request).connect() as conn:
        return {"recommendations": feedback.list_recommendations(conn, reader_id=reader_id)}


def create_recommendation(conn: Connection, *, reader_id: str, body: RecommendationBody,
                          now: datetime, via: Mapping[str, Any] | None = None
                          ) -> dict[str, Any]:
    """A new 荐购 in the caller's write transaction, audited under the reader (``via``:
    extra audit detail); ApiError 422 without a valid ISBN or a title."""
    try:
        rec = feedback.create_recommendation(conn, reader_id=reader_id, isbn=body.isbn,
                                             title=body.title, note=body.note, now=now)
    except feedback.FeedbackRefused as exc:
        raise _refused(exc) from None
    record_audit(conn, at=now, actor=_actor(reader_id), action="recommendation.create",
                 target=f"recommendation:{rec['id']}", detail={"isbn": rec["isbn"], **(via or {})})
    return rec


@router.post("/api/readers/me/recommendations")
def recommend(body: RecommendationBody, request: Request,
              reader_id: CurrentReader) -> JSONResponse:
    """A new 荐购 (201): a valid ISBN-13/10 or a title, else 422."""
    with write_tx(request_engine(request)) as conn:
        rec = create_recommendation(conn, reader_id=reader_id, body=body,
                                    now=request_now(request))
    return JSONResponse(status_code=201, content=rec)


@router.get("/api/recommendations")
def list_recommendations(
        request: Request, _member: Annotated[Staff, Depends(require("circulation.read"))],
        status: Annotated[Status | None, Query()] = None) -> dict[str, Any]:
    """Every reader's 荐购 (filter by ``status``), newest first."""
    with request_engine(request).connect() as conn:
        return {"recommendations": feedback.list_recommendations(conn, status=status)}


@router.post("/api/recommendations/{rec_id}/status")
def recommendation_status(rec_id: RowId, body: StatusBody, request: Request,
                          member: Annotated[Staff, Depends(require("collection.manage"))]
                          ) -> dict[str, Any]:
    """Move a 荐购 one step (need→review→ordered→shelved, or rejected); 409 for a step its
    status does not allow; audited."""
    now = request_now(request)
    with write_tx(request_engine(request)) as conn:
        try:
            rec = feedback.set_status(conn, rec_id=rec_id, status=body.status, note=body.note,
                                      item_id=body.item_id, by=member.username, now=now)
        except feedback.FeedbackRefused as exc:
            raise _refused(exc) from None
        record_audit(conn, at=now, actor=member.username, action="recommendation.status",
                     target=f"recommendation:{rec_id}",
                     detail={"status": body.status, "item_id": body.item_id})
    return rec


@router.post("/api/readers/me/ratings")
def rate(body: RatingBody, request: Request, reader_id: CurrentReader) -> JSONResponse:
    """A satisfaction rating (1..5) from the reader's phone (201)."""
    now = request_now(request)
    with write_tx(request_engine(request)) as conn:
        feedback.record_rating(conn, score=body.score, comment=body.comment, now=now,
                               reader_id=reader_id, cabinet_id=body.cabinet_id,
                               session=body.session)
        record_audit(conn, at=now, actor=_actor(reader_id), action="rating.create",
                     detail={"score": body.score, "cabinet_id": body.cabinet_id})
    return JSONResponse(status_code=201, content={"score": body.score})


# ----------------------------------------------------------------------------- notices


def _sender(request: Request) -> notify.Sender:
    """``app.state.notify_sender`` if set (tests, embedding), else from the environment."""
    sender = getattr(request.app.state, "notify_sender", None)
    if sender is not None:
        return sender  # type: ignore[no-any-return]
    try:
        return notify.sender_from_env()
    except ValueError as exc:
        raise ApiError(503, "sender_not_configured", str(exc)) from None


@router.post("/api/notifications/send")
def send_notifications(request: Request,
                       member: Annotated[Staff, Depends(require("collection.manage"))],
                       days: Annotated[int, Query(ge=0, le=30)] = 2) -> dict[str, Any]:
    """Queue due-soon notices (loans due within ``days``), then drain the outbox through the
    configured sender. Sending happens inside the write transaction: simple, and the batch
    is bounded (notify.SEND_BATCH); a slow sender holds other writers up only that long."""
    now = request_now(request)
    sender = _sender(request)
    with write_tx(request_engine(request)) as conn:
        queued = notify.queue_due_soon(conn, now, days=days)
        result = notify.send_pending(conn, sender, now)
        record_audit(conn, at=now, actor=member.username, action="notifications.send",
                     detail={"queued_due_soon": queued, **result, "sender": sender.name})
    return {"queued_due_soon": queued, **result, "sender": sender.name}
