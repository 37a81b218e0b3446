"""The staff view of forwarding to the ILS: ``GET /api/ils/outbox`` (``circulation.read``).

Why: exactly once is only believable when it can be checked. Staff (and the demo) see how
many results are pending, sent and uncertain, confirmed or rejected, and the rows
themselves: kind, item, reader *id* (never a name), when it happened, attempts, how the row
was resolved (``answer`` or ``item_information``) and the ILS's own screen message. Read-only,
so nothing to audit. Whether forwarding is on comes from the server's settings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from . import ils_outbox
from .schema import ils_outbox as outbox
from .security import Staff, request_engine, request_settings, require

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
