"""``lendbox.fleet``, the simulated fleet the fleet tests, benchmarks and the demo use.

What must hold for it to be a fair stand-in for real cabinets: each ledger is gap-free from
1 with time moving forward; a book is returned only after it was lent (at another cabinet
at least CROSS_MARGIN later); ``offline`` marks exactly the outage window; the same seed
gives the same events; and pushing it through the real app applies everything once, with
the items table ending where the fleet's own world says.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from lendbox.fleet import CROSS_MARGIN, Fleet, PushError, ServerRun, id_number, init_db, push, register
from server.app import create_app
from server.db import make_engine
from server.migrate import upgrade
from server.schema import events, items
from server.settings import Settings
from tests.server.test_security import add_staff, token_for

T0 = datetime(2030, 5, 6, 0, 0, tzinfo=UTC)


def test_ledgers_are_gap_free_causal_and_flag_the_outage() -> None:
    fleet = Fleet(8, seed=1, items_per_cabinet=20, start=T0)
    written = fleet.simulate(3, events_per_day=(20, 40), cross_returns=0.3, outage=(1.0, 2.0),
                             outage_cabinets=[fleet.cabinets[0].id])
    assert written == fleet.total_events
    assert 8 * 3 * 15 < written < 8 * 3 * 45
    lent: dict[str, tuple[str, datetime]] = {}
    kinds: Counter[str] = Counter()
    timeline = sorted(((e.at, c.id, e) for c in fleet.cabinets for e in c.events),
                      key=lambda x: (x[0], x[1], x[2].seq))
    for cab in fleet.cabinets:
        assert [e.seq for e in cab.events] == list(range(1, cab.last_seq + 1))
        assert all(a.at < b.at for a, b in zip(cab.events, cab.events[1:], strict=False))
        assert len({e.uuid for e in cab.events}) == cab.last_seq
    cross = 0
    for at, cab_id, ev in timeline:
        kinds[ev.kind] += 1
        if ev.kind == "loan":
            assert ev.payload["item_id"] not in lent
            assert ev.payload["reader_id"] and ev.payload["due"] > at.date().isoformat()
            lent[ev.payload["item_id"]] = (cab_id, at)
        elif ev.kind == "return":
            by, when = lent.pop(ev.payload["item_id"])
            assert ev.payload["owner_library"] == fleet.library
            if by != cab_id:
                cross += 1
                assert at - when > CROSS_MARGIN
        window = (T0 + timedelta(days=1), T0 + timedelta(days=2))
        assert ev.offline == (cab_id == fleet.cabinets[0].id and window[0] <= at < window[1])
    assert set(kinds) == {"session", "loan", "return", "alarm"} and cross > 0
    assert set(lent) == set(fleet.loaned)

    again = Fleet(8, seed=1, items_per_cabinet=20, start=T0)
    again.simulate(3, events_per_day=(20, 40), cross_returns=0.3, outage=(1.0, 2.0),
                   outage_cabinets=[again.cabinets[0].id])
    assert [e.model_dump(exclude={"cabinet_id"}) for e in again.cabinets[3].events] == \
        [e.model_dump(exclude={"cabinet_id"}) for e in fleet.cabinets[3].events]


def test_id_numbers_have_a_valid_check_digit() -> None:
    from server.credit import id_number_problem

    numbers = [id_number(n) for n in range(0, 10**7, 997)]
    assert all(id_number_problem(x) is None for x in numbers) and len(set(numbers)) == len(numbers)


@pytest.fixture
def sqlite_engine(sqlite_db_url: str) -> Iterator[Engine]:
    upgrade(sqlite_db_url)
    engine = make_engine(sqlite_db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def test_register_and_push_apply_everything_once(sqlite_engine: Engine) -> None:
    token = token_for(sqlite_engine, add_staff(sqlite_engine, "op", "operator"), datetime.now(UTC))
    app = create_app(Settings(database_url=str(sqlite_engine.url)), engine=sqlite_engine)
    fleet = Fleet(3, seed=2, items_per_cabinet=15)
    with TestClient(app) as client:
        register(client, fleet, token, readers=5)
        assert len(fleet.readers) == 5 and all(r.startswith("E") for r in fleet.readers)
        fleet.simulate(2, cross_returns=0.3)
        results = [push(client, cab, batch_size=17) for cab in fleet.cabinets]
        assert all(r.applied_through == c.last_seq == c.acked
                   for r, c in zip(results, fleet.cabinets, strict=True))
        assert results[0].requests == -(-fleet.cabinets[0].last_seq // 17)
        # again, from the start: everything is a duplicate, nothing changes
        before = _items(sqlite_engine)
        assert push(client, fleet.cabinets[0], batch_size=500, from_seq=0).applied_through \
            == fleet.cabinets[0].last_seq
        assert _items(sqlite_engine) == before
        # an unknown cabinet's push is refused for good, not retried forever
        stranger = Fleet(1, seed=9, prefix="stranger")
        stranger.simulate(0.5)
        with pytest.raises(PushError, match="401"):
            push(client, stranger.cabinets[0])
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(events.c.seq)).all().__len__() == fleet.total_events
    assert {i: r[:3] for i, r in before.items()} == fleet.expected_items()


def _items(engine: Engine) -> dict[str, tuple[object, ...]]:
    with engine.connect() as conn:
        return {r.id: (r.status, r.borrower_id, r.location_cabinet_id, r.due)
                for r in conn.execute(select(items))}


def test_server_run_is_a_child_stopped_by_its_pid(sqlite_db_url: str, tmp_path: Path) -> None:
    init_db(sqlite_db_url)
    srv = ServerRun(sqlite_db_url, log=tmp_path / "server.log").start()
    try:
        assert srv.url.startswith("http://127.0.0.1:")
        r = httpx.get(srv.url + "/api/me", timeout=5)
        assert r.status_code == 401
        assert (srv.peak_rss_kib() or 0) > 10_000
    finally:
        code = srv.stop()
    assert code == 0
    with pytest.raises(ProcessLookupError):
        os.kill(srv.pid, 0)
