"""Who may do what on the central server: staff passwords and tokens, roles, signed cabinets.

Two kinds of callers reach the server, and each proves who it is differently:

- **Staff** (people, through the admin API) log in with a password and then send a bearer
  token. Passwords are stored as scrypt hashes whose string carries its own parameters (so
  the cost can be raised later without breaking old hashes) and are compared in constant
  time; tokens are 256 random bits, stored only as their SHA-256 (a copy of the database
  gives no session) and expire. What a logged-in person may do is decided by their role
  through :data:`PERMISSIONS` — one table, checked by :func:`require`, so the answer to
  "can a technician open a door?" is in one place and a test can walk it.
- **Cabinets** sign every request with their own Ed25519 key (``syncproto.signing``);
  :func:`cabinet_request` verifies it against the key registered in ``cabinets`` and records
  the nonce in ``cabinet_nonces`` so that a captured request cannot be sent twice.

Every refusal is an :class:`ApiError` that ``server.app`` turns into
``{"error", "detail", "server_time"}``; a 401 always says why (a cabinet operator needs to
tell a drifted clock from a wrong key) but never echoes a password or a token, and nothing
here logs either.

Request context (set by ``server.app.create_app``): ``app.state.engine``,
``app.state.settings`` and ``app.state.clock`` (a callable returning an aware datetime);
:func:`request_engine`, :func:`request_now` and :func:`request_settings` read them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine, Row, delete, insert, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from syncproto import signing

from .db import write_tx
from .schema import ROLES, audit, cabinet_nonces, cabinets, staff, staff_tokens
from .settings import Settings

__all__ = [
    "ALL_PERMISSIONS",
    "ApiError",
    "CurrentStaff",
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "PERMISSIONS",
    "SCRYPT_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "USERNAME_PATTERN",
    "Staff",
    "aware_utc",
    "burn_password_check",
    "cabinet_request",
    "check_public_key",
    "current_staff",
    "hash_password",
    "issue_token",
    "password_problem",
    "record_audit",
    "request_engine",
    "request_now",
    "request_settings",
    "require",
    "revoke_token",
    "token_hash",
    "verify_password",
]

_log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- errors


class ApiError(Exception):
    """A refusal with its HTTP status, a stable machine-readable code and a human detail.

    ``server.app`` renders it as ``{"error": error, "detail": detail, "server_time": …}``.
    The detail is shown to the caller: it must never hold a password, a token or a hash.
    """

    def __init__(self, status: int, error: str, detail: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})


# ----------------------------------------------------------------------------- roles

#: Every permission the server knows, with what it covers (docs/server-contracts.md).
ALL_PERMISSIONS: dict[str, str] = {
    "staff.manage": "create staff, change roles",
    "cabinets.manage": "register, deactivate, keys",
    "cabinets.read": "fleet, health",
    "cabinets.command": "remote open, re-inventory",
    "circulation.read": "loans, items, transit",
    "exceptions.resolve": "resolve the exceptions queue",
    "readers.manage": "block, grants",
    "audit.read": "read the audit log",
    "network.manage": "libraries and branches of the network",
    "collection.manage": "restock lists, transits, holds, rotation, 荐购 review",
}

#: Role → what it may do. The only place a permission decision is made (see :func:`require`).
PERMISSIONS: dict[str, frozenset[str]] = {
    "operator": frozenset(ALL_PERMISSIONS),
    "technician": frozenset({"cabinets.read", "cabinets.command"}),
    "branch_staff": frozenset({"cabinets.read", "circulation.read", "exceptions.resolve",
                               "readers.manage", "collection.manage"}),
    "auditor": frozenset({"cabinets.read", "circulation.read", "audit.read"}),
}

if set(PERMISSIONS) != set(ROLES):  # pragma: no cover - a schema/role edit without this table
    raise AssertionError("PERMISSIONS must name exactly the roles of server.schema.ROLES")


# ----------------------------------------------------------------------------- request context


def request_engine(request: Request) -> Engine:
    """The database engine of the app serving this request."""
    engine: Engine = request.app.state.engine
    return engine


def request_settings(request: Request) -> Settings:
    """The settings of the app serving this request."""
    settings: Settings = request.app.state.settings
    return settings


def request_now(request: Request) -> datetime:
    """The server's clock (UTC), injectable so tests can move time instead of sleeping."""
    clock: Callable[[], datetime] = request.app.state.clock
    return aware_utc(clock())


