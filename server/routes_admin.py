"""The staff API of the central server: log in, see who you are, and set up the network.

Every route states its permission with :func:`server.security.require` (or
``CurrentStaff`` for "any logged-in staff", or nothing for login), so the role matrix test
can walk the routes and check each answer against ``PERMISSIONS``. Every write is recorded
in ``audit`` in the same transaction as the write itself, with the acting staff username:
an action without its record cannot commit, nor a record without its action.

Request bodies are strict (no unknown fields, no "123" for a number) and every text field is
bounded by its column and free of control characters, so bad input is a 422 here and never
a database error (PostgreSQL refuses NUL bytes and over-long strings at insert time).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Row, func, insert, select
from sqlalchemy.exc import IntegrityError

from .db import write_tx
from .schema import audit, branches, cabinets, events, libraries, staff
from .security import (
    MAX_PASSWORD_LENGTH,
    USERNAME_PATTERN,
    ApiError,
    CurrentStaff,
    Staff,
    aware_utc,
    burn_password_check,
    check_public_key,
    hash_password,
    issue_token,
    password_problem,
    record_audit,
    request_engine,
    request_now,
    request_settings,
    require,
    revoke_token,
    verify_password,
)

__all__ = ["router", "staff_login"]

_log = logging.getLogger(__name__)

router = APIRouter()

# ----------------------------------------------------------------------------- field types

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _plain_text(value: str) -> str:
    """Text a person typed: no control characters, encodable (no lone surrogates)."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _new_password(value: str) -> str:
    problem = password_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _public_key(value: str) -> str:
    return check_public_key(value)


#: Ids that name things in requests, files and URLs: the kiosk config's cabinet id rule.
Slug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
#: ISO 15511 ISIL as the kiosk config checks it, e.g. ``CN-110000-G``.
Isil = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{1,4}-[A-Za-z0-9:/-]{1,11}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_plain_text)]
OptionalText = Annotated[str, StringConstraints(max_length=200), AfterValidator(_plain_text)]
LoginPassword = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
NewPassword = Annotated[str, AfterValidator(_new_password)]
PublicKey = Annotated[str, StringConstraints(max_length=64), AfterValidator(_public_key)]
Role = Literal["operator", "technician", "branch_staff", "auditor"]


class _Body(BaseModel):
    """Strict JSON bodies: unknown fields and type coercions are refused (422)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class LoginBody(_Body):
    username: Username
    password: LoginPassword


class StaffBody(_Body):
    username: Username
    password: NewPassword
    role: Role
    branch_id: Slug | None = None


class CabinetBody(_Body):
    id: Slug
    branch_id: Slug
    name: OptionalText = ""
    location: OptionalText = ""
    public_key: PublicKey
    #: the most unsynced offline loans the cabinet allows (its kiosk's ``[policy]
    #: offline_exposure_cap``): what the fleet's worst-case exposure adds up
    offline_exposure_cap: int = Field(20, ge=0, le=100_000, strict=True)


class BranchBody(_Body):
    id: Slug
    name: Name
    library_isil: Isil
    parent_id: Slug | None = None
    floating: bool = False


class LibraryBody(_Body):
    isil: Isil
    name: Name


# ----------------------------------------------------------------------------- helpers


def _iso(value: datetime | None) -> str | None:
    return aware_utc(value).isoformat() if value is not None else None


def _exists(conn: Any, column: Any, value: Any) -> bool:
    return conn.execute(select(column).where(column == value).limit(1)).first() is not None


def _conflict(error: str, detail: str) -> ApiError:
    return ApiError(409, error, detail)


def _cabinet_json(row: Row[Any]) -> dict[str, Any]:
    return {"id": row.id, "branch_id": row.branch_id, "name": row.name, "location": row.location,
            "public_key": row.public_key, "registered_at": _iso(row.registered_at),
            "active": bool(row.active), "applied_through": int(row.applied_through),
            "last_sync_at": _iso(row.last_sync_at), "clock_offset_s": row.clock_offset_s,
            "offline_exposure_cap": int(row.offline_exposure_cap)}


# ----------------------------------------------------------------------------- auth

_BAD_LOGIN = "unknown username or wrong password"


@router.post("/api/auth/login")
def login(body: LoginBody, request: Request) -> JSONResponse:
    """A bearer token for a username and password (public: this is how one gets in).

    Unknown user and wrong password answer alike, in about the same time, so the answer
    does not tell which usernames exist.
    """
    return JSONResponse(staff_login(request, body.username, body.password),
                        headers={"Cache-Control": "no-store"})


def staff_login(request: Request, username: str, password: str) -> dict[str, Any]:
    """Check a username and password and issue a token (audited): ``{token, role,
    expires_at}``; ApiError 401 otherwise. Shared by the API and the console's login form."""
    engine = request_engine(request)
    with engine.connect() as conn:
        row = conn.execute(select(staff).where(staff.c.username == username)).first()
    if row is None:
        burn_password_check(password)
        _log.warning("failed login: unknown username")
        raise ApiError(401, "invalid_credentials", _BAD_LOGIN)
    if not verify_password(password, row.password_hash):
        _log.warning("failed login for staff %r: wrong password", row.username)
        raise ApiError(401, "invalid_credentials", _BAD_LOGIN)
    if row.disabled:
        raise ApiError(401, "account_disabled", f"staff account {row.username!r} is disabled")
    now = request_now(request)
    ttl_s = request_settings(request).token_ttl_s
    with write_tx(engine) as conn:
        token = issue_token(conn, row.id, now, ttl_s)
        record_audit(conn, at=now, actor=row.username, action="auth.login", target=row.username)
    return {"token": token, "role": row.role, "expires_at": _iso(now + timedelta(seconds=ttl_s))}


