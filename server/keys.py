"""The server's Ed25519 signing keys (grants, QR tokens), kept in ``server_keys``.

Why a table and a rotation rule rather than one key in a config file: cabinets lend offline
on grants they may have cached days ago, so a key cannot simply be replaced — grants signed
with it would stop verifying at every cabinet at once. A rotation therefore retires the
current key (it stops signing) but keeps it *trusted* until the next rotation: cabinets
receive ``trusted`` with every sync reply, and a grant lives shorter than the interval
between two rotations is expected to be.

"Current" is the newest key that is not retired. Should two server processes ever both
create a first key at the same moment (two current keys), both stay trusted and the newest
signs, so nothing they signed is orphaned; the next rotation retires both.

The private halves are stored as they are (base64url): whoever can read the database can
sign grants. Encrypting them at rest is future work (see the report of this slice).
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Connection, select, update

from syncproto.grants import generate_keypair

from .schema import server_keys

__all__ = ["ensure_key", "rotate", "signing_key", "trusted"]


def _aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _current_ids(conn: Connection) -> list[str]:
    """Ids of the keys not retired, newest first."""
    rows = conn.execute(
        select(server_keys.c.key_id).where(server_keys.c.retired_at.is_(None))
        .order_by(server_keys.c.created_at.desc(), server_keys.c.key_id.desc())
    ).all()
    return [r.key_id for r in rows]


def _create(conn: Connection, now: datetime) -> str:
    private, public = generate_keypair()
    # Date for people reading a cabinet's trusted keys; random part so ids never collide.
    key_id = f"k{now:%Y%m%d}-{secrets.token_hex(4)}"
    conn.execute(server_keys.insert().values(key_id=key_id, private_key=private,
                                             public_key=public, created_at=now, retired_at=None))
    return key_id


def ensure_key(conn: Connection, now: datetime) -> str:
    """The current key's id, creating the first key if there is none.

    Called by ``lendbox server init`` and, defensively, before anything is signed: a
    server must never answer a cabinet with a grant it cannot sign.
    """
    _aware(now)
    current = _current_ids(conn)
    return current[0] if current else _create(conn, now)


def rotate(conn: Connection, now: datetime) -> str:
    """Retire the current key(s) and create a new one; returns the new key id.

    The retired key stays trusted until the next rotation, so grants already handed out
    keep verifying at cabinets that sync in the meantime.
    """
    _aware(now)
    conn.execute(update(server_keys).where(server_keys.c.retired_at.is_(None))
                 .values(retired_at=now))
    return _create(conn, now)


def trusted(conn: Connection) -> dict[str, str]:
    """key_id → public key of every key a cabinet must accept: the current one(s) and the
    most recently retired one."""
    current = conn.execute(
        select(server_keys.c.key_id, server_keys.c.public_key)
        .where(server_keys.c.retired_at.is_(None))).all()
    previous = conn.execute(
        select(server_keys.c.key_id, server_keys.c.public_key)
        .where(server_keys.c.retired_at.is_not(None))
        .order_by(server_keys.c.retired_at.desc(), server_keys.c.created_at.desc(),
                  server_keys.c.key_id.desc())
        .limit(1)).all()
    return {r.key_id: r.public_key for r in [*current, *previous]}


def signing_key(conn: Connection) -> tuple[str, str]:
    """(key_id, private key) to sign with now: the newest key not retired.

    Raises LookupError when the server has no key yet (call :func:`ensure_key` first; the
    server's ``init`` creates one).
    """
    row = conn.execute(
        select(server_keys.c.key_id, server_keys.c.private_key)
        .where(server_keys.c.retired_at.is_(None))
        .order_by(server_keys.c.created_at.desc(), server_keys.c.key_id.desc())
        .limit(1)).first()
    if row is None:
        raise LookupError("the server has no signing key: run `lendbox server init`")
    return row.key_id, row.private_key