def aware_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive value is taken to be UTC already.

    SQLite gives ``DateTime(timezone=True)`` columns back without a zone (they are stored as
    UTC text); PostgreSQL gives them back aware. Comparing the two kinds raises, so every
    datetime read from the database passes through here.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# ----------------------------------------------------------------------------- passwords

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
#: Staff passwords shorter than this are refused (create-admin and POST /api/staff).
MIN_PASSWORD_LENGTH = 10
#: Staff usernames: letters, digits and ``._@-``, up to the column's 64 characters. No ``:``
#: so that audit actors like ``cli:create-admin`` or ``cabinet:<id>`` are never a username.
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
#: Longer passwords are refused: they add nothing and make every login hash more bytes.
MAX_PASSWORD_LENGTH = 1024

# Bounds on the parameters a stored hash may ask for. A hash string is data: one edited in
# the database (or a bug) must not make a login allocate gigabytes or run for minutes.
_MAX_SCRYPT_MEMORY = 64 * 1024 * 1024  # 128 * n * r bytes
_MAX_SCRYPT_WORK = 2**20  # n * r * p, 8x the default
_DECIMAL = re.compile(r"[1-9][0-9]{0,9}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_dummy_hash: str | None = None


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes | None:
    """Strict base64url without padding, or None: one spelling per value.

    Strict so that an edited hash string never verifies: a lenient decoder would accept a
    changed last character whose extra bits it drops.
    """
    if _B64URL.fullmatch(text) is None or len(text) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - the pattern forbids it
        return None
    return raw if _b64e(raw) == text else None


def _params_ok(n: int, r: int, p: int) -> bool:
    return (n >= 2 and n & (n - 1) == 0 and r >= 1 and p >= 1
            and 128 * n * r <= _MAX_SCRYPT_MEMORY and n * r * p <= _MAX_SCRYPT_WORK)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # surrogatepass: any str (JSON allows lone surrogates) hashes, and distinct strs differ
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
                          maxmem=2 * _MAX_SCRYPT_MEMORY, dklen=length)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$n$r$p$salt$hash`` (salt: 16 random bytes; both base64url without padding).

    The parameters travel in the string so that :func:`verify_password` checks old hashes
    with their own cost after the default is raised. ``n``/``r``/``p`` other than the
    defaults exist for tests that hash thousands of passwords; production uses the defaults.
    """
    if not isinstance(password, str):
        raise TypeError("password must be a str")
    if not _params_ok(n, r, p):
        raise ValueError(f"scrypt parameters out of bounds: n={n} r={r} p={p}")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, n, r, p, HASH_BYTES)
    return f"scrypt${n}${r}${p}${_b64e(salt)}${_b64e(digest)}"


def _parse_hash(stored: object) -> tuple[int, int, int, bytes, bytes] | None:
    if not isinstance(stored, str) or not stored.isascii():
        return None
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    if not all(_DECIMAL.fullmatch(part) for part in parts[1:4]):
        return None
    n, r, p = (int(part) for part in parts[1:4])
    salt, digest = _b64d(parts[4]), _b64d(parts[5])
    if salt is None or digest is None or not _params_ok(n, r, p):
        return None
    # exact lengths: scrypt's output for a shorter length is a prefix of the longer one, so
    # a hash string with its tail cut off would otherwise still verify
    if len(salt) != SALT_BYTES or len(digest) != HASH_BYTES:
        return None
    return n, r, p, salt, digest


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from; False (never an exception)
    for anything that is not a well-formed hash within bounds. Constant-time comparison."""
    parsed = _parse_hash(stored)
    if parsed is None or not isinstance(password, str):
        return False
    n, r, p, salt, expected = parsed
    try:
        actual = _scrypt(password, salt, n, r, p, len(expected))
    except (ValueError, MemoryError, OverflowError):  # pragma: no cover - bounds checked above
        return False
    return hmac.compare_digest(actual, expected)


def burn_password_check(password: str) -> None:
    """Spend the time of one real verification, for logins of unknown users.

    Without it, "no such user" answers ~50 ms faster than "wrong password", and the
    difference tells an attacker which usernames exist.
    """
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_urlsafe(16))
    verify_password(password, _dummy_hash)


def password_problem(password: object) -> str | None:
    """Why a new staff password is refused, or None (the one rule: long enough)."""
    if not isinstance(password, str):
        return "password must be text"
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"password must be at most {MAX_PASSWORD_LENGTH} characters"
    return None


# ----------------------------------------------------------------------------- staff tokens

_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_BEARER = {"WWW-Authenticate": "Bearer"}


