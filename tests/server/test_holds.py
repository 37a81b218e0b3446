"""Holds (预约) and loans through the real HTTP app and the real sync path, on both databases.

What must hold: a hold on a copy in another cabinet puts it on both restock lists; the
manifest loading it at the pickup cabinet makes it ready (a notice, a HoldInfo and
``hold_for`` in the cabinet's next sync reply); the holder's loan collects it; an uncollected
hold expires and the copy goes to the next reader or back out; a loan over someone else's
hold is the engine's ``loan_over_hold`` exception and the hold waits for the return; a full
pickup cabinet refuses with 409; renewals are refused with the reason. And, whatever order
things happen in (hypothesis): never two active holds on one copy, a ready hold's copy is in
its pickup cabinet, a closed hold stays closed.
"""

from __future__ import annotations

import itertools
import uuid
from contextlib import contextmanager
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import Engine, insert, select, update

from server import holds, restock
from server.db import lock_cabinet, write_tx
from server.ingest import apply_batch
from server.routes_readers import _issue_reader_token
from server.schema import audit, cabinets, exceptions, holds as holds_t, items, notifications
from syncproto.messages import CabinetEvent, SyncBatch, SyncReply
from tests.server.test_credit import CAB_PUBLIC, id_number
from tests.server.test_security import (
    BRANCH,
    Clock,
    add_staff,
    assert_error,
    bearer,
    make_app,
    seed_network,
    token_for,
)

NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
_ids = itertools.count(1)


def add_cabinet(engine: Engine, cab: str, capacity: int = 0) -> None:
    with write_tx(engine) as conn:
        conn.execute(insert(cabinets).values(id=cab, branch_id=BRANCH, name=cab, location="",
                                             public_key=CAB_PUBLIC, registered_at=NOW,
                                             active=True, applied_through=0,
                                             deny_version_sent=0, capacity=capacity))


def add_item(engine: Engine, item: str, cab: str | None = None, **values: Any) -> None:
    values = {"status": "in_cabinet" if cab else "on_shelf", "location_cabinet_id": cab,
              "title": f"title of {item}", "owner_library": "CN-330100", "version": 0, **values}
    with write_tx(engine) as conn:
        conn.execute(insert(items).values(id=item, **values))


@dataclass
class World:
    """The app, its clock, staff tokens, and a sync helper keeping each cabinet's seq."""

    engine: Engine
    client: TestClient
    clock: Clock
    staff: dict[str, str]
    seqs: dict[str, int] = field(default_factory=dict)

    def reader(self, seed: int | None = None) -> tuple[str, dict[str, str]]:
        seed = next(_ids) if seed is None else seed
        made = self.client.post("/api/readers/register", json={
            "display_name": f"读者{seed}", "id_number": id_number(seed)})
        assert made.status_code == 201, made.text
        return made.json()["reader_id"], bearer(made.json()["token"])

    def send(self, cab: str, kind: str = "", *, offline: bool = False,
             **payload: Any) -> SyncReply:
        """One event (or none with ``kind=""``) from ``cab`` through ingest.apply_batch."""
        evs = []
        if kind:
            self.seqs[cab] = self.seqs.get(cab, 0) + 1
            evs.append(CabinetEvent(cabinet_id=cab, seq=self.seqs[cab], uuid=uuid.uuid4(),
                                    kind=kind, at=self.clock.now, mono=1.0,  # type: ignore[arg-type]
                                    boot_id="b", offline=offline, payload=payload))
        with write_tx(self.engine) as conn:
            row = lock_cabinet(conn, cab)
            assert row is not None
            return apply_batch(conn, row, SyncBatch(cabinet_id=cab, sent_at=self.clock.now,
                                                    events=evs), self.clock.now)

    def manifest(self, cab: str, loaded: list[str] = [],  # noqa: B006 - never mutated
                 removed: list[str] = []) -> SyncReply:  # noqa: B006
        return self.send(cab, "restock", manifest={
            "door": 1, "staff_id": "s1", "loaded": loaded, "removed": removed,
            "unreadable": [], "cabinet_id": cab, "session": "r", "signature": "x",
            "public_key": CAB_PUBLIC})

    def hold(self, hold_id: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(holds_t).where(holds_t.c.id == hold_id)).one()

    def tasks(self, ref: str | None = None) -> list[tuple[str, str, str]]:
        with self.engine.connect() as conn:
            found = restock.open_tasks(conn)
        return sorted((t["cabinet_id"], t["item_id"], t["action"]) for t in found
                      if ref is None or t["ref"] == ref)


