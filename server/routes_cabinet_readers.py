"""The reader's services asked for by a cabinet's touchscreen: loans, renew, 荐购.

``POST /v1/readers/loans`` {cabinet_id, reader_id} → the reader's loans;
``POST /v1/readers/renew`` {cabinet_id, reader_id, item_id} → the new due date, or 409 with
the reason (code and text); ``POST /v1/readers/recommend`` {cabinet_id, reader_id, isbn |
title, note} → the new 荐购 (201 on the phone's route, 200 here like every ``/v1`` reply).

Why a cabinet may act for a reader: the reader identified at the cabinet (card, QR) moments
before, and the cabinet — a registered device with its own Ed25519 key, which already
records that reader's loans — vouches for the reader of its live session. The requests are
signed and checked exactly like ``/v1/sync`` and ``/v1/readers/resolve``
(:func:`server.security.cabinet_request`, body parsed by ``routes_sync``'s rules: 400 for
another protocol version, 422 for a bad message), and a cabinet may only speak for itself
(403 when the body names another cabinet). The rules and the audit are those of the phone's
routes (one implementation in :mod:`server.routes_services`): the audit row's actor is the
reader, its detail names the cabinet that vouched.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import StringConstraints
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.concurrency import run_in_threadpool

from .db import write_tx
from .routes_services import (
    CabinetId,
    ItemId,
    RecommendationBody,
    _Body,
    create_recommendation,
    reader_loans,
    renew_loan,
)
from .routes_sync import SignedCabinet, _busy, _parse
from .schema import readers
from .security import ApiError, request_engine, request_now

__all__ = ["LoansQuery", "RecommendQuery", "RenewQuery", "router"]

router = APIRouter()

ReaderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]


class LoansQuery(_Body):
    version: int = 1
    cabinet_id: CabinetId
    reader_id: ReaderId


class RenewQuery(LoansQuery):
    item_id: ItemId


class RecommendQuery(RecommendationBody):
    version: int = 1
    cabinet_id: CabinetId
    reader_id: ReaderId


def _known(conn: Connection, reader_id: str) -> None:
    if conn.execute(select(readers.c.id).where(readers.c.id == reader_id)).first() is None:
        raise ApiError(404, "unknown_reader", "no reader with this id on this server")


def _own(cabinet: Any, query: LoansQuery | RecommendQuery) -> None:
    if query.cabinet_id != cabinet.id:
        raise ApiError(403, "cabinet_mismatch", "a cabinet may only speak for its own reader")


def _loans(request: Request, query: LoansQuery) -> dict[str, Any]:
    with request_engine(request).connect() as conn:
        _known(conn, query.reader_id)
        return reader_loans(conn, query.reader_id, request_now(request).date())


def _renew(request: Request, query: RenewQuery) -> dict[str, Any]:
    try:
        with write_tx(request_engine(request)) as conn:
            _known(conn, query.reader_id)
            return renew_loan(conn, reader_id=query.reader_id, item_id=query.item_id,
                              now=request_now(request), via={"cabinet_id": query.cabinet_id})
    except (IntegrityError, OperationalError) as exc:
        raise _busy(exc) from None


def _recommend(request: Request, query: RecommendQuery) -> dict[str, Any]:
    try:
        with write_tx(request_engine(request)) as conn:
            _known(conn, query.reader_id)
            return create_recommendation(conn, reader_id=query.reader_id, body=query,
                                         now=request_now(request),
                                         via={"cabinet_id": query.cabinet_id})
    except (IntegrityError, OperationalError) as exc:
        raise _busy(exc) from None


@router.post("/v1/readers/loans")
async def loans(request: Request, cabinet: SignedCabinet) -> JSONResponse:
    """The loans of the reader identified at the signing cabinet (404 unknown reader)."""
    query = _parse(await request.body(), LoansQuery)
    _own(cabinet, query)
    return JSONResponse(await run_in_threadpool(_loans, request, query))


@router.post("/v1/readers/renew")
async def renew(request: Request, cabinet: SignedCabinet) -> JSONResponse:
    """Renew one of the reader's loans: the phone's rules (404 not their loan, 409
    ``held_for_another`` / ``overdue`` / ``renewal_limit`` with the reason in words)."""
    query = _parse(await request.body(), RenewQuery)
    _own(cabinet, query)
    return JSONResponse(await run_in_threadpool(_renew, request, query))


@router.post("/v1/readers/recommend")
async def recommend(request: Request, cabinet: SignedCabinet) -> JSONResponse:
    """A 荐购 for the reader (422 without a valid ISBN or a title)."""
    query = _parse(await request.body(), RecommendQuery)
    _own(cabinet, query)
    return JSONResponse(await run_in_threadpool(_recommend, request, query))
