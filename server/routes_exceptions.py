"""The staff exceptions queue: what the circulation engine could not decide alone.

Why a queue with offered actions rather than free editing of items: every conflict the
engine meets (a book in two hands, a loan past a hold, an overdraft) has a small set of
sensible outcomes, and a resolution must be explainable later — so staff pick one of the
actions the exception offers, with a note, and :func:`server.engine.resolve_exception`
applies its effect and writes the audit row in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select

from . import engine
from .db import write_tx
from .schema import exceptions
from .security import ApiError, Staff, request_engine, request_now, require

__all__ = ["exception_rows", "router"]

router = APIRouter()


class ResolveBody(BaseModel):
    """POST /api/exceptions/{id}/resolve: one of the offered actions, and why."""

    model_config = ConfigDict(extra="forbid")
    action: str = Field(min_length=1, max_length=48)
    note: str = Field(default="", max_length=1000)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "item_id": row.item_id, "cabinet_id": row.cabinet_id,
            "reader_id": row.reader_id, "evidence": row.evidence, "actions": row.actions,
            "status": row.status, "resolution": row.resolution, "resolved_by": row.resolved_by,
            "created_at": _iso(row.created_at), "resolved_at": _iso(row.resolved_at)}


@router.get("/api/exceptions")
def list_exceptions(request: Request,
                    member: Annotated[Staff, Depends(require("circulation.read"))],
                    status: Literal["open", "resolved", "all"] = "open",
                    limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    """The queue, oldest first (the one waiting longest is handled first)."""
    with request_engine(request).connect() as conn:
        return {"exceptions": exception_rows(conn, status, limit)}


def exception_rows(conn: Connection, status: str = "open", limit: int = 200) -> list[dict[str, Any]]:
    """The queue as the API shows it, oldest first; ``status`` open, resolved or all."""
    stmt = select(exceptions).order_by(exceptions.c.id).limit(limit)
    if status != "all":
        stmt = stmt.where(exceptions.c.status == status)
    return [_json(row) for row in conn.execute(stmt).all()]


@router.post("/api/exceptions/{exception_id}/resolve")
def resolve(body: ResolveBody, request: Request,
            exception_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
            member: Annotated[Staff, Depends(require("exceptions.resolve"))]) -> dict[str, Any]:
    """Resolve an open exception with one of its offered actions (audited)."""
    now = request_now(request)
    try:
        with write_tx(request_engine(request)) as conn:
            return engine.resolve_exception(conn, exception_id, body.action, body.note,
                                            member.id, member.username, now)
    except engine.ResolutionRefused as exc:
        raise ApiError(exc.status, exc.code, exc.detail) from None
