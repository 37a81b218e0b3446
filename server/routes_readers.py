"""Reader-facing and credit endpoints: 秒办证 registration, the phone's dynamic QR, blocks,
and the fleet's worst-case offline exposure.

Two kinds of callers, two kinds of credentials:

- **Readers' phones** get a bearer token at registration. It is stored only as its SHA-256
  in ``reader_tokens`` — a table of its own, so a reader token is never a staff session and
  a staff token never opens a reader's QR (:func:`current_reader` looks in one table only).
- **Staff** block/unblock readers (``readers.manage``, audited in the same transaction as
  the deny row) and read the exposure figure (``cabinets.read``).

Registration is public, so it is built not to be an account-takeover oracle: a second
registration with the same id number returns the *existing* reader (one person, one card),
but a token for that reader only when the phone given matches the one registered;
otherwise 409. The public body has no credit score: a score the client reports about itself
proves nothing; scores enter through :func:`server.credit.register_reader` from a verified
provider integration (future work), so the public flow gets the policy's no-score tier.
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from syncproto.qrtoken import issue_token as issue_qr_token

from . import credit, keys
from .db import write_tx
from .schema import reader_tokens, readers
from .security import (
    ApiError,
    Staff,
    aware_utc,
    record_audit,
    request_engine,
    request_now,
    require,
    token_hash,
)

__all__ = ["QR_TTL_S", "READER_TOKEN_TTL", "current_reader", "router"]

_log = logging.getLogger(__name__)

router = APIRouter()

#: Lifetime of a QR code the phone shows: well under syncproto.qrtoken.MAX_TTL_S (60 s), so
#: a code refreshed on time is never refused by a cabinet whose clock is a little ahead.
QR_TTL_S = 30
#: Lifetime of a phone's reader token; the app registers again (same id number and phone:
#: the same reader) when it expires.
READER_TOKEN_TTL = timedelta(days=30)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_BEARER = {"WWW-Authenticate": "Bearer"}


def _plain_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _id_number(value: str) -> str:
    problem = credit.id_number_problem(value)
    if problem:
        raise ValueError(problem)  # never echoes the value
    return value


ReaderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=100),
                        AfterValidator(_plain_text)]
IdNumber = Annotated[str, StringConstraints(min_length=18, max_length=18),
                     AfterValidator(_id_number)]
Phone = Annotated[str, StringConstraints(pattern=r"^(\+86)?1[3-9][0-9]{9}$")]
Reason = Annotated[str, StringConstraints(max_length=64), AfterValidator(
    lambda v: _plain_text(v) if v else v)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RegisterBody(_Body):
    display_name: DisplayName
    id_number: IdNumber
    phone: Phone | None = None


class BlockBody(_Body):
    reason: Reason = ""


def _policy(request: Request) -> credit.CreditPolicy:
    """The app's credit policy (``app.state.credit_policy``), else the default."""
    policy = getattr(request.app.state, "credit_policy", None)
    return policy if isinstance(policy, credit.CreditPolicy) else credit.DEFAULT_POLICY


# ----------------------------------------------------------------------------- reader tokens


def _issue_reader_token(conn: Any, reader_id: str, now: datetime) -> tuple[str, datetime]:
    """A new phone token (256 random bits, stored as SHA-256); expired ones are pruned."""
    token = secrets.token_urlsafe(32)
    expires = now + READER_TOKEN_TTL
    conn.execute(delete(reader_tokens).where(reader_tokens.c.expires_at <= now))
    conn.execute(insert(reader_tokens).values(token_hash=token_hash(token), reader_id=reader_id,
                                              created_at=now, expires_at=expires))
    return token, expires


def current_reader(request: Request) -> str:
    """FastAPI dependency: the reader id whose live phone token this request carries, or
    401 (``missing_token``, ``invalid_token``, ``expired_token``)."""
    values = request.headers.getlist("authorization")
    if not values:
        raise ApiError(401, "missing_token", "this endpoint needs the reader token of the "
                       "phone: 'Authorization: Bearer <token>'", _BEARER)
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if len(values) > 1 or scheme.lower() != "bearer" or _TOKEN.fullmatch(token) is None:
        raise ApiError(401, "invalid_token", "not a reader token of this server", _BEARER)
    now = request_now(request)
    with request_engine(request).connect() as conn:
        row = conn.execute(select(reader_tokens.c.reader_id, reader_tokens.c.expires_at)
                           .where(reader_tokens.c.token_hash == token_hash(token))).first()
    if row is None:
        raise ApiError(401, "invalid_token", "the reader token is not valid; register the "
                       "card again", _BEARER)
    if aware_utc(row.expires_at) <= now:
        raise ApiError(401, "expired_token", "the reader token expired; register the card "
                       "again", _BEARER)
    return str(row.reader_id)


CurrentReader = Annotated[str, Depends(current_reader)]


# ----------------------------------------------------------------------------- routes


