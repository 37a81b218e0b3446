"""The cabinet's real sync agent against the real server: uvicorn on a free port, a real
ledger file, real signatures, a real database (SQLite file and private PostgreSQL).

What must hold (as tests/kiosk/test_sync.py asks of the stand-in): the outbox drains and is
acked; the server's deltas land in the ledger; re-sending never doubles anything; and —
what the stand-in could not show — a server restart at any moment loses nothing the server
acknowledged and doubles nothing the cabinet sends again.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, insert, select, update

from kiosk.ledger import Ledger, NewEvent
from kiosk.sync import SyncAgent
from lendbox.serve import serve_in_thread
from server import ingest, keys
from server.app import create_app
from server.db import make_engine, write_tx
from server.schema import cabinets, deny_list, events, items
from server.settings import Settings
from syncproto import grants, signing
from syncproto.messages import ReaderQuery
from tests.server.test_ingest import CAB, CAB_PRIVATE, OTHER, add_reader, setup_network

_THREAD = "lendbox-server:"


class ServerProcess:
    """The server app served by uvicorn in a thread, on one port across restarts.

    A "restart" is what a real one is to the cabinet and the database: the listener goes
    away, the engine (every pooled connection) is disposed, and a new app with a new engine
    on the same database comes up on the same port.
    """

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.port = 0
        self.engine: Engine | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _app(self, engine: Engine) -> FastAPI:
        return create_app(Settings(database_url=self.db_url), engine=engine)

    def start(self) -> ServerProcess:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self.engine = make_engine(self.db_url)
        server, thread = serve_in_thread(self._app(self.engine), sock, lifespan="on",
                                         name=f"{_THREAD}{self.port}")
        self._server, self._thread, self._sock = server, thread, sock
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(5)
            if thread.is_alive():
                server.force_exit = True
                thread.join(2)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith((_THREAD, "sync:"))
            and t.is_alive()]


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    yield
    assert _threads() == []


@pytest.fixture
def server(engine: Engine, db_url: str) -> Iterator[ServerProcess]:
    """A migrated database with a network and cabinet CAB, served on a free port."""
    setup_network(engine)
    with write_tx(engine) as conn:
        keys.ensure_key(conn, datetime.now(UTC))
    srv = ServerProcess(db_url).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "ledger.sqlite", CAB) as led:
        yield led


@pytest.fixture
def make_agent(server: ServerProcess, ledger: Ledger) -> Iterator[Callable[..., SyncAgent]]:
    made: list[SyncAgent] = []

    def make(**kw: Any) -> SyncAgent:
        args: dict[str, Any] = dict(cabinet_id=CAB, server_url=server.url,
                                    private_key=CAB_PRIVATE, interval_s=0.2,
                                    backoff=(0.05, 0.2), timeout_s=5.0,
                                    resolve_timeout_s=5.0)
        args.update(kw)
        agent = SyncAgent(args.pop("ledger", ledger), **args)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.close()


def circulate(ledger: Ledger, n: int, reader_id: str = "R1") -> list[int]:
    """n events: loans of new items, every third one the return of the loan before it."""
    new: list[NewEvent] = []
    base = ledger.last_seq()
    for k in range(base, base + n):
        if k % 3 == 2:
            new.append(NewEvent("return", {"item_id": f"I{k - 1:05d}", "owner_library": "CN-440300",
                                           "door": 1, "session": "s"}))
        else:
            new.append(NewEvent("loan", {"item_id": f"I{k:05d}", "reader_id": reader_id,
                                         "due": "2030-01-01", "door": 1, "session": "s"}))
    return ledger.append(new)


def server_events(engine: Engine) -> list[tuple[int, str, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(select(events.c.seq, events.c.uuid, events.c.applied)
                            .where(events.c.cabinet_id == CAB).order_by(events.c.seq)).all()
    return [(r.seq, r.uuid, r.applied) for r in rows]


def ledger_events(ledger: Ledger) -> list[tuple[int, str, bool]]:
    return [(e.seq, str(e.uuid), True) for e in ledger.events_after(0, limit=100_000)]


def reset_ack(ledger: Ledger) -> None:
    """The cabinet lost its ack (a crash between reply and commit): it will send it all again."""
    with sqlite3.connect(ledger.path) as conn:
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'acked_through'")
    assert ledger.acked_through() == 0


# ---------------------------------------------------------------------- the outbox


def test_the_outbox_drains_into_the_database(make_agent: Callable[..., SyncAgent],
                                             ledger: Ledger, engine: Engine) -> None:
    seqs = circulate(ledger, 537)  # two batches

    outcome = make_agent().sync_once()

    assert outcome.ok, outcome.error
    assert outcome.sent == 537 and outcome.applied_through == seqs[-1] == ledger.acked_through()
    assert server_events(engine) == ledger_events(ledger)
    with engine.connect() as conn:
        loaned = conn.execute(select(items.c.id).where(items.c.status == "loaned")).all()
        row = conn.execute(select(cabinets).where(cabinets.c.id == CAB)).one()
    assert len(loaned) == 537 - 2 * (537 // 3)  # loans minus the returns
    assert row.applied_through == 537 and abs(row.clock_offset_s) < 5


def test_resending_after_a_lost_ack_changes_nothing(make_agent: Callable[..., SyncAgent],
                                                    ledger: Ledger, engine: Engine) -> None:
    circulate(ledger, 40)
    agent = make_agent()
    assert agent.sync_once().ok
    before = server_events(engine)
    with engine.connect() as conn:
        items_before = conn.execute(select(items).order_by(items.c.id)).all()

    reset_ack(ledger)
    again = agent.sync_once()

    assert again.ok and again.sent == 40 and ledger.acked_through() == 40
    assert server_events(engine) == before
    with engine.connect() as conn:
        assert conn.execute(select(items).order_by(items.c.id)).all() == items_before


def test_deltas_land_in_the_ledger(make_agent: Callable[..., SyncAgent], ledger: Ledger,
                                   engine: Engine, server: ServerProcess) -> None:
    add_reader(engine, "R4", card="CARD-4")
    with write_tx(engine) as conn:
        conn.execute(insert(items).values(id="B1", title="围城", author="钱锺书", category="I",
                                          owner_library="CN-440300", status="in_cabinet",
                                          location_cabinet_id=CAB, version=1))
        conn.execute(insert(deny_list).values(reader_id="R2", denied=True, reason="lost card",
                                              at=datetime.now(UTC)))
    agent = make_agent()
    resolved = agent.resolve_reader(ReaderQuery(cabinet_id=CAB, card_hash=grants.card_hash("CARD-4")))
    assert resolved is not None and resolved.status == "ok" and resolved.grant is not None
    assert ledger.grant("R4") is None  # resolve caches nothing itself: the sync brings it
    circulate(ledger, 1, reader_id="R1")

    assert agent.sync_once().ok

    trusted = ledger.trusted_keys()
    with engine.connect() as conn:
        assert trusted == keys.trusted(conn)
    for rid in ("R4",):
        grant = ledger.grant(rid)
        assert grant is not None and grant.grant_id == resolved.grant.grant_id
        grants.verify_grant(grant, trusted, datetime.now(UTC))
    assert ledger.denied("R2") and not ledger.denied("R1") and ledger.deny_version() == 1
    item = ledger.item("B1")
    assert item is not None and item.title == "围城"
    assert ledger.holds() == []

    # Later changes arrive as deltas on top; a rotation keeps the old key trusted.
    with write_tx(engine) as conn:
        conn.execute(insert(deny_list).values(reader_id="R2", denied=False, at=datetime.now(UTC)))
        conn.execute(update(items).where(items.c.id == "B1").values(title="围城 (2版)", version=50))
        new_key = keys.rotate(conn, datetime.now(UTC))
    assert agent.sync_once().ok
    assert not ledger.denied("R2") and ledger.deny_version() == 2
    item = ledger.item("B1")
    assert item is not None and item.title == "围城 (2版)" and ledger.items_version() == 50
    assert new_key in ledger.trusted_keys() and set(trusted) < set(ledger.trusted_keys())
    grant = ledger.grant("R4")
    assert grant is not None
    grants.verify_grant(grant, ledger.trusted_keys(), datetime.now(UTC))


def test_resolve_statuses_over_http(make_agent: Callable[..., SyncAgent], engine: Engine) -> None:
    add_reader(engine, "X1", status="blocked")
    agent = make_agent()
    ok = agent.resolve_reader(ReaderQuery(cabinet_id=CAB, reader_id="R2"))
    assert ok is not None and ok.status == "ok" and ok.grant is not None
    assert (ok.grant.max_loans, ok.grant.offline_allowance) == (15, 4)
    blocked = agent.resolve_reader(ReaderQuery(cabinet_id=CAB, reader_id="X1"))
    assert blocked is not None and blocked.status == "blocked" and blocked.grant is None
    unknown = agent.resolve_reader(ReaderQuery(cabinet_id=CAB, card_hash="0" * 64))
    assert unknown is not None and unknown.status == "unknown"


def test_refusals_are_json_with_server_time(server: ServerProcess) -> None:
    def post(path: str, payload: Any, cabinet_id: str = CAB, sign: bool = True) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"content-type": "application/json"}
        if sign:
            headers.update(signing.sign_request("POST", path, body, cabinet_id=cabinet_id,
                                                private_key=CAB_PRIVATE, now=datetime.now(UTC)))
        return httpx.post(server.url + path, content=body, headers=headers, timeout=5)

    now = datetime.now(UTC).isoformat()
    cases = [
        (post("/v1/sync", {}, sign=False), 401, "missing_header"),
        (post("/v1/sync", {"cabinet_id": CAB}), 422, "invalid_request"),
        (post("/v1/sync", b"{not json"), 422, "invalid_json"),
        (post("/v1/sync", {"version": 2, "cabinet_id": CAB}), 400, "unsupported_version"),
        (post("/v1/sync", {"cabinet_id": OTHER, "sent_at": now}), 403, "cabinet_mismatch"),
        (post("/v1/sync", {"cabinet_id": CAB, "sent_at": now, "events": [{
            "cabinet_id": OTHER, "seq": 1, "uuid": "6f1b5c1e-0000-4000-8000-000000000001",
            "kind": "session", "at": now, "mono": 1.0, "boot_id": "b"}]}), 403,
         "cabinet_mismatch"),
        (post("/v1/readers/resolve", {"cabinet_id": OTHER, "reader_id": "R1"}), 403,
         "cabinet_mismatch"),
        (post("/v1/readers/resolve", {"cabinet_id": CAB}), 422, "invalid_request"),
        (post("/v1/readers/resolve", {"cabinet_id": CAB, "reader_id": "R1"},
              cabinet_id="nobody"), 401, "unknown_cabinet"),
    ]
    for response, status, error in cases:
        assert (response.status_code, response.json()["error"]) == (status, error), response.text
        datetime.fromisoformat(response.json()["server_time"])
    assert "sent_at" in cases[1][0].json()["detail"]

    body = json.dumps({"cabinet_id": CAB, "sent_at": now}).encode()
    headers = {"content-type": "application/json", **signing.sign_request(
        "POST", "/v1/sync", body, cabinet_id=CAB, private_key=CAB_PRIVATE, now=datetime.now(UTC))}
    assert httpx.post(server.url + "/v1/sync", content=body, headers=headers).status_code == 200
    replay = httpx.post(server.url + "/v1/sync", content=body, headers=headers)
    assert (replay.status_code, replay.json()["error"]) == (401, "replayed")


def test_a_deactivated_cabinet_is_refused(make_agent: Callable[..., SyncAgent], ledger: Ledger,
                                          engine: Engine) -> None:
    circulate(ledger, 3)
    with write_tx(engine) as conn:
        conn.execute(update(cabinets).where(cabinets.c.id == CAB).values(active=False))
    outcome = make_agent().sync_once()
    assert not outcome.ok and outcome.error is not None and "401" in outcome.error
    assert server_events(engine) == []


# ---------------------------------------------------------------------- durability


class LoseReplies(httpx.BaseTransport):
    """Real HTTP, but the replies of the next ``n`` sync requests are lost after the server
    answered them (committed): the cabinet sees a network error."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.lose = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        response.read()
        if self.lose and request.url.path == "/v1/sync" and response.status_code == 200:
            self.lose -= 1
            raise httpx.ReadError("reply lost", request=request)
        return response

    def close(self) -> None:
        self._inner.close()


