"""Forwarding the cabinets' circulation to the ILS: the wiring (server.ils_service, issue 7).

What must hold: every applied loan and return is queued once in the outbox by ingest, whatever
the cabinet re-sends; the background service drains the outbox into a real SIP2 server (the
emulator, in-process) so that its journal shows each applied exactly once — also when the
emulator is killed while a request is in flight and started again on the same port with its
state file; staff see the reconciliation at ``GET /api/ils/outbox``; ``lendbox server run``
with ``LENDBOX_ILS_*`` forwards by itself.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from server import ils_outbox
from server.db import write_tx
from server.ils_service import IlsService
from server.schema import ils_outbox as outbox
from server.settings import Settings
from simulator.ils_sim import IlsSim
from tests.server.test_ingest import (
    add_reader,
    batch_of,
    loan,
    make_event,
    ret,
    send,
    setup_network,
)
from tests.server.test_security import Clock, add_staff, bearer, make_app, seed_network, token_for

READERS = ["R0012345", "R0023456", "R0045678"]
ITEMS = [f"39010000{n:05d}" for n in range(10, 16)]
ROOT = Path(__file__).resolve().parents[2]


def wait_for(what: Callable[[], bool], timeout: float = 15.0, why: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {why or what}")


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return ils_outbox.counts(conn)


def ils_settings(sim: IlsSim, **kw: Any) -> Settings:
    values: dict[str, Any] = dict(ils_host=sim.host, ils_port=sim.port, ils_user="lendbox",
                                  ils_password="lendbox", ils_institution="LENDBOX",
                                  ils_location="sz-city", ils_interval_s=0.1)
    values.update(kw)
    return Settings(**values)


def network(engine: Engine) -> None:
    setup_network(engine)
    for rid in READERS:
        add_reader(engine, rid)


# ----------------------------------------------------------------------------- settings


def test_ils_settings_come_from_the_environment() -> None:
    assert not Settings.from_env({}).ils_configured
    s = Settings.from_env({"LENDBOX_ILS_HOST": "ils.example.org", "LENDBOX_ILS_PORT": "6011",
                           "LENDBOX_ILS_USER": "sc", "LENDBOX_ILS_PASSWORD": "pw",
                           "LENDBOX_ILS_PROFILE": "koha", "LENDBOX_ILS_INSTITUTION": "CN-1",
                           "LENDBOX_ILS_LOCATION": "main", "LENDBOX_ILS_INTERVAL_S": "0.5"})
    assert s.ils_configured
    assert (s.ils_host, s.ils_port, s.ils_user, s.ils_password, s.ils_profile,
            s.ils_institution, s.ils_location, s.ils_interval_s) == (
        "ils.example.org", 6011, "sc", "pw", "koha", "CN-1", "main", 0.5)
    with pytest.raises(ValueError, match="ils_profile"):
        Settings.from_env({"LENDBOX_ILS_PROFILE": "nosuch"})
    with pytest.raises(ValueError, match="LENDBOX_ILS_PORT"):
        Settings.from_env({"LENDBOX_ILS_PORT": "six"})
    with pytest.raises(ValueError, match="ils_interval_s"):
        Settings.from_env({"LENDBOX_ILS_INTERVAL_S": "0"})
    with pytest.raises(ValueError, match="no ILS"):
        IlsService(None, Settings())  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- ingest


def test_a_sync_batch_queues_each_loan_and_return_once(engine: Engine) -> None:
    network(engine)
    evs = [loan(1, ITEMS[0], READERS[0]), loan(2, ITEMS[1], READERS[1]), make_event(3),
           ret(4, ITEMS[0]), loan(5, ITEMS[0], READERS[2])]
    send(engine, batch_of(evs))
    assert counts(engine) == {"pending": 4}
    with engine.connect() as conn:
        rows = conn.execute(select(outbox).order_by(outbox.c.transaction_at)).all()
    assert [(r.kind, r.item_id, r.reader_id, r.due, r.source) for r in rows] == [
        ("checkout", ITEMS[0], READERS[0], "2030-04-01", str(evs[0].uuid)),
        ("checkout", ITEMS[1], READERS[1], "2030-04-01", str(evs[1].uuid)),
        ("checkin", ITEMS[0], None, None, str(evs[3].uuid)),
        ("checkout", ITEMS[0], READERS[2], "2030-04-01", str(evs[4].uuid))]
    assert all(r.cabinet_id == "cab-0001" and r.transaction_at == e.at
               for r, e in zip(rows, [evs[0], evs[1], evs[3], evs[4]], strict=True))

    for again in (evs, evs[1:3], list(reversed(evs)) + evs):  # re-sent, replayed, shuffled
        send(engine, batch_of(again))
    assert counts(engine) == {"pending": 4}
    send(engine, batch_of([ret(6, ITEMS[1])] * 2))
    assert counts(engine) == {"pending": 5}


# ----------------------------------------------------------------------------- the service


def test_the_service_drains_into_the_emulator_once_across_its_restart(
        engine: Engine, tmp_path: Path) -> None:
    network(engine)
    state = tmp_path / "ils-state.json"
    sim = IlsSim(profile="generic", state_path=state).start()
    port = sim.port
    first = [loan(n + 1, item, READERS[n % 3]) for n, item in enumerate(ITEMS[:4])]
    later = [ret(5, ITEMS[0]), ret(6, ITEMS[1]), loan(7, ITEMS[4], READERS[0]),
             loan(8, ITEMS[5], READERS[1])]
    service = IlsService(engine, ils_settings(sim)).start()
    sim2: IlsSim | None = None
    try:
        send(engine, batch_of(first))
        wait_for(lambda: counts(engine) == {"confirmed": 4}, why="the first batch confirmed")

        # the next checkin is applied and saved, its answer held back; the emulator dies then
        sim.set_faults(delay_s=30.0, delay=1, codes=["09"])
        send(engine, batch_of(first + later))
        wait_for(lambda: sim.faults()["fired"].get("delay") == 1, why="the held answer")
        sim.stop()
        wait_for(lambda: service.totals.get("lost", 0) >= 1, why="the lost answer")
        wait_for(lambda: service.totals.get("unreachable", 0) >= 2, why="passes while down")
        # uncertain until the ILS can be asked: the held checkin, and any row whose request
        # met the closed port after being marked sent (the forwarder looks those up too)
        assert counts(engine).get("sent", 0) >= 1

        sim2 = IlsSim(profile="generic", state_path=state, port=port).start()
        wait_for(lambda: counts(engine) == {"confirmed": 8}, why="all confirmed")
        journal = sim2.journal()
    finally:
        service.stop()
        sim.stop()
        if sim2 is not None:
            sim2.stop()
    assert not service.running
    assert Counter((j["op"], j["item_id"]) for j in journal) == Counter(
        [("checkout", e.payload["item_id"]) for e in first + later if e.kind == "loan"]
        + [("checkin", e.payload["item_id"]) for e in later if e.kind == "return"])
    with engine.connect() as conn:
        resolved = Counter(r.resolved_by for r in conn.execute(select(outbox)))
    assert resolved == {"answer": 7, "item_information": 1}


def test_stop_is_prompt_even_while_the_ils_is_down(engine: Engine) -> None:
    network(engine)
    sim = IlsSim().start()
    sim.stop()  # a port nobody listens on any more
    send(engine, batch_of([loan(1, ITEMS[0], READERS[0])]))
    service = IlsService(engine, ils_settings(sim, ils_interval_s=0.05)).start()
    wait_for(lambda: service.totals.get("unreachable", 0) >= 1, why="an unreachable pass")
    began = time.monotonic()
    service.stop()
    assert time.monotonic() - began < 5 and not service.running
    # it waits: pending, or "sent" when its request met the closed port after the row was
    # marked (the forwarder then asks the ILS before sending it again)
    assert sum(counts(engine).values()) == 1 and not counts(engine).get("confirmed")


# ----------------------------------------------------------------------------- the endpoint


def test_staff_see_the_reconciliation(engine: Engine) -> None:
    network(engine)
    seed_network(engine)
    send(engine, batch_of([loan(1, ITEMS[0], READERS[0]), ret(2, ITEMS[0]),
                           loan(3, ITEMS[1], READERS[1])]))
    with engine.connect() as conn:
        first = ils_outbox.due_entries(conn, 1)[0]
    with write_tx(engine) as conn:
        ils_outbox.mark_sent(conn, first.id, first.transaction_at)
        ils_outbox.record_answer(conn, first, ils_outbox.IlsAnswer(True, "Checked out"),
                                 first.transaction_at)
    clock = Clock()
    client = TestClient(make_app(engine, clock))
    token = token_for(engine, add_staff(engine, "desk", "branch_staff"), clock.now)
    body = client.get("/api/ils/outbox", headers=bearer(token)).json()
    assert body["counts"] == {"pending": 2, "sent": 0, "confirmed": 1, "rejected": 0}
    assert body["ils"] == {"configured": False, "profile": "generic"}
    assert [r["status"] for r in body["rows"]] == ["pending", "pending", "confirmed"]
    done = body["rows"][2]
    assert (done["kind"], done["item_id"], done["reader_id"], done["resolved_by"],
            done["ils_message"]) == ("checkout", ITEMS[0], READERS[0], "answer", "Checked out")
    assert "display_name" not in done and "reader " not in str(body)  # ids, never names
    only = client.get("/api/ils/outbox", headers=bearer(token),
                      params={"status": "confirmed", "limit": 5}).json()
    assert [r["id"] for r in only["rows"]] == [first.id]
    assert only["counts"] == body["counts"]
    assert client.get("/api/ils/outbox", headers=bearer(token),
                      params={"status": "lost"}).status_code == 422
    assert client.get("/api/ils/outbox").status_code == 401


# ----------------------------------------------------------------------------- lendbox server run


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[IlsSim]:
    with IlsSim(profile="koha", state_path=tmp_path / "ils.json") as sim:
        yield sim


def test_server_run_forwards_to_the_ils_from_the_environment(
        sqlite_db_url: str, emulator: IlsSim) -> None:
    from server.db import make_engine
    from server.migrate import upgrade

    upgrade(sqlite_db_url)
    engine = make_engine(sqlite_db_url)
    network(engine)
    seed_network(engine)
    send(engine, batch_of([loan(1, ITEMS[0], READERS[0]), loan(2, ITEMS[1], READERS[1]),
                           ret(3, ITEMS[0])]))
    token = token_for(engine, add_staff(engine, "desk", "branch_staff"), datetime.now(UTC))
    env = {**os.environ, "LENDBOX_ILS_HOST": emulator.host,
           "LENDBOX_ILS_PORT": str(emulator.port), "LENDBOX_ILS_USER": "lendbox",
           "LENDBOX_ILS_PASSWORD": "lendbox", "LENDBOX_ILS_PROFILE": "koha",
           "LENDBOX_ILS_INSTITUTION": "LENDBOX", "LENDBOX_ILS_LOCATION": "sz-city",
           "LENDBOX_ILS_INTERVAL_S": "0.2"}
    proc = subprocess.Popen([sys.executable, "-m", "lendbox.cli", "server", "run", "--db",
                             sqlite_db_url, "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[0].startswith("forwarding circulation to the ILS at 127.0.0.1:"), lines
        match = re.fullmatch(r"server ready (http://127\.0\.0\.1:\d+)\n", lines[1])
        assert match, (lines, proc.stderr.read() if proc.poll() is not None and proc.stderr
                       else "")
        wait_for(lambda: counts(engine) == {"confirmed": 3}, why="forwarded by the server")
        import httpx

        body = httpx.get(match.group(1) + "/api/ils/outbox", headers=bearer(token),
                         timeout=10).json()
        assert body["counts"]["confirmed"] == 3 and body["ils"]["configured"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        engine.dispose()
    assert Counter((j["op"], j["item_id"]) for j in emulator.journal()) == Counter(
        [("checkout", ITEMS[0]), ("checkout", ITEMS[1]), ("checkin", ITEMS[0])])
