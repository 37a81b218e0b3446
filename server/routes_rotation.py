"""Staff endpoints of collection rotation: a cabinet's profile, its proposal, applying it.

Why the proposal is a GET and applying it a separate POST: staff look at the list (and
change the profile) as often as they like; only "apply" writes — the restock tasks, and
the audit row saying who sent which books where.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator

from . import rotation
from .db import lock_cabinet, write_tx
from .restock import open_tasks
from .security import ApiError, Staff, record_audit, request_engine, request_now, require

__all__ = ["router"]

router = APIRouter()

CabinetId = Annotated[str, Path(min_length=1, max_length=64)]


class ProfileBody(BaseModel):
    """PUT /api/cabinets/{id}/profile: themes {中图法 letter: share}, per_door, stale_days."""

    model_config = ConfigDict(extra="forbid")
    themes: dict[str, StrictFloat | StrictInt]
    per_door: int = Field(default=10, ge=1, le=500)
    stale_days: int = Field(default=60, ge=1, le=3650)

    @field_validator("themes")
    @classmethod
    def _themes(cls, value: dict[str, float]) -> dict[str, float]:
        return rotation.check_themes(value)


def _unknown(cabinet_id: str) -> ApiError:
    return ApiError(404, "unknown_cabinet", f"no cabinet {cabinet_id!r}")


def _no_profile(cabinet_id: str) -> ApiError:
    return ApiError(409, "no_profile", f"cabinet {cabinet_id!r} has no collection profile; "
                    f"PUT /api/cabinets/{cabinet_id}/profile first")


@router.put("/api/cabinets/{cabinet_id}/profile")
def put_profile(body: ProfileBody, request: Request, cabinet_id: CabinetId,
                member: Annotated[Staff, Depends(require("collection.manage"))]) -> dict[str, Any]:
    """Create or replace the cabinet's collection profile (audited)."""
    now = request_now(request)
    with write_tx(request_engine(request)) as conn:
        try:
            profile = rotation.put_profile(conn, cabinet_id, themes=body.themes,
                                           per_door=body.per_door, stale_days=body.stale_days,
                                           now=now)
        except rotation.UnknownCabinet:
            raise _unknown(cabinet_id) from None
        record_audit(conn, at=now, actor=member.username, action="rotation.profile",
                     target=cabinet_id, detail=profile.as_dict())
    return profile.as_dict()


@router.get("/api/cabinets/{cabinet_id}/profile")
def get_profile(request: Request, cabinet_id: CabinetId,
                member: Annotated[Staff, Depends(require("cabinets.read"))]) -> dict[str, Any]:
    """The cabinet's collection profile (404 ``no_profile`` while it has none)."""
    with request_engine(request).connect() as conn:
        profile = rotation.get_profile(conn, cabinet_id)
        if profile is None:
            if not rotation.cabinet_exists(conn, cabinet_id):
                raise _unknown(cabinet_id)
            raise ApiError(404, "no_profile", f"cabinet {cabinet_id!r} has no collection profile")
    return profile.as_dict()


@router.get("/api/cabinets/{cabinet_id}/rotation")
def show_rotation(request: Request, cabinet_id: CabinetId,
                  member: Annotated[Staff, Depends(require("circulation.read"))]) -> dict[str, Any]:
    """The rotation proposal with a reason per line, and the cabinet's open restock tasks
    (what an earlier apply or another part already asked for)."""
    now = request_now(request)
    with request_engine(request).connect() as conn:
        try:
            proposal = rotation.propose(conn, cabinet_id, now)
        except rotation.UnknownCabinet:
            raise _unknown(cabinet_id) from None
        except rotation.NoProfile:
            raise _no_profile(cabinet_id) from None
        pending = open_tasks(conn, cabinet_id=cabinet_id)
    return {**proposal.as_dict(), "at": now.isoformat(), "open_tasks": pending}


@router.post("/api/cabinets/{cabinet_id}/rotation/apply")
def apply_rotation(request: Request, cabinet_id: CabinetId,
                   member: Annotated[Staff, Depends(require("collection.manage"))]
                   ) -> dict[str, Any]:
    """Turn the current proposal into restock tasks (audited); the tasks created. Applying
    again the same day with nothing changed creates none."""
    now = request_now(request)
    with write_tx(request_engine(request)) as conn:
        if lock_cabinet(conn, cabinet_id) is None:  # two applies at once: one after the other
            raise _unknown(cabinet_id)
        try:
            ref, created = rotation.apply(conn, cabinet_id, now)
        except rotation.NoProfile:
            raise _no_profile(cabinet_id) from None
        record_audit(conn, at=now, actor=member.username, action="rotation.apply",
                     target=cabinet_id, detail={"ref": ref, "tasks": [t["id"] for t in created],
                                                "take_out": sum(t["action"] == "unload"
                                                                for t in created),
                                                "bring_in": sum(t["action"] == "load"
                                                                for t in created)})
    return {"cabinet_id": cabinet_id, "ref": ref, "created": created}
