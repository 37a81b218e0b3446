"""Two real ``lendbox server run`` processes on one PostgreSQL database, fed by a simulated
fleet at once — some cabinets sending the *same* batches to both servers concurrently (a
cabinet retrying through a load balancer), others only to one, one alternating.

What must hold: every (cabinet, seq) is stored exactly once and applied; every cabinet's
``applied_through`` is its last seq; no conflict or duplicate lands in the exceptions queue;
and the ``items`` table is what one in-order delivery of the same events into a fresh
SQLite database gives (and what the fleet's own world says). PostgreSQL only: SQLite's
single writer cannot be shared by two processes in the way that matters here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, insert, select

from lendbox.fleet import Fleet, ServerRun, SimCabinet, push, register
from server import ingest
from server.db import lock_cabinet, make_engine, write_tx
from server.migrate import upgrade
from server.schema import branches, cabinets, events, exceptions, items, libraries, readers
from tests.server.test_security import add_staff, token_for

CABINETS = 6
BATCH = 25


class RoundRobin:
    """One cabinet behind a load balancer: each request goes to the next server."""

    def __init__(self, clients: list[httpx.Client]) -> None:
        self.clients = clients
        self._n = 0
        self._lock = threading.Lock()

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        with self._lock:
            client = self.clients[self._n % len(self.clients)]
            self._n += 1
        return client.post(url, **kwargs)


@pytest.fixture
def two_servers(pg_db_url: str, tmp_path: Path) -> Iterator[list[ServerRun]]:
    upgrade(pg_db_url)
    servers = [ServerRun(pg_db_url, log=tmp_path / f"server-{i}.log") for i in range(2)]
    try:
        for srv in servers:
            srv.start()
        yield servers
    finally:
        for srv in servers:
            srv.stop()  # by its pid: SIGTERM, then SIGKILL


def item_rows(engine: Engine) -> dict[str, tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(select(items.c.id, items.c.status, items.c.borrower_id,
                                   items.c.location_cabinet_id, items.c.due)).all()
    return {r.id: (r.status, r.borrower_id, r.location_cabinet_id, r.due) for r in rows}


def deliver_in_order(source: Engine, url: str, fleet: Fleet) -> Engine:
    """A fresh SQLite database with the source's network and readers, fed every cabinet's
    events once, in seq order, through ``ingest.apply_batch`` (what /v1/sync does)."""
    upgrade(url)
    ref = make_engine(url)
    with source.connect() as src, write_tx(ref) as dst:
        for table in (libraries, branches, readers, cabinets):
            rows = [dict(r._mapping) for r in src.execute(select(table))]
            if table is cabinets:
                for r in rows:
                    r.update(applied_through=0, last_sync_at=None, clock_offset_s=None)
            if rows:
                dst.execute(insert(table), rows)
    for cab in fleet.cabinets:
        for start in range(0, cab.last_seq, 500):
            now = datetime.now(UTC)
            with write_tx(ref) as conn:
                row = lock_cabinet(conn, cab.id)
                assert row is not None
                reply = ingest.apply_batch(conn, row, cab.batch(cab.events[start:start + 500], now),
                                           now)
            assert reply.applied_through == min(cab.last_seq, start + 500)
    return ref


def test_two_servers_on_one_database_store_each_event_once(two_servers: list[ServerRun],
                                                          pg_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(pg_db_url)
    clients = [httpx.Client(base_url=srv.url, timeout=60) for srv in two_servers]
    try:
        staff_id = add_staff(engine, "fleet-operator", "operator")
        token = token_for(engine, staff_id, datetime.now(UTC))
        fleet = Fleet(CABINETS, seed=6, items_per_cabinet=25, branches=2)
        register(clients[0], fleet, token, readers=12)
        fleet.simulate(3, events_per_day=(30, 50), cross_returns=0.3, outage=(1.0, 2.0),
                       outage_cabinets=[c.id for c in fleet.cabinets[::2]])
        assert fleet.total_events > 600

        # cabinets 1-3: the same outbox to both servers at once (different batch sizes, so
        # the duplicates overlap unevenly); 4 → server 0 only; 5 → server 1 only;
        # 6 → alternating, batch by batch.
        jobs: list[tuple[Any, SimCabinet, int]] = []
        for cab in fleet.cabinets[:3]:
            jobs += [(clients[0], cab, BATCH), (clients[1], cab, BATCH + 15)]
        jobs += [(clients[0], fleet.cabinets[3], BATCH), (clients[1], fleet.cabinets[4], BATCH),
                 (RoundRobin(clients), fleet.cabinets[5], BATCH)]
        start = threading.Barrier(len(jobs))
        failures: list[BaseException] = []
        retries = [0]

        def run(client: Any, cab: SimCabinet, size: int) -> None:
            try:
                start.wait(10)
                result = push(client, cab, size, from_seq=0)
                retries[0] += result.retries
            except BaseException as exc:  # reported below, with the servers' logs
                failures.append(exc)

        threads = [threading.Thread(target=run, args=job, name=f"push:{job[1].id}")
                   for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        logs = "\n".join(p.read_text(errors="replace")[-3000:]
                         for p in sorted(tmp_path.glob("server-*.log")))
        assert failures == [], f"{failures!r}\n{logs}"

        # Each (cabinet, seq) once, the cabinet's own uuid, applied; applied_through = last.
        with engine.connect() as conn:
            stored = conn.execute(select(events.c.cabinet_id, events.c.seq, events.c.uuid,
                                         events.c.applied)).all()
            through = dict(conn.execute(select(cabinets.c.id, cabinets.c.applied_through)).all())
            doubled = conn.execute(select(events.c.cabinet_id, events.c.seq, func.count())
                                   .group_by(events.c.cabinet_id, events.c.seq)
                                   .having(func.count() > 1)).all()
            queued = conn.execute(select(exceptions.c.kind, exceptions.c.item_id,
                                         exceptions.c.evidence)).all()
        assert doubled == []
        expected = {(c.id, e.seq, str(e.uuid)) for c in fleet.cabinets for e in c.events}
        assert len(stored) == len(expected) == fleet.total_events
        assert {(r.cabinet_id, r.seq, r.uuid) for r in stored} == expected
        assert all(r.applied for r in stored)
        assert through == {c.id: c.last_seq for c in fleet.cabinets}
        assert all(c.acked == c.last_seq for c in fleet.cabinets)
        assert [(q.kind, q.item_id) for q in queued] == [], queued

        # The same items as one in-order delivery into a fresh SQLite database, and as the
        # simulated world says (status, borrower, cabinet).
        ref = deliver_in_order(engine, f"sqlite:///{tmp_path / 'reference.db'}", fleet)
        try:
            ours, theirs = item_rows(engine), item_rows(ref)
        finally:
            ref.dispose()
        assert ours == theirs
        world = fleet.expected_items()
        assert {i: r[:3] for i, r in ours.items()} == world
        assert sum(1 for r in ours.values() if r[0] == "loaned") == len(fleet.loaned) > 0
    finally:
        for client in clients:
            client.close()
        engine.dispose()