def token_hash(token: str) -> str:
    """What the database keeps of a token: its SHA-256 in hex (the token itself is never stored)."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def issue_token(conn: Connection, staff_id: int, now: datetime, ttl_s: float) -> str:
    """A new bearer token for ``staff_id`` valid for ``ttl_s`` seconds from ``now``.

    256 random bits, so guessing is hopeless and a hash without salt is enough to store it.
    Expired tokens of everyone are deleted on the way, so the table holds live sessions only.
    """
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    now = aware_utc(now)
    token = secrets.token_urlsafe(32)
    conn.execute(delete(staff_tokens).where(staff_tokens.c.expires_at <= now))
    conn.execute(insert(staff_tokens).values(
        token_hash=token_hash(token), staff_id=staff_id, created_at=now,
        expires_at=now + timedelta(seconds=ttl_s)))
    return token


def revoke_token(conn: Connection, token: str) -> bool:
    """Forget a token (logout); True if it existed."""
    result = conn.execute(delete(staff_tokens).where(staff_tokens.c.token_hash == token_hash(token)))
    return bool(result.rowcount)


@dataclass(frozen=True)
class Staff:
    """The logged-in person making this request (attribute names as in the ``staff`` table).

    ``token`` is kept for logout only; it is excluded from ``repr`` so that a log line or a
    traceback that prints this object shows no session.
    """

    id: int
    username: str
    role: str
    branch_id: str | None
    token_expires_at: datetime
    token: str = ""

    def __repr__(self) -> str:
        return (f"Staff(id={self.id!r}, username={self.username!r}, role={self.role!r}, "
                f"branch_id={self.branch_id!r})")

    @property
    def permissions(self) -> frozenset[str]:
        return PERMISSIONS.get(self.role, frozenset())


def _bearer_token(request: Request) -> str:
    values = request.headers.getlist("authorization")
    if not values:
        raise ApiError(401, "missing_token", "this endpoint needs 'Authorization: Bearer <token>'; "
                       "get a token from POST /api/auth/login", _BEARER)
    if len(values) > 1:
        raise ApiError(401, "invalid_token", "Authorization header given more than once", _BEARER)
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "invalid_token", "Authorization must be 'Bearer <token>'", _BEARER)
    if _TOKEN.fullmatch(token) is None:
        raise ApiError(401, "invalid_token", "the bearer token is not one this server issues",
                       _BEARER)
    return token


def current_staff(request: Request) -> Staff:
    """FastAPI dependency: the staff member whose live token this request carries, or 401.

    401 codes: ``missing_token``, ``invalid_token`` (malformed, unknown or logged out),
    ``expired_token``, ``account_disabled``.
    """
    token = _bearer_token(request)
    now = request_now(request)
    digest = token_hash(token)
    with request_engine(request).connect() as conn:
        row = conn.execute(
            select(staff.c.id, staff.c.username, staff.c.role, staff.c.branch_id, staff.c.disabled,
                   staff_tokens.c.expires_at)
            .select_from(staff_tokens.join(staff, staff.c.id == staff_tokens.c.staff_id))
            .where(staff_tokens.c.token_hash == digest)).first()
    if row is None:
        raise ApiError(401, "invalid_token", "the token is not valid (logged out or never issued); "
                       "log in again", _BEARER)
    expires_at = aware_utc(row.expires_at)
    if expires_at <= now:
        raise ApiError(401, "expired_token", f"the token expired at {expires_at.isoformat()}; "
                       "log in again", _BEARER)
    if row.disabled:
        raise ApiError(401, "account_disabled", f"staff account {row.username!r} is disabled",
                       _BEARER)
    return Staff(id=row.id, username=row.username, role=row.role, branch_id=row.branch_id,
                 token_expires_at=expires_at, token=token)


#: ``staff: CurrentStaff`` in a route: any logged-in staff member.
CurrentStaff = Annotated[Staff, Depends(current_staff)]


def require(permission: str) -> Callable[[Staff], Staff]:
    """FastAPI dependency factory: the logged-in staff member if their role has ``permission``.

    401 as :func:`current_staff`; 403 ``forbidden`` naming the role and the missing
    permission, so the person knows whom to ask. An unknown permission name is a bug found
    at import time (ValueError), not a route that silently lets nobody in. The returned
    dependency carries ``.permission`` so tests can read the decision off the route.
    """
    if permission not in ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; known: {sorted(ALL_PERMISSIONS)}")

    def dependency(member: CurrentStaff) -> Staff:
        if permission not in member.permissions:
            raise ApiError(403, "forbidden",
                           f"role {member.role!r} lacks permission {permission!r}")
        return member

    dependency.__name__ = f"require_{permission.replace('.', '_')}"
    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency


# ----------------------------------------------------------------------------- audit

_SECRET_KEYS = ("password", "token", "secret", "private")


def record_audit(conn: Connection, *, at: datetime, actor: str, action: str, target: str = "",
                 detail: Mapping[str, Any] | None = None) -> None:
    """One row of "who did what" in ``audit``, in the caller's transaction (so the action and
    its record commit or vanish together).

    ``detail`` must not hold secrets; a key that looks like one (password, token, secret,
    private) is a bug and raises ValueError instead of being written.
    """
    detail = dict(detail or {})
    for key in detail:
        if any(word in key.lower() for word in _SECRET_KEYS):
            raise ValueError(f"audit detail must not hold secrets: {key!r}")
    conn.execute(insert(audit).values(at=aware_utc(at), actor=actor[:64], action=action[:64],
                                      target=target[:128], detail=detail))


# ----------------------------------------------------------------------------- cabinet keys


def check_public_key(text: object) -> str:
    """``text`` if it is an Ed25519 public key as cabinets print it (base64url, no padding,
    of 32 bytes), else ValueError saying what is wrong. Checked at registration so that a
    mistyped key is refused at the desk, not by every later request of that cabinet."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(text, str):
        raise ValueError("public_key must be text")
    raw = _b64d(text)
    if raw is None:
        raise ValueError("public_key must be base64url without padding "
                         "(as `lendbox kiosk key` prints it)")
    if len(raw) != 32:
        raise ValueError(f"public_key must encode 32 bytes (an Ed25519 key), not {len(raw)}")
    Ed25519PublicKey.from_public_bytes(raw)
    return text


