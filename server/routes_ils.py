"""The staff view of forwarding to the ILS: ``GET /api/ils/outbox`` (``circulation.read``).

Why: exactly once is only believable when it can be checked. Staff (and the demo) see how
many results are pending, sent and uncertain, confirmed or rejected, and the rows
themselves: kind, item, reader *id* (never a name), when it happened, attempts, how the row
was resolved (``answer`` or ``item_information``) and the ILS's own screen message. Read-only,
so nothing to audit. Whether forwarding is on comes from the server's settings.

Online lookups (``circulation.read``): ``GET /api/ils/patrons/{patron_id}`` (patron
validation) and ``GET /api/ils/items/{item_id}`` (item details), answered through the
:class:`server.ils_lookup.IlsLookup` on ``app.state.ils_lookup`` (created on first use from the
settings) with its freshness rule: ``source``/``stale``/``age_s`` say how old the answer is.
503 ``ils_unavailable`` when the ILS cannot answer and nothing recent enough is cached; 409
``ils_not_configured`` when the server has no ILS. Read-only, nothing audited or logged with
names.
"""

from __future__ import annotations

from collections.abc import Callable

import dataclasses
import threading
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from . import ils_outbox
from .ils_lookup import IlsLookup, IlsLookupUnavailable
from .ils_service import client_config
from .schema import ils_outbox as outbox
from .security import ApiError, Staff, request_engine, request_settings, require
from .sip2_client import SIP2Client

__all__ = ["router"]

router = APIRouter()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _row(row: Any) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "item_id": row.item_id,
            "reader_id": row.reader_id, "cabinet_id": row.cabinet_id,
            "transaction_at": _iso(row.transaction_at), "due": row.due,
            "offline": bool(row.offline), "status": row.status, "attempts": row.attempts,
            "resolved_by": row.resolved_by, "ils_message": row.ils_message,
            "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at)}


@router.get("/api/ils/outbox")
def list_outbox(request: Request,
                member: Annotated[Staff, Depends(require("circulation.read"))],
                status: Literal["pending", "sent", "confirmed", "rejected"] | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Counts per status (all rows) and the newest ``limit`` rows (of ``status`` if given)."""
    settings = request_settings(request)
    stmt = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(outbox.c.status == status)
    with request_engine(request).connect() as conn:
        counts = ils_outbox.counts(conn)
        rows = conn.execute(stmt).all()
    return {"ils": {"configured": settings.ils_configured, "profile": settings.ils_profile},
            "counts": {s: counts.get(s, 0) for s in ("pending", "sent", "confirmed", "rejected")},
            "rows": [_row(r) for r in rows]}


# ----------------------------------------------------------------------------- lookups

_LOOKUP_LOCK = threading.Lock()
#: a lookup must not hold a staff page for long: one connect attempt, short timeouts.
LOOKUP_TIMEOUT_S = 3.0


def request_lookup(request: Request) -> IlsLookup:
    """The app's :class:`IlsLookup` (``app.state.ils_lookup``), created from the settings on
    first use; 409 ``ils_not_configured`` without an ILS."""
    state = request.app.state
    lookup: IlsLookup | None = getattr(state, "ils_lookup", None)
    if lookup is not None:
        return lookup
    settings = request_settings(request)
    if not settings.ils_configured:
        raise ApiError(409, "ils_not_configured",
                       "this server has no ILS connection (LENDBOX_ILS_HOST is not set), so "
                       "readers and items cannot be looked up in the library system")
    config = dataclasses.replace(client_config(settings), timeout_s=LOOKUP_TIMEOUT_S,
                                 connect_timeout_s=LOOKUP_TIMEOUT_S, reconnect_attempts=1)
    with _LOOKUP_LOCK:
        lookup = getattr(state, "ils_lookup", None)
        if lookup is None:
            lookup = IlsLookup(lambda: SIP2Client(config, size=2))
            state.ils_lookup = lookup
    return lookup


def _unavailable(exc: IlsLookupUnavailable, what: str) -> ApiError:
    return ApiError(503, "ils_unavailable",
                    f"the library system (ILS) could not be asked about this {what} "
                    f"({exc.reason}) and no answer recent enough is cached; try again later")


def _bad_id(exc: ValueError) -> ApiError:
    return ApiError(422, "invalid_id", str(exc))


def _answer(what: str, ask: Callable[[str], Any], key: str) -> dict[str, Any]:
    """One lookup as the API answers it: ``{what: {...}, fetched_at, age_s, source, stale}``,
    503 when the ILS cannot answer and nothing recent is cached, 422 for a bad id."""
    try:
        looked = ask(key)
    except IlsLookupUnavailable as exc:
        raise _unavailable(exc, what) from exc
    except ValueError as exc:
        raise _bad_id(exc) from exc
    return {what: looked.value.as_dict(), **looked.meta()}


@router.get("/api/ils/patrons/{patron_id}")
def lookup_patron(request: Request, patron_id: str,
                  member: Annotated[Staff, Depends(require("circulation.read"))]
                  ) -> dict[str, Any]:
    """Patron validation in the ILS: ``{"patron": {...}, fetched_at, age_s, source, stale}``."""
    return _answer("patron", request_lookup(request).patron, patron_id)


@router.get("/api/ils/items/{item_id}")
def lookup_item(request: Request, item_id: str,
                member: Annotated[Staff, Depends(require("circulation.read"))]
                ) -> dict[str, Any]:
    """Item details in the ILS: ``{"item": {...}, fetched_at, age_s, source, stale}``."""
    return _answer("item", request_lookup(request).item, item_id)