def test_a_restart_loses_nothing_and_doubles_nothing(make_agent: Callable[..., SyncAgent],
                                                     ledger: Ledger, server: ServerProcess,
                                                     engine: Engine) -> None:
    transport = LoseReplies()
    agent = make_agent(transport=transport)
    circulate(ledger, 30)
    assert agent.sync_once().ok

    # The server applies the next batch, the reply is lost, the server restarts.
    circulate(ledger, 30)
    transport.lose = 1
    assert not agent.sync_once().ok
    assert ledger.acked_through() == 30  # the cabinet does not know it was applied
    server.restart()
    assert server.engine is not None and server_events(server.engine)[-1][0] == 60  # durable

    # While the server is down, the cabinet keeps lending (and fails to sync).
    server.stop()
    circulate(ledger, 30)
    assert not agent.sync_once().ok
    server.start()

    outcome = agent.sync_once()
    assert outcome.ok, outcome.error
    assert outcome.sent == 60  # 31..90: the ones it did not know were applied, and the new
    assert ledger.acked_through() == 90
    assert server_events(server.engine) == ledger_events(ledger)
    with server.engine.connect() as conn:
        versions = [r.version for r in conn.execute(select(items.c.version))]
    # one version per applied loan/return, none applied twice
    assert max(versions) == 90 and len(set(versions)) == len(versions)
    transport.close()