@router.post("/api/readers/register")
def register(body: RegisterBody, request: Request) -> JSONResponse:
    """秒办证: an electronic card at once, online, no deposit; the phone gets its token.

    201 with a new reader; 200 for the same id number and phone again (the same reader, a
    new token); 409 ``already_registered`` for a known id number without the matching
    phone (the card is theirs: a desk or the phone it was registered with can help).
    """
    now = request_now(request)
    policy = _policy(request)
    for attempt in range(2):
        try:
            with write_tx(request_engine(request)) as conn:
                known = conn.execute(select(readers.c.id).where(
                    readers.c.id_number_hash == credit.id_hash_of(body.id_number))).first()
                if known is not None:
                    if body.phone is None or not credit.phone_matches(conn, known.id, body.phone):
                        raise ApiError(409, "already_registered", "this id number already "
                                       "has a card; use the phone it was registered with")
                    reader_id, status = str(known.id), 200
                else:
                    reader_id = credit.register_reader(
                        conn, display_name=body.display_name.strip(), id_number=body.id_number,
                        phone=body.phone, now=now, policy=policy)
                    status = 201
                token, expires = _issue_reader_token(conn, reader_id, now)
                tier = conn.execute(select(readers.c.tier)
                                    .where(readers.c.id == reader_id)).scalar_one()
            break
        except IntegrityError:
            # Two registrations of one id number at once (PostgreSQL): the other won; the
            # second pass finds its reader.
            if attempt:
                raise
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
    return JSONResponse(status_code=status, content={
        "reader_id": reader_id, "token": token, "token_expires_at": expires.isoformat(),
        "tier": tier, "created": status == 201})


@router.get("/api/readers/me/qr")
def my_qr(request: Request, reader_id: CurrentReader) -> dict[str, Any]:
    """A fresh dynamic QR token (``LB1.``…, ≤ 60 s) with the reader's grant inside, so an
    offline cabinet can lend on credit to a reader it has never seen. 403 ``reader_blocked``
    when the reader may not borrow on credit (blocked, suspended, expired)."""
    now = request_now(request)
    try:
        with write_tx(request_engine(request)) as conn:
            grant = credit.current_grant(conn, reader_id, now, policy=_policy(request))
            key_id, private = keys.signing_key(conn)
    except credit.CreditRefused as exc:
        raise ApiError(403, "reader_blocked", f"this card may not borrow now ({exc.reason}); "
                       "please contact the library") from None
    except LookupError:
        raise ApiError(401, "invalid_token", "the reader of this token no longer exists",
                       _BEARER) from None
    token = issue_qr_token(reader_id=reader_id, grant_id=grant.grant_id, issued_at=now,
                           ttl_s=QR_TTL_S, key_id=key_id, private_key=private, grant=grant)
    issued = now.replace(microsecond=0)
    return {"qr": token, "issued_at": issued.isoformat(),
            "expires_at": (issued + timedelta(seconds=QR_TTL_S)).isoformat(),
            "refresh_after_s": QR_TTL_S // 2, "tier": grant.tier,
            "grant_expires_at": grant.expires_at.isoformat()}


def _block_or_unblock(request: Request, member: Staff, reader_id: str, body: BlockBody,
                      blocked: bool) -> dict[str, Any]:
    now = request_now(request)
    action = "reader.block" if blocked else "reader.unblock"
    with write_tx(request_engine(request)) as conn:
        try:
            if blocked:
                version = credit.block(conn, reader_id, body.reason, now)
            else:
                version = credit.unblock(conn, reader_id, body.reason, now)
        except LookupError:
            raise ApiError(404, "unknown_reader", f"no reader {reader_id!r}") from None
        record_audit(conn, at=now, actor=member.username, action=action, target=reader_id,
                     detail={"reason": body.reason, "deny_version": version})
        status = conn.execute(select(readers.c.status).where(readers.c.id == reader_id)).scalar()
    return {"reader_id": reader_id, "status": status, "deny_version": version}


@router.post("/api/readers/{reader_id}/block")
def block_reader(reader_id: ReaderId, request: Request,
                 member: Annotated[Staff, Depends(require("readers.manage"))],
                 body: BlockBody | None = None) -> dict[str, Any]:
    """Block a reader: no more grants, grants suspended, a deny delta for every cabinet."""
    return _block_or_unblock(request, member, reader_id, body or BlockBody(), True)


@router.post("/api/readers/{reader_id}/unblock")
def unblock_reader(reader_id: ReaderId, request: Request,
                   member: Annotated[Staff, Depends(require("readers.manage"))],
                   body: BlockBody | None = None) -> dict[str, Any]:
    """Lift a block or a suspension (a deny delta removing the reader)."""
    return _block_or_unblock(request, member, reader_id, body or BlockBody(), False)


@router.get("/api/credit/exposure")
def exposure(request: Request, _member: Annotated[Staff, Depends(require("cabinets.read"))],
             k: Annotated[int | None, Query(ge=1, le=100_000)] = None) -> dict[str, Any]:
    """The fleet's worst-case offline exposure and the per-reader bound per tier
    (:func:`server.credit.fleet_exposure`); ``k``: offline cabinets a reader reaches."""
    with request_engine(request).connect() as conn:
        return credit.fleet_exposure(conn, policy=_policy(request), k=k)