@contextmanager
def make_world(engine: Engine) -> Iterator[World]:
    """The network, two cabinets (cab-a, cab-p), an operator and an auditor, the app."""
    seed_network(engine)
    clock = Clock(NOW)
    tokens = {role: token_for(engine, add_staff(engine, f"{role}-1", role), clock.now,
                              ttl_s=90 * 86400)
              for role in ("operator", "auditor")}
    add_cabinet(engine, "cab-a")
    add_cabinet(engine, "cab-p")
    with TestClient(make_app(engine, clock), raise_server_exceptions=False) as client:
        yield World(engine, client, clock, tokens)


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    with make_world(engine) as made:
        yield made


def place(w: World, headers: dict[str, str], item: str, cab: str = "cab-p") -> dict[str, Any]:
    made = w.client.post("/api/readers/me/holds", headers=headers,
                         json={"item_id": item, "pickup_cabinet_id": cab})
    assert made.status_code == 201, made.text
    return dict(made.json())


# ----------------------------------------------------------------------------- the lifecycle


def test_a_hold_travels_to_its_cabinet_becomes_ready_and_is_collected(world: World) -> None:
    w = world
    add_item(w.engine, "B1", "cab-a")
    rid, headers = w.reader()
    hold = place(w, headers, "B1")
    assert hold["status"] == "assigned"
    ref = f"hold:{hold['id']}"
    assert w.tasks(ref) == [("cab-a", "B1", "unload"), ("cab-p", "B1", "load")]

    # both cabinets learn the copy is reserved; the pickup cabinet gets the hold itself
    at_p = w.send("cab-p")
    assert [(h.item_id, h.reader_id) for h in at_p.holds or []] == [("B1", rid)]
    assert at_p.holds and at_p.holds[0].expires_at > w.clock.now + timedelta(days=holds.PICKUP_DAYS)
    assert [(i.item_id, i.hold_for) for i in at_p.items] == [("B1", rid)]
    at_a = w.send("cab-a")
    assert at_a.holds == [] and [(i.item_id, i.hold_for) for i in at_a.items] == [("B1", rid)]

    w.manifest("cab-a", removed=["B1"])
    assert w.hold(hold["id"]).status == "assigned"
    w.clock.advance(3600)
    reply = w.manifest("cab-p", loaded=["B1"])
    row = w.hold(hold["id"])
    assert row.status == "ready" and row.expires_at == w.clock.now + timedelta(days=3)
    assert [(h.item_id, h.reader_id, h.expires_at) for h in reply.holds or []] == [
        ("B1", rid, row.expires_at)]
    assert ("B1", rid) in [(i.item_id, i.hold_for) for i in reply.items]
    assert w.tasks(ref) == []
    with w.engine.connect() as conn:
        item = conn.execute(select(items).where(items.c.id == "B1")).one()
        notes = conn.execute(select(notifications)).all()
    assert (item.status, item.location_cabinet_id) == ("in_cabinet", "cab-p")
    assert [(n.kind, n.reader_id, n.ref) for n in notes] == [("hold_ready", rid, ref)]
    listed = w.client.get("/api/readers/me/holds", headers=headers).json()["holds"]
    assert [(h["id"], h["status"], h["title"]) for h in listed] == [
        (hold["id"], "ready", "title of B1")]

    # the notice goes out once through the configured sender
    got: list[Any] = []

    class Recorder:
        name = "recorder"

        def send(self, notification: Any) -> None:
            got.append(notification)

    w.client.app.state.notify_sender = Recorder()  # type: ignore[attr-defined]
    for _ in range(2):
        sent = w.client.post("/api/notifications/send", headers=bearer(w.staff["operator"]))
        assert sent.status_code == 200, sent.text
    assert [(n.kind, n.reader_id, n.body["cabinet_id"]) for n in got] == [
        ("hold_ready", rid, "cab-p")]

    # the holder borrows it: collected, and the cabinet forgets the hold
    reply = w.send("cab-p", "loan", item_id="B1", reader_id=rid, due="2030-04-01", door=1,
                   session="s")
    assert w.hold(hold["id"]).status == "collected" and reply.holds == []
    with w.engine.connect() as conn:
        assert holds.holder_of(conn, "B1") is None
    assert w.client.get("/api/holds", headers=bearer(w.staff["auditor"]),
                        params={"status": "collected"}).json()["holds"][0]["id"] == hold["id"]