@router.post("/api/auth/logout", status_code=204)
def logout(member: CurrentStaff, request: Request) -> Response:
    """End this token's session (other sessions of the same person stay)."""
    now = request_now(request)
    with write_tx(request_engine(request)) as conn:
        revoke_token(conn, member.token)
        record_audit(conn, at=now, actor=member.username, action="auth.logout",
                     target=member.username)
    return Response(status_code=204)


@router.get("/api/me")
def me(member: CurrentStaff) -> dict[str, Any]:
    """Who this token belongs to and what they may do (the web interface shapes its menus)."""
    return {"id": member.id, "username": member.username, "role": member.role,
            "branch_id": member.branch_id, "permissions": sorted(member.permissions),
            "expires_at": _iso(member.token_expires_at)}


# ----------------------------------------------------------------------------- staff


@router.post("/api/staff", status_code=201)
def create_staff(body: StaffBody, request: Request,
                 member: Annotated[Staff, Depends(require("staff.manage"))]) -> dict[str, Any]:
    """A new staff account (operators only)."""
    password_hash = hash_password(body.password)  # ~50 ms: outside the write transaction
    now = request_now(request)
    try:
        with write_tx(request_engine(request)) as conn:
            if _exists(conn, staff.c.username, body.username):
                raise _conflict("username_taken", f"staff username {body.username!r} is taken")
            if body.branch_id is not None and not _exists(conn, branches.c.id, body.branch_id):
                raise ApiError(422, "unknown_branch", f"no branch {body.branch_id!r}")
            staff_id = conn.execute(insert(staff).values(
                username=body.username, password_hash=password_hash, role=body.role,
                branch_id=body.branch_id, created_at=now, disabled=False)
                .returning(staff.c.id)).scalar_one()
            record_audit(conn, at=now, actor=member.username, action="staff.create",
                         target=body.username, detail={"role": body.role,
                                                       "branch_id": body.branch_id})
    except IntegrityError:  # a concurrent request took the name between check and insert
        raise _conflict("username_taken", f"staff username {body.username!r} is taken") from None
    return {"id": staff_id, "username": body.username, "role": body.role,
            "branch_id": body.branch_id, "created_at": _iso(now)}


# ----------------------------------------------------------------------------- cabinets


@router.post("/api/cabinets", status_code=201)
def register_cabinet(body: CabinetBody, request: Request,
                     member: Annotated[Staff, Depends(require("cabinets.manage"))]) -> dict[str, Any]:
    """Register a cabinet and the public key it signs its requests with.

    The key is checked here (base64url of 32 bytes) and must not be another cabinet's: a
    shared key would let one cabinet sign as the other.
    """
    now = request_now(request)
    try:
        with write_tx(request_engine(request)) as conn:
            if _exists(conn, cabinets.c.id, body.id):
                raise _conflict("cabinet_exists", f"cabinet {body.id!r} is already registered")
            if _exists(conn, cabinets.c.public_key, body.public_key):
                raise _conflict("public_key_in_use",
                                "this public key is registered for another cabinet; every "
                                "cabinet needs its own key")
            if not _exists(conn, branches.c.id, body.branch_id):
                raise ApiError(422, "unknown_branch", f"no branch {body.branch_id!r}; "
                               "create it first (POST /api/branches)")
            conn.execute(insert(cabinets).values(
                id=body.id, branch_id=body.branch_id, name=body.name, location=body.location,
                public_key=body.public_key, registered_at=now, active=True, applied_through=0,
                deny_version_sent=0, offline_exposure_cap=body.offline_exposure_cap))
            record_audit(conn, at=now, actor=member.username, action="cabinet.register",
                         target=body.id, detail={"branch_id": body.branch_id, "name": body.name,
                                                 "location": body.location,
                                                 "public_key": body.public_key,
                                                 "offline_exposure_cap": body.offline_exposure_cap})
            row = conn.execute(select(cabinets).where(cabinets.c.id == body.id)).one()
    except IntegrityError:
        raise _conflict("cabinet_exists", f"cabinet {body.id!r} is already registered") from None
    return _cabinet_json(row)


