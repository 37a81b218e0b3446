"""Shared pieces of the server benchmarks (``bench/server_*.py``); not a benchmark itself.

- :class:`Databases`: fresh databases of either kind for one run — SQLite files in a
  temporary folder, or databases in one throwaway PostgreSQL cluster (the tests' own
  ``PgCluster``: initdb on a free port, ``fsync=off``; stopped and deleted on exit, also
  after an error or Ctrl-C);
- :func:`served`: a migrated database with an operator, ``lendbox server run`` on it as a
  child process (``lendbox.fleet.ServerRun``, stopped by its pid) and a logged-in client;
- :func:`push_all`: a fleet's outboxes pushed by N concurrent pushers, with progress;
- :func:`event_rows` / :func:`raw_insert`: the rows ``server.ingest`` stores for those events,
  bulk-inserted with SQLAlchemy Core ``executemany`` (the baseline of the ingest benchmark).
"""

from __future__ import annotations

import contextlib
import queue
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.kiosk_common import machine_load  # noqa: E402
from lendbox.fleet import (  # noqa: E402
    Fleet,
    PushResult,
    ServerRun,
    SimCabinet,
    create_admin,
    init_db,
    login,
    push,
)

__all__ = ["Databases", "Served", "event_rows", "log_summary", "machine_load", "push_all",
           "raw_insert", "served"]

OPERATOR, PASSWORD = "bench-operator", "bench password 1234"


class Databases:
    """Fresh empty databases of one kind (``sqlite`` or ``postgresql``) for a benchmark run."""

    def __init__(self, kind: str) -> None:
        if kind not in ("sqlite", "postgresql"):
            raise ValueError(f"unknown database kind {kind!r}")
        self.kind = kind
        self.tmp = Path(tempfile.mkdtemp(prefix=f"lendbox-bench-{kind}-"))
        self.cluster: Any = None
        self.version = ""

    def __enter__(self) -> Databases:
        if self.kind == "postgresql":
            from tests.server.conftest import PgCluster, find_pg_bin

            bin_dir = find_pg_bin()
            if bin_dir is None:
                raise RuntimeError("PostgreSQL is not installed (/usr/lib/postgresql/*/bin)")
            self.cluster = PgCluster(bin_dir)
            try:
                self.cluster.start()
            except BaseException:
                self.cluster.stop()
                raise
            self.version = f"PostgreSQL {bin_dir.parent.name} (fsync=off, synchronous_commit=off)"
        else:
            import sqlite3

            self.version = f"SQLite {sqlite3.sqlite_version} (WAL, file in {self.tmp})"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)

    def fresh(self, name: str) -> str:
        """The URL of a new empty database."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp / (name + '.db')}"
        import psycopg

        db = f"{name}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.cluster.libpq_dsn(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{db}" ENCODING \'UTF8\'')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.cluster.port}/{db}"


@dataclass
class Served:
    server: ServerRun
    client: httpx.Client
    token: str
    url: str


@contextlib.contextmanager
def served(db_url: str, log: Path) -> Iterator[Served]:
    """``lendbox server init`` + ``create-admin`` on ``db_url``, ``lendbox server run`` on a
    free port, and a client logged in as the operator; the server is stopped on exit, and
    when the block fails the tail of the server's log is printed first (the why)."""
    init_db(db_url)
    create_admin(db_url, OPERATOR, PASSWORD)
    server = ServerRun(db_url, log=log)
    client: httpx.Client | None = None
    try:
        server.start()
        client = httpx.Client(base_url=server.url, timeout=300,
                              limits=httpx.Limits(max_connections=64))
        yield Served(server, client, login(client, OPERATOR, PASSWORD), db_url)
    except BaseException:
        if log.exists():
            print("server log (tail):\n" + log.read_text(errors="replace")[-3000:],
                  file=sys.stderr)
        raise
    finally:
        if client is not None:
            client.close()
        server.stop()