def test_a_copy_already_in_the_pickup_cabinet_is_ready_at_once(world: World) -> None:
    w = world
    add_item(w.engine, "B2", "cab-p")
    _, headers = w.reader()
    hold = place(w, headers, "B2")
    assert hold["status"] == "ready" and w.tasks() == []


def test_expiry_sends_the_copy_to_the_next_reader_or_back_out(world: World) -> None:
    w = world
    add_item(w.engine, "B3", "cab-p")
    _, h1 = w.reader()
    r2, h2 = w.reader()
    first = place(w, h1, "B3")
    second = place(w, h2, "B3", cab="cab-a")
    assert (first["status"], second["status"]) == ("ready", "waiting")
    operator = bearer(w.staff["operator"])
    assert w.client.post("/api/holds/expire", headers=operator).json() == {"expired": []}
    w.clock.advance(3 * 86400 + 1)
    assert w.client.post("/api/holds/expire", headers=operator).json() == {
        "expired": [first["id"]]}
    assert w.hold(first["id"]).status == "expired"
    assert w.hold(second["id"]).status == "assigned"
    assert w.tasks() == [("cab-a", "B3", "load"), ("cab-p", "B3", "unload")]
    # the second reader does not collect either: the copy goes back out of cab-a
    w.manifest("cab-p", removed=["B3"])
    w.manifest("cab-a", loaded=["B3"])
    assert w.hold(second["id"]).status == "ready"
    w.clock.advance(4 * 86400)
    w.client.post("/api/holds/expire", headers=operator)
    assert w.hold(second["id"]).status == "expired"
    assert w.tasks(f"hold:{second['id']}") == [("cab-a", "B3", "unload")]
    with w.engine.connect() as conn:
        assert holds.holder_of(conn, "B3") is None
        assert conn.execute(select(audit.c.action).where(
            audit.c.action == "holds.expire")).all()
    assert r2


def test_someone_else_borrowing_a_held_copy_offline_is_an_exception(world: World) -> None:
    w = world
    add_item(w.engine, "B4", "cab-a")
    r1, h1 = w.reader()
    r2, _ = w.reader()
    hold = place(w, h1, "B4")
    w.send("cab-a", "loan", offline=True, item_id="B4", reader_id=r2, due="2030-04-01",
           door=1, session="s")
    with w.engine.connect() as conn:
        found = conn.execute(select(exceptions).where(
            exceptions.c.kind == "loan_over_hold")).all()
    assert [(e.item_id, e.reader_id, e.evidence["hold_for"]) for e in found] == [
        ("B4", r2, r1)]
    assert w.hold(hold["id"]).status == "waiting" and w.tasks() == []
    # the return fills the hold again
    w.send("cab-a", "return", item_id="B4", owner_library="CN-330100", door=1, session="t")
    assert w.hold(hold["id"]).status == "assigned"
    assert w.tasks(f"hold:{hold['id']}") == [("cab-a", "B4", "unload"), ("cab-p", "B4", "load")]


def test_a_returned_copy_goes_to_the_waiting_hold(world: World) -> None:
    w = world
    r0, _ = w.reader()
    add_item(w.engine, "B5", None, status="loaned", borrower_id=r0, due="2030-03-20")
    _, h1 = w.reader()
    hold = place(w, h1, "B5")
    assert hold["status"] == "waiting"
    w.send("cab-p", "return", item_id="B5", owner_library="CN-330100", door=1, session="t")
    assert w.hold(hold["id"]).status == "ready"


def test_cancel_frees_the_copy_for_the_next_reader(world: World) -> None:
    w = world
    add_item(w.engine, "B6", "cab-a")
    _, h1 = w.reader()
    _, h2 = w.reader()
    first = place(w, h1, "B6")
    second = place(w, h2, "B6", cab="cab-a")
    assert (first["status"], second["status"]) == ("assigned", "waiting")
    assert_error(w.client.delete(f"/api/readers/me/holds/{first['id']}", headers=h2), 404,
                 "unknown_hold")
    gone = w.client.delete(f"/api/readers/me/holds/{first['id']}", headers=h1)
    assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
    assert w.tasks(f"hold:{first['id']}") == []
    assert w.hold(second["id"]).status == "ready"  # the copy is in cab-a already
    assert_error(w.client.delete(f"/api/readers/me/holds/{first['id']}", headers=h1), 409,
                 "hold_closed")


