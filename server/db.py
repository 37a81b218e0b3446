"""Engines and transactions of the central service: SQLite for one branch, PostgreSQL for a network.

Why this module exists instead of bare ``create_engine``: the two databases need different
care to give the same guarantee — *one cabinet's batches are applied one after the other and
nothing is applied twice*.

- **SQLite** (a file; one server process, a small network): WAL so readers never block the
  writer, ``foreign_keys=ON`` (off by default in SQLite!), a ``busy_timeout`` so a writer waits
  instead of failing at once, and write transactions that start with ``BEGIN IMMEDIATE``. The
  sqlite3 driver's own transaction handling is switched off (SQLAlchemy's documented pysqlite
  recipe: ``isolation_level = None`` on the DBAPI connection and we emit BEGIN ourselves),
  because a deferred ``BEGIN`` that later tries to write can fail with "database is locked"
  *in the middle* of a batch, without waiting; ``BEGIN IMMEDIATE`` takes the write lock up
  front, so two writers simply serialise.
- **PostgreSQL** (``postgresql+psycopg://``; several server processes): ordinary READ
  COMMITTED transactions, and :func:`lock_cabinet` takes ``SELECT … FOR UPDATE`` on the
  cabinet row so two processes apply one cabinet's batches in turn.

Callers write with :func:`write_tx` and read with ``engine.connect()`` / ``engine.begin()``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Row, create_engine, event, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .schema import cabinets

__all__ = [
    "BUSY_TIMEOUT_MS", "DEFAULT_URL", "is_sqlite", "lock_cabinet", "make_engine",
    "normalize_url", "sqlite_path", "write_tx",
]

#: Where ``lendbox server init`` puts the database when neither ``--db`` nor
#: ``LENDBOX_DATABASE_URL`` says otherwise (relative to the working directory).
DEFAULT_URL = "sqlite:///var/lendbox-server.db"

#: How long a SQLite writer waits for the other writer before "database is locked". Batches
#: are small (milliseconds); 30 s only ever elapses when something is really stuck.
BUSY_TIMEOUT_MS = 30_000

# Execution option set by write_tx: the begin hook emits BEGIN IMMEDIATE for these.
_WRITE_OPTION = "lendbox_write_tx"


def _redact(url: str) -> str:
    """The URL as it may appear in an error message: the password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def normalize_url(url: str) -> URL:
    """Parse and check a database URL; ``ValueError`` (naming the URL) for what we do not run on.

    Accepted: ``sqlite:///path`` (a file; ``sqlite+pysqlite`` too) and
    ``postgresql+psycopg://…``; a bare ``postgresql://`` is taken to mean psycopg 3 (the only
    PostgreSQL driver we install) rather than SQLAlchemy's default psycopg2. In-memory SQLite
    is refused: every pooled connection would see its own empty database.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"database URL is empty: {url!r}")
    try:
        parsed = make_url(url.strip())
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {_redact(url)!r} ({exc})") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise ValueError(f"unsupported SQLite driver in {_redact(url)!r}: use sqlite:///PATH")
        if not parsed.database or parsed.database == ":memory:" or "mode=memory" in url:
            raise ValueError(f"in-memory SQLite is not supported: {_redact(url)!r}; "
                             "give a file, e.g. sqlite:///var/lendbox-server.db")
        return parsed
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            return parsed.set(drivername="postgresql+psycopg")
        if driver != "psycopg":
            raise ValueError(f"unsupported PostgreSQL driver {driver!r} in {_redact(url)!r}: "
                             "use postgresql+psycopg://USER@HOST/DB")
        return parsed
    raise ValueError(f"unsupported database URL {_redact(url)!r}: use sqlite:///PATH "
                     "or postgresql+psycopg://USER@HOST/DB")


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    """True for SQLite: the callers that must behave differently (few) ask this."""
    return engine_or_conn.dialect.name == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL), so the CLI can create its folder."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    return Path(parsed.database or "")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings the server's guarantees rely on (see module doc).

    ``kwargs`` go to ``create_engine`` (tests pass ``poolclass`` or ``echo``). A bad or
    unsupported URL raises ``ValueError`` naming it, before any connection is attempted.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)  # survive a PostgreSQL restart
    return create_engine(parsed, **kwargs)


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    connect_args = dict(kwargs.pop("connect_args", {}))
    # the pool hands a connection to one thread at a time; FastAPI runs handlers in threads
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", BUSY_TIMEOUT_MS / 1000)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take transaction control away from the sqlite3 module (it would not BEGIN before
        # SELECT or DDL, and cannot BEGIN IMMEDIATE); _on_begin emits BEGIN instead
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """One write transaction: committed when the block ends, rolled back as a whole if it raises.

    On SQLite it starts with ``BEGIN IMMEDIATE``: the write lock is taken at the start (waiting
    up to the busy timeout for another writer), so two writers serialise instead of one failing
    halfway with "database is locked". On PostgreSQL it is a plain transaction; use
    :func:`lock_cabinet` inside it to serialise per cabinet.
    """
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn


def lock_cabinet(conn: Connection, cabinet_id: str) -> Row[Any] | None:
    """The cabinet's row, locked until the transaction ends (None if there is no such cabinet).

    PostgreSQL: ``SELECT … FOR NO KEY UPDATE``, so a second server process applying a batch
    of the same cabinet waits here until the first commits, then reads the committed
    ``applied_through``. Not ``FOR UPDATE``: that would also block every foreign-key check
    naming this cabinet (another cabinet's batch placing an item here, ``FOR KEY SHARE``)
    while this batch waits for the item lock that other batch holds — a deadlock the ingest
    benchmark met (SQLSTATE 40P01). SQLite has no row locks (the clause is not rendered) and needs none:
    the ``BEGIN IMMEDIATE`` of :func:`write_tx` already admits one writer at a time. Calling
    it outside ``write_tx`` is a bug on both databases and raises ``RuntimeError``.
    """
    if not conn.get_execution_options().get(_WRITE_OPTION) or not conn.in_transaction():
        raise RuntimeError("lock_cabinet must be called inside write_tx(engine)")
    stmt = select(cabinets).where(cabinets.c.id == cabinet_id).with_for_update(key_share=True)
    return conn.execute(stmt).first()