# ----------------------------------------------------------------------------- cabinets


def _signature_refused(exc: signing.SignatureError) -> ApiError:
    return ApiError(401, exc.reason, f"request signature refused: {exc}")


def _record_nonce(engine: Engine, cabinet_id: str, nonce: str, now: datetime,
                  window_s: float) -> bool:
    """Store a verified request's nonce; True if this cabinet had used it already (a replay).

    Nonces older than ``2 * window_s`` are pruned on the way: a request that old fails the
    timestamp check, so remembering it longer protects nothing. The unique key does the
    replay check, so two processes receiving the same request at once cannot both accept it.
    """
    cutoff = now - timedelta(seconds=2 * window_s)
    try:
        with write_tx(engine) as conn:
            conn.execute(delete(cabinet_nonces).where(cabinet_nonces.c.cabinet_id == cabinet_id,
                                                      cabinet_nonces.c.seen_at < cutoff))
            conn.execute(insert(cabinet_nonces).values(cabinet_id=cabinet_id, nonce=nonce,
                                                       seen_at=now))
    except IntegrityError:
        return True
    return False


def _verify_cabinet(request: Request, body: bytes) -> Row[Any]:
    engine = request_engine(request)
    now = request_now(request)
    window_s = request_settings(request).signature_window_s
    try:
        cabinet_id = signing.request_cabinet(request.headers)
    except signing.SignatureError as exc:
        raise _signature_refused(exc) from None
    with engine.connect() as conn:
        row = conn.execute(select(cabinets).where(cabinets.c.id == cabinet_id)).first()
    if row is None:
        raise ApiError(401, "unknown_cabinet",
                       f"cabinet {cabinet_id!r} is not registered with this server")
    if not row.active:
        raise ApiError(401, "inactive_cabinet",
                       f"cabinet {cabinet_id!r} is deactivated on this server")
    try:
        signed_by = signing.verify_request(
            request.headers, request.method, request.url.path, body, public_key=row.public_key,
            now=now, window_s=window_s,
            seen_nonce=lambda nonce: _record_nonce(engine, cabinet_id, nonce, now, window_s))
    except signing.SignatureError as exc:
        raise _signature_refused(exc) from None
    except ValueError:
        # only a stored key that is not a key gets here (registration checks it)
        _log.error("cabinet %r has an unusable public key in the database", cabinet_id)
        raise ApiError(401, "bad_signature", f"cabinet {cabinet_id!r} has no usable registered "
                       "key; register it again") from None
    if signed_by != cabinet_id:  # pragma: no cover - verify_request reads the same header
        raise ApiError(401, "cabinet_mismatch", "the signature is not the named cabinet's")
    return row


async def cabinet_request(request: Request) -> Row[Any]:
    """FastAPI dependency: the ``cabinets`` row of the registered, active cabinet that signed
    this request, or 401 with the reason as ``error``.

    Reasons: those of ``syncproto.signing`` (``missing_header``, ``malformed``,
    ``out_of_window``, ``bad_signature``, ``replayed``) plus ``unknown_cabinet`` and
    ``inactive_cabinet``. The body is read here (Starlette caches it, so the route can read
    it again); the database work runs in the thread pool, off the event loop.
    """
    body = await request.body()
    return await run_in_threadpool(_verify_cabinet, request, body)