def test_refusals_say_why(world: World) -> None:
    w = world
    add_cabinet(w.engine, "cab-small", capacity=2)
    add_item(w.engine, "S1", "cab-small")
    add_item(w.engine, "X1", "cab-a")
    add_item(w.engine, "X2", "cab-a")
    add_item(w.engine, "REF", "cab-a", reference_only=True)
    _, h1 = w.reader()
    _, h2 = w.reader()
    assert place(w, h1, "X1", cab="cab-small")["status"] == "assigned"
    full = w.client.post("/api/readers/me/holds", headers=h2,
                         json={"item_id": "X2", "pickup_cabinet_id": "cab-small"})
    assert "no free slot" in assert_error(full, 409, "pickup_cabinet_full")["detail"]
    # a copy already in the cabinet needs no slot
    assert place(w, h2, "S1", cab="cab-small")["status"] == "ready"
    for body, status, code in [
        ({"item_id": "X1", "pickup_cabinet_id": "cab-small"}, 409, "already_held"),
        ({"item_id": "nope", "pickup_cabinet_id": "cab-p"}, 404, "unknown_item"),
        ({"item_id": "X2", "pickup_cabinet_id": "nope"}, 404, "unknown_cabinet"),
        ({"item_id": "REF", "pickup_cabinet_id": "cab-p"}, 409, "not_lendable"),
        ({"item_id": "X2"}, 422, None),
        ({"item_id": "X 2", "pickup_cabinet_id": "cab-p"}, 422, None),
    ]:
        assert_error(w.client.post("/api/readers/me/holds", headers=h1, json=body), status,
                     code)
    assert_error(w.client.get("/api/readers/me/holds"), 401, "missing_token")


# ----------------------------------------------------------------------------- loans, renewals


def test_renewals_are_counted_and_refused_with_the_reason(world: World) -> None:
    w = world
    rid, headers = w.reader()
    _, other = w.reader()
    loan_at = NOW - timedelta(days=20)
    for item, due in (("L1", "2030-03-10"), ("L2", "2030-02-10"), ("L3", "2030-03-05")):
        add_item(w.engine, item, None, status="loaned", borrower_id=rid, due=due,
                 last_loan_at=loan_at)
    place(w, other, "L3")
    loans = w.client.get("/api/readers/me/loans", headers=headers).json()["loans"]
    assert [(x["item_id"], x["overdue"], x["renewals"], x["wanted_by_others"])
            for x in loans] == [("L2", True, 0, False), ("L3", False, 0, True),
                                ("L1", False, 0, False)]
    first = w.client.post("/api/readers/me/loans/L1/renew", headers=headers).json()
    assert first == {"item_id": "L1", "due": "2030-04-09", "renewals": 1, "max_renewals": 2}
    assert w.client.post("/api/readers/me/loans/L1/renew",
                         headers=headers).json()["due"] == "2030-05-09"
    limit = w.client.post("/api/readers/me/loans/L1/renew", headers=headers)
    assert "renewed 2 times" in assert_error(limit, 409, "renewal_limit")["detail"]
    assert_error(w.client.post("/api/readers/me/loans/L2/renew", headers=headers), 409,
                 "overdue")
    assert_error(w.client.post("/api/readers/me/loans/L3/renew", headers=headers), 409,
                 "held_for_another")
    assert_error(w.client.post("/api/readers/me/loans/L1/renew", headers=other), 404,
                 "not_your_loan")
    # a new loan of the same copy starts counting again
    with write_tx(w.engine) as conn:
        conn.execute(update(items).where(items.c.id == "L1").values(
            last_loan_at=NOW, due="2030-03-30"))
    assert w.client.post("/api/readers/me/loans/L1/renew",
                         headers=headers).json()["renewals"] == 1
    # each accepted renewal is queued once for the ILS, with its new due date; refusals not
    from server.schema import ils_outbox
    with w.engine.connect() as conn:
        queued = conn.execute(select(ils_outbox.c.kind, ils_outbox.c.item_id, ils_outbox.c.due)
                              .where(ils_outbox.c.kind == "renew")
                              .order_by(ils_outbox.c.id)).all()
    assert [tuple(r) for r in queued] == [("renew", "L1", "2030-04-09"),
                                          ("renew", "L1", "2030-05-09"),
                                          ("renew", "L1", "2030-04-29")]


# ----------------------------------------------------------------------------- the state machine


