"""The cabinet-facing endpoints: ``POST /v1/sync``, ``POST /v1/readers/resolve`` and the
unsigned ``GET /v1/health`` (is the server up and its database reachable: for a cabinet's
technician, a load balancer or a monitor; it names nothing of the fleet).

Why the body is parsed here rather than declared as a FastAPI body model: the protocol says
a version this server does not speak is a 400 (so a cabinet's operator sees "upgrade the
server", not "your message is malformed"), and a declared model would answer 422 for it
before any code of ours ran. The parsing order is therefore: JSON, then ``version``, then
the model; model errors become FastAPI's own ``RequestValidationError`` so that the app's
handler gives them the one error shape of the server.

Both endpoints sit behind :func:`server.security.cabinet_request` (signature, nonce, active
cabinet) and answer 403 when the message names another cabinet than the one that signed it:
a cabinet may only speak for itself. The database work runs in the thread pool, off the
event loop, one write transaction per request.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import Row, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from syncproto.messages import PROTOCOL_VERSION, ReaderQuery, ReaderReply, SyncBatch, SyncReply

from . import ingest
from .db import lock_cabinet, write_tx
from .security import ApiError, cabinet_request, request_engine, request_now

__all__ = ["router"]

_log = logging.getLogger(__name__)

router = APIRouter()

SignedCabinet = Annotated[Row[Any], Depends(cabinet_request)]
_M = TypeVar("_M", bound=BaseModel)


def _parse(body: bytes, model: type[_M]) -> _M:
    """The validated message; 422 for bad JSON or a bad message, 400 for another version."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(422, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ApiError(422, "invalid_request", "the body must be a JSON object")
    version = raw.get("version", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ApiError(400, "unsupported_version",
                       f"protocol version {version!r} is not supported; this server speaks "
                       f"{PROTOCOL_VERSION}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [{**err, "loc": ("body", *err.get("loc", ()))}
                  for err in exc.errors(include_url=False, include_input=False)]
        raise RequestValidationError(errors) from None


def _json(reply: BaseModel) -> Response:
    # An empty ``commands`` is left out: a kiosk older than that field refuses unknown keys.
    exclude = {"commands"} if isinstance(reply, SyncReply) and not reply.commands else None
    return Response(reply.model_dump_json(exclude=exclude), media_type="application/json")


def _busy(exc: Exception) -> ApiError:
    """A database hiccup (a lock timeout, a concurrent insert of the same uuid by another
    cabinet, a PostgreSQL restart): nothing was committed, and the cabinet's agent simply
    sends again — so a 503, not a 500."""
    # the SQLSTATE (40P01 deadlock, 55P03 lock timeout, 23505 duplicate…), never the message:
    # a constraint message quotes key values
    _log.warning("sync: transaction failed, cabinet will retry: %s (SQLSTATE %s)",
                 type(exc).__name__, getattr(getattr(exc, "orig", None), "sqlstate", None))
    return ApiError(503, "database_busy", "the server could not store this now; send it again")


def _apply(request: Request, cabinet_id: str, batch: SyncBatch) -> SyncReply:
    try:
        with write_tx(request_engine(request)) as conn:
            row = lock_cabinet(conn, cabinet_id)
            if row is None or not row.active:  # deactivated since the signature was checked
                raise ApiError(401, "inactive_cabinet",
                               f"cabinet {cabinet_id!r} is deactivated on this server")
            # The time is read under the lock: it stamps received_at and measures the clock.
            return ingest.apply_batch(conn, row, batch, request_now(request))
    except (IntegrityError, OperationalError) as exc:
        raise _busy(exc) from None


def _resolve(request: Request, cabinet: Row[Any], query: ReaderQuery) -> ReaderReply:
    # No lock_cabinet: a resolve writes only a new grant, and a reader waiting at the door
    # must not queue behind a large batch of the same cabinet.
    try:
        with write_tx(request_engine(request)) as conn:
            return ingest.resolve_reader(conn, cabinet, query, request_now(request))
    except (IntegrityError, OperationalError) as exc:
        raise _busy(exc) from None


def _database_answers(request: Request) -> bool:
    try:
        with request_engine(request).connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError as exc:
        _log.warning("health: the database does not answer: %s", type(exc).__name__)
        return False


@router.get("/v1/health")
async def health(request: Request) -> dict[str, Any]:
    """Up, with the protocol version and the server's clock; 503 when the database does not
    answer (then no sync can succeed either)."""
    if not await run_in_threadpool(_database_answers, request):
        raise ApiError(503, "database_unavailable", "the server's database does not answer")
    return {"status": "ok", "version": PROTOCOL_VERSION, "database": "ok",
            "server_time": request_now(request).isoformat()}


@router.post("/v1/sync")
async def sync(request: Request, cabinet: SignedCabinet) -> Response:
    """Take in a cabinet's batch (exactly once, in order) and answer with its deltas."""
    batch = _parse(await request.body(), SyncBatch)
    if batch.cabinet_id != cabinet.id or any(e.cabinet_id != cabinet.id for e in batch.events):
        raise ApiError(403, "cabinet_mismatch", "a cabinet may only send its own events")
    reply = await run_in_threadpool(_apply, request, cabinet.id, batch)
    return _json(reply)


@router.post("/v1/readers/resolve")
async def resolve(request: Request, cabinet: SignedCabinet) -> Response:
    """Who a card or reader id belongs to, with a fresh signed grant for an ``ok`` reader."""
    query = _parse(await request.body(), ReaderQuery)
    if query.cabinet_id != cabinet.id:
        raise ApiError(403, "cabinet_mismatch", "the query names another cabinet")
    if (query.card_hash is None) == (query.reader_id is None):
        raise ApiError(422, "invalid_request",
                       "exactly one of card_hash and reader_id is required")
    reply = await run_in_threadpool(_resolve, request, cabinet, query)
    return _json(reply)