def test_background_sync_through_restarts(make_agent: Callable[..., SyncAgent], ledger: Ledger,
                                          server: ServerProcess) -> None:
    """The agent's own thread keeps syncing while the cabinet lends and the server goes away
    twice: in the end every event is on the server exactly once."""
    agent = make_agent()
    agent.start()
    try:
        for round_ in range(3):
            for _ in range(5):
                circulate(ledger, 7)
                agent.kick()
                time.sleep(0.02)
            if round_ < 2:
                server.restart()
        deadline = time.monotonic() + 15
        while ledger.acked_through() < ledger.last_seq() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        agent.stop()
    assert ledger.acked_through() == ledger.last_seq() == 105
    assert server.engine is not None
    assert server_events(server.engine) == ledger_events(ledger)


def test_a_skewed_cabinets_events_land_on_server_time(tmp_path: Path, server: ServerProcess,
                                                      make_agent: Callable[..., SyncAgent]) -> None:
    def skewed() -> float:
        return time.time() + 120.0  # inside the signature window: no 401 round

    with Ledger(tmp_path / "skewed.sqlite", CAB, clock=skewed) as led:
        agent = make_agent(ledger=led, clock=skewed)
        for _ in range(2):  # before and after the agent has learnt its offset
            circulate(led, 1)
            assert agent.sync_once().ok
        assert server.engine is not None
        with server.engine.connect() as conn:
            rows = conn.execute(select(events.c.seq, events.c.at_corrected)
                                .order_by(events.c.seq)).all()
    for row in rows:
        at = ingest._from_db(row.at_corrected)
        assert abs(at - datetime.now(UTC)) < timedelta(seconds=10), (row.seq, at)