@router.get("/api/cabinets")
def list_cabinets(request: Request,
                  member: Annotated[Staff, Depends(require("cabinets.read"))]) -> dict[str, Any]:
    """The fleet: every registered cabinet with its sync state (all roles)."""
    with request_engine(request).connect() as conn:
        rows = conn.execute(select(cabinets).order_by(cabinets.c.id)).all()
        held = {r.cabinet_id: (int(r.n), r.since) for r in conn.execute(
            select(events.c.cabinet_id, func.count().label("n"),
                   func.min(events.c.received_at).label("since"))
            .where(events.c.applied.is_(False)).group_by(events.c.cabinet_id))}
    out = []
    for row in rows:
        n, since = held.get(row.id, (0, None))
        # events waiting behind a gap: the cabinet must re-send from applied_through + 1
        out.append({**_cabinet_json(row), "held_events": n,
                    "gap_from": int(row.applied_through) + 1 if n else None,
                    "held_since": _iso(since) if since is not None else None})
    return {"cabinets": out}


# ----------------------------------------------------------------------------- network


@router.post("/api/libraries", status_code=201)
def create_library(body: LibraryBody, request: Request,
                   member: Annotated[Staff, Depends(require("network.manage"))]) -> dict[str, Any]:
    """Add a library of the network (its items are "ours", not "outside the network")."""
    now = request_now(request)
    try:
        with write_tx(request_engine(request)) as conn:
            if _exists(conn, libraries.c.isil, body.isil):
                raise _conflict("library_exists", f"library {body.isil!r} exists already")
            conn.execute(insert(libraries).values(isil=body.isil, name=body.name))
            record_audit(conn, at=now, actor=member.username, action="library.create",
                         target=body.isil, detail={"name": body.name})
    except IntegrityError:
        raise _conflict("library_exists", f"library {body.isil!r} exists already") from None
    return {"isil": body.isil, "name": body.name}


@router.post("/api/branches", status_code=201)
def create_branch(body: BranchBody, request: Request,
                  member: Annotated[Staff, Depends(require("network.manage"))]) -> dict[str, Any]:
    """Add a branch of a library (optionally under a parent branch: 总分馆制)."""
    now = request_now(request)
    try:
        with write_tx(request_engine(request)) as conn:
            if _exists(conn, branches.c.id, body.id):
                raise _conflict("branch_exists", f"branch {body.id!r} exists already")
            if not _exists(conn, libraries.c.isil, body.library_isil):
                raise ApiError(422, "unknown_library", f"no library {body.library_isil!r}; "
                               "create it first (POST /api/libraries)")
            if body.parent_id is not None and not _exists(conn, branches.c.id, body.parent_id):
                raise ApiError(422, "unknown_branch", f"no parent branch {body.parent_id!r}")
            values = {"id": body.id, "name": body.name, "library_isil": body.library_isil,
                      "parent_id": body.parent_id, "floating": body.floating}
            conn.execute(insert(branches).values(**values))
            record_audit(conn, at=now, actor=member.username, action="branch.create",
                         target=body.id, detail={k: v for k, v in values.items() if k != "id"})
    except IntegrityError:
        raise _conflict("branch_exists", f"branch {body.id!r} exists already") from None
    return values


# ----------------------------------------------------------------------------- audit


@router.get("/api/audit")
def read_audit(request: Request, member: Annotated[Staff, Depends(require("audit.read"))],
               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               before: Annotated[int | None, Query(ge=1, le=2**62)] = None) -> dict[str, Any]:
    """The audit log, newest first, ``limit`` entries at a time; pass ``next_before`` back as
    ``before`` for the next page."""
    stmt = select(audit).order_by(audit.c.id.desc()).limit(limit)
    if before is not None:
        stmt = stmt.where(audit.c.id < before)
    with request_engine(request).connect() as conn:
        rows = conn.execute(stmt).all()
    entries = [{"id": row.id, "at": _iso(row.at), "actor": row.actor, "action": row.action,
                "target": row.target, "detail": row.detail} for row in rows]
    return {"entries": entries,
            "next_before": rows[-1].id if len(rows) == limit and rows[-1].id > 1 else None}
