"""Schema migrations (Alembic) driven from code: ``upgrade(url)`` and ``current(url)``.

Why no ``alembic.ini``: the server is installed as a wheel and run as ``lendbox server
migrate``; the Alembic ``Config`` is built here, pointing at ``server/migrations`` inside the
package, so nothing has to be found in the working directory. A developer writing the next
revision can still use Alembic's API with :func:`alembic_config` (see docs in
``server/migrations/env.py``).

Both functions accept a URL or an existing :class:`~sqlalchemy.Engine` (the app has one).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from .db import make_engine, write_tx

__all__ = ["MIGRATIONS_DIR", "Upgrade", "alembic_config", "current", "head", "upgrade"]

#: The Alembic script directory shipped inside the package.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# pg_advisory_xact_lock key: "lendbox migrate" — two processes migrating at once take turns
_PG_MIGRATE_LOCK = 0x1E_4D_B0_C5


class Upgrade(NamedTuple):
    """What :func:`upgrade` did: the revision before and after (None = empty database)."""

    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for ``server/migrations``, built in code (no alembic.ini)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head() -> str | None:
    """The newest revision the installed code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _engine(url: str | Engine) -> tuple[Engine, bool]:
    if isinstance(url, Engine):
        return url, False
    return make_engine(url), True


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str | Engine, revision: str = "head") -> Upgrade:
    """Bring the database at ``url`` to ``revision`` (default: the newest), in one transaction.

    Idempotent: at the target already, it changes nothing. The whole run is one write
    transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL DDL is transactional too, plus an
    advisory lock), so concurrent ``init``/``migrate`` runs serialise and a failure leaves the
    database at its previous revision.
    """
    engine, own = _engine(url)
    try:
        with write_tx(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATE_LOCK})
            before = _revision(conn)
            command.upgrade(alembic_config(conn), revision)
            after = _revision(conn)
        return Upgrade(before, after)
    finally:
        if own:
            engine.dispose()


def current(url: str | Engine) -> str | None:
    """The database's revision (None for a database that was never migrated)."""
    engine, own = _engine(url)
    try:
        with engine.connect() as conn:
            return _revision(conn)
    finally:
        if own:
            engine.dispose()
