"""A staff desk for the console's accessibility tests: a real ``lendbox server run`` (SQLite)
with a simulated fleet's three days of signed sync traffic (lendbox.fleet), and a browser
logged in through the console's form. No kiosks: the pages only need the server's data, and
this starts in seconds where the full network takes twenty.

Fixtures only (imported by tests/screens/test_console_axe*.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from lendbox.fleet import Fleet, ServerRun, create_admin, init_db, login, push, register

ADMIN, PASSWORD = "desk-admin", "desk password 2026"
PAGES = [("fleet", "/console"), ("cabinet", "/console/cabinets/desk-C0001"),
         ("exceptions", "/console/exceptions?status=all"), ("restock", "/console/restock"),
         ("holds", "/console/holds"), ("recommendations", "/console/recommendations"),
         ("stats", "/console/stats"), ("annual", "/console/report/annual")]


@dataclass
class Desk:
    base: str
    page: Any


def _recommendation(db_url: str, reader_id: str) -> None:
    """A reader's 荐购 waiting for review (readers suggest from their phone or the kiosk)."""
    from server.db import make_engine, write_tx
    from server.feedback import create_recommendation

    engine = make_engine(db_url)
    try:
        with write_tx(engine) as conn:
            create_recommendation(conn, reader_id=reader_id, isbn="9787020002207", title="红楼梦",
                                  note="想借", now=datetime.now(UTC))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def desk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("console-desk")
    db_url = f"sqlite:///{tmp / 'server.db'}"
    init_db(db_url)
    create_admin(db_url, ADMIN, PASSWORD)
    server = ServerRun(db_url, log=tmp / "server.log").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            token = login(client, ADMIN, PASSWORD)
            fleet = Fleet(3, branches=2, items_per_cabinet=30, seed=5, prefix="desk",
                          start=(datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0))
            register(client, fleet, token, readers=12)
            fleet.simulate(3, events_per_day=(15, 25), cross_returns=0.3, outage=(1.0, 1.5))
            # one book lent twice without a return between: a double_loan in the queue
            first = fleet.cabinets[0]
            for reader in fleet.readers[:2]:
                first.append("loan", datetime.now(UTC), {
                    "item_id": f"{first.id}-0030", "reader_id": reader, "door": 1,
                    "session": f"desk-{reader}", "due": "2099-01-01"})
            for cab in fleet.cabinets:
                push(client, cab)
        _recommendation(db_url, fleet.readers[0])
        yield server.url.rstrip("/")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def desk(browser: Any, desk_server: str) -> Iterator[Desk]:
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    page = ctx.new_page()
    page.goto(f"{desk_server}/console/login")
    page.fill("#username", ADMIN)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(f"{desk_server}/console")
    try:
        yield Desk(desk_server, page)
    finally:
        ctx.close()