# ---------------------------------------------------------------------- inventory snapshots


def test_door_contents_reach_the_server_when_they_change(make_agent: Callable[..., SyncAgent],
                                                        ledger: Ledger, engine: Engine) -> None:
    from kiosk.machine import Content
    from server.schema import door_snapshots

    def stored() -> dict[int, tuple[list[str], int, Any]]:
        with engine.connect() as conn:
            rows = conn.execute(select(door_snapshots).where(
                door_snapshots.c.cabinet_id == CAB)).all()
        return {r.door: (sorted(i["item_id"] for i in r.items), r.unreadable, r.received_at)
                for r in rows}

    ledger.set_baseline(1, {"u1": Content("u1", "I1", "CN-440300"),
                            "u2": Content("u2", None, None)})
    ledger.set_baseline(2, {})
    agent = make_agent()
    assert agent.sync_once().ok
    first = stored()
    assert {d: v[:2] for d, v in first.items()} == {1: (["I1"], 1), 2: ([], 0)}

    assert agent.sync_once().ok  # nothing changed: nothing re-sent
    assert stored() == first

    ledger.set_baseline(2, {"u3": Content("u3", "I3", "CN-440300")})
    assert agent.sync_once().ok
    now = stored()
    assert now[1] == first[1] and now[2][:2] == (["I3"], 0)