def log_summary(log: Path) -> str:
    """The server log's warnings, counted by message (e.g. the 503s' causes)."""
    from collections import Counter

    if not log.exists():
        return "no server log"
    counts: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if " WARNING " in line or " ERROR " in line:
            counts[line.split(": ", 1)[-1][:120]] += 1
    if not counts:
        return "server log: no warnings"
    return "server log: " + "; ".join(f"{n}× {msg}" for msg, n in counts.most_common(5))


def push_all(client: httpx.Client, cabinets: list[SimCabinet], *, pushers: int,
             batch_size: int = 500, progress_s: float = 0.0,
             on_progress: Callable[[float, int, int], None] | None = None
             ) -> tuple[float, list[PushResult]]:
    """Push every cabinet's outbox with ``pushers`` threads (each takes the next cabinet
    from a queue); (seconds, results). ``on_progress(elapsed, events acked, cabinets done)``
    every ``progress_s`` seconds when given."""
    todo: queue.Queue[SimCabinet] = queue.Queue()
    for cab in cabinets:
        todo.put(cab)
    results: list[PushResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        while not errors:
            try:
                cab = todo.get_nowait()
            except queue.Empty:
                return
            try:
                r = push(client, cab, batch_size)
            except BaseException as exc:
                errors.append(exc)
                return
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, name=f"pusher-{i}", daemon=True)
               for i in range(pushers)]
    for t in threads:
        t.start()
    next_report = t0 + progress_s
    while any(t.is_alive() for t in threads):
        time.sleep(0.05)
        now = time.perf_counter()
        if on_progress is not None and progress_s and now >= next_report:
            next_report = now + progress_s
            on_progress(now - t0, sum(c.acked for c in cabinets), len(results))
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return elapsed, results


def event_rows(fleet: Fleet, now: datetime | None = None) -> list[dict[str, Any]]:
    """The ``events`` rows the server stores for the fleet's events (as ingest builds them)."""
    now = now or datetime.now(UTC)
    rows = []
    for cab in fleet.cabinets:
        for e in cab.events:
            at = e.at.astimezone(UTC)
            item = e.payload.get("item_id")
            rows.append({"cabinet_id": cab.id, "seq": e.seq, "uuid": str(e.uuid),
                         "kind": e.kind, "at": at, "at_corrected": at, "mono": e.mono,
                         "boot_id": e.boot_id, "offline": e.offline, "payload": dict(e.payload),
                         "item_id": item if isinstance(item, str) else None,
                         "received_at": now, "applied": True})
    return rows


def raw_insert(db_url: str, fleet: Fleet, *, batch_size: int = 500) -> tuple[float, int]:
    """Migrate a fresh database, add the fleet's library/branches/cabinets, then time the
    bulk insert of its events rows: one ``executemany`` of ``batch_size`` rows per
    transaction (the sync's commit granularity). (seconds, rows)."""
    from sqlalchemy import insert

    from server.db import make_engine, write_tx
    from server.migrate import upgrade
    from server.schema import branches, cabinets, events, libraries

    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        now = datetime.now(UTC)
        with write_tx(engine) as conn:
            conn.execute(insert(libraries).values(isil=fleet.library, name="Fleet Library"))
            conn.execute(insert(branches), [{"id": b, "name": b, "library_isil": fleet.library,
                                             "floating": False} for b in fleet.branches])
            conn.execute(insert(cabinets), [{
                "id": c.id, "branch_id": c.branch_id, "name": c.id, "location": "",
                "public_key": c.public_key, "registered_at": now, "active": True,
                "applied_through": 0, "deny_version_sent": 0} for c in fleet.cabinets])
        rows = event_rows(fleet, now)
        t0 = time.perf_counter()
        for i in range(0, len(rows), batch_size):
            with write_tx(engine) as conn:
                conn.execute(insert(events), rows[i:i + batch_size])
        return time.perf_counter() - t0, len(rows)
    finally:
        engine.dispose()