class HoldMachine(RuleBasedStateMachine):
    """Readers, copies and two cabinets; any sequence of reader, cabinet and staff acts."""

    world: World

    def __init__(self) -> None:
        super().__init__()
        w = self.world
        n = next(_ids)
        self.cabs = [f"m{n}-a", f"m{n}-b"]
        for cab in self.cabs:
            add_cabinet(w.engine, cab)
        self.items = [f"m{n}-i{k}" for k in range(2)]
        add_item(w.engine, self.items[0], self.cabs[0])
        add_item(w.engine, self.items[1], None)
        self.readers = [w.reader() for _ in range(3)]
        self.placed: list[tuple[int, int]] = []  # (hold id, reader index)
        w.clock.now = NOW
        self.closed: dict[int, str] = {}

    def token(self, r: int) -> dict[str, str]:
        """A fresh phone token: the machine's clock runs past a token's 30 days."""
        with write_tx(self.world.engine) as conn:
            token, _ = _issue_reader_token(conn, self.readers[r][0], self.world.clock.now)
        return bearer(token)

    @rule(r=st.integers(0, 2), i=st.integers(0, 1), c=st.integers(0, 1))
    def place(self, r: int, i: int, c: int) -> None:
        made = self.world.client.post("/api/readers/me/holds", headers=self.token(r),
                                      json={"item_id": self.items[i],
                                            "pickup_cabinet_id": self.cabs[c]})
        assert made.status_code in (201, 409), made.text
        if made.status_code == 201:
            self.placed.append((made.json()["id"], r))

    @rule(k=st.integers(0, 20))
    def cancel(self, k: int) -> None:
        if self.placed:
            hold_id, r = self.placed[k % len(self.placed)]
            got = self.world.client.delete(f"/api/readers/me/holds/{hold_id}",
                                           headers=self.token(r))
            assert got.status_code in (200, 409), got.text

    @rule(r=st.integers(0, 2), i=st.integers(0, 1), c=st.integers(0, 1), offline=st.booleans())
    def loan(self, r: int, i: int, c: int, offline: bool) -> None:
        self.world.send(self.cabs[c], "loan", offline=offline, item_id=self.items[i],
                        reader_id=self.readers[r][0], due="2030-06-01", door=1, session="s")

    @rule(k=st.integers(0, 20))
    def holder_borrows(self, k: int) -> None:
        """The likely act that random loans seldom hit: a holder fetching their copy."""
        if self.placed:
            hold_id, r = self.placed[k % len(self.placed)]
            row = self.world.hold(hold_id)
            self.world.send(row.pickup_cabinet_id, "loan", item_id=row.item_id,
                            reader_id=self.readers[r][0], due="2030-06-01", door=1, session="s")

    @rule(i=st.integers(0, 1), c=st.integers(0, 1))
    def give_back(self, i: int, c: int) -> None:
        self.world.send(self.cabs[c], "return", item_id=self.items[i],
                        owner_library="CN-330100", door=1, session="s")

    @rule(i=st.integers(0, 1), c=st.integers(0, 1), load=st.booleans())
    def restock(self, i: int, c: int, load: bool) -> None:
        key = "loaded" if load else "removed"
        self.world.manifest(self.cabs[c], **{key: [self.items[i]]})

    @rule(days=st.integers(0, 5))
    def expire(self, days: int) -> None:
        self.world.clock.advance(days * 86400)
        with write_tx(self.world.engine) as conn:
            holds.expire_holds(conn, self.world.clock.now)

    @invariant()
    def holds_are_consistent(self) -> None:
        with self.world.engine.connect() as conn:
            rows = conn.execute(select(holds_t).where(holds_t.c.item_id.in_(self.items))).all()
            state = {r.id: conn.execute(select(items).where(items.c.id == r.item_id)).one()
                     for r in rows}
            load_tasks = {(t["cabinet_id"], t["item_id"]) for t in restock.open_tasks(conn)
                          if t["action"] == "load"}
        for item_id in self.items:
            active = [r for r in rows if r.item_id == item_id and r.status in holds.ACTIVE]
            assert len(active) <= 1, active
        for row in rows:
            item = state[row.id]
            if row.status == "ready":
                assert (item.status, item.location_cabinet_id) == (
                    "in_cabinet", row.pickup_cabinet_id), (row, item)
            if row.status == "assigned":
                assert item.status != "loaned"
                assert (row.pickup_cabinet_id, row.item_id) in load_tasks, row
            if row.id in self.closed:
                assert row.status == self.closed[row.id], row
            elif row.status in holds.CLOSED:
                self.closed[row.id] = row.status


def test_the_hold_state_machine_keeps_its_invariants(world: World) -> None:
    HoldMachine.world = world
    run_state_machine_as_test(HoldMachine, settings=settings(
        max_examples=20, stateful_step_count=12, deadline=None,
        suppress_health_check=list(HealthCheck)))
