"""Fleet status and remote commands over HTTP (JSON; the console calls the functions directly).

``GET /api/fleet`` (``cabinets.read``: every staff role, the auditor included),
``POST /api/cabinets/{id}/commands`` (``cabinets.command``: operator and technician; audited
``command.queue``), ``GET /api/cabinets/{id}/commands`` (``cabinets.read``). The semantics
live in :mod:`server.fleet_status`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from . import fleet_status
from .db import write_tx
from .schema import cabinets
from .security import ApiError, Staff, request_engine, request_now, require

__all__ = ["router"]

router = APIRouter()

CabinetId = Annotated[str, Path(min_length=1, max_length=64)]


class CommandBody(BaseModel):
    """POST /api/cabinets/{id}/commands: ``kind`` and its arguments (see fleet_status)."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=32)
    args: dict[str, Any] = Field(default_factory=dict)


@router.get("/api/fleet")
def fleet(request: Request,
          member: Annotated[Staff, Depends(require("cabinets.read"))]) -> dict[str, Any]:
    """Every cabinet: online, last sync, devices, open alarms, fill, offline exposure."""
    now = request_now(request)
    with request_engine(request).connect() as conn:
        rows = fleet_status.fleet_overview(conn, now)
    return {"cabinets": rows, "online_window_s": fleet_status.ONLINE_WINDOW_S,
            "server_time": now.isoformat()}


@router.post("/api/cabinets/{cabinet_id}/commands", status_code=201)
def queue(body: CommandBody, request: Request, cabinet_id: CabinetId,
          member: Annotated[Staff, Depends(require("cabinets.command"))]) -> dict[str, Any]:
    """Queue a remote command; the cabinet gets it with its next sync reply."""
    now = request_now(request)
    try:
        with write_tx(request_engine(request)) as conn:
            return fleet_status.queue_command(conn, cabinet_id=cabinet_id, kind=body.kind,
                                              args=body.args, actor=member.username, now=now)
    except fleet_status.CommandRefused as exc:
        raise ApiError(exc.status, exc.code, exc.detail) from None


@router.get("/api/cabinets/{cabinet_id}/commands")
def commands(request: Request, cabinet_id: CabinetId,
             member: Annotated[Staff, Depends(require("cabinets.read"))],
             limit: Annotated[int, Query(ge=1, le=200)] = 20) -> dict[str, Any]:
    """The cabinet's commands, newest first, with their status and result."""
    now = request_now(request)
    with request_engine(request).connect() as conn:
        if conn.execute(select(cabinets.c.id).where(cabinets.c.id == cabinet_id)).first() is None:
            raise ApiError(404, "unknown_cabinet", f"no cabinet {cabinet_id!r}")
        rows = fleet_status.list_commands(conn, cabinet_id, limit, now=now)
    return {"commands": rows}
