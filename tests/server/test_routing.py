"""Cross-branch returns (``server.routing``) and the restock/transit endpoints, on both databases.

What must hold: a book returned away from home gets exactly one transit and one unload task
on the returning cabinet's list, however often or in whatever order its batches arrive; the
restock manifest that takes it out puts it in transit, and receiving it shelves it at home;
books returned at home or to a floating branch of their library stay; a county book goes to
its county branch, another network library's book to that library, and a book from outside
the network is flagged, never lost. Events go through the real sync path
(``ingest.apply_batch`` under the cabinet lock), staff actions through the real HTTP app.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select

from server import restock, routing
from server.db import write_tx
from server.schema import audit, branches, cabinets, exceptions, items, libraries, transits
from syncproto.messages import CabinetEvent, SyncBatch
from tests.server.test_ingest import CAB_PUBLIC, send
from tests.server.test_security import (
    BRANCH,
    LIBRARY,
    Clock,
    add_staff,
    assert_error,
    bearer,
    make_app,
    seed_network,
    token_for,
)

NOW = datetime(2030, 5, 6, 10, 0, tzinfo=UTC)
OTHER_LIB = "CN-330200"  # another library of the network (宁波)
FOREIGN_LIB = "CN-990000"  # not in the network
# branches: the city's central (BRANCH, from seed_network), a city district branch, a county
# branch (child of the central), a floating branch, and the other library's central
EAST, COUNTY, FLOAT, NB = "hz-east", "hz-county", "hz-float", "nb-main"
CABS = {"cab-main": BRANCH, "cab-east": EAST, "cab-county": COUNTY, "cab-float": FLOAT,
        "cab-nb": NB}

_seqs: dict[str, int] = {}
_tick = itertools.count(1)


def setup(engine: Engine) -> None:
    _seqs.clear()
    seed_network(engine)
    with write_tx(engine) as conn:
        conn.execute(insert(libraries).values(isil=OTHER_LIB, name="宁波图书馆"))
        for bid, lib, parent, floating in ((EAST, LIBRARY, BRANCH, False),
                                           (COUNTY, LIBRARY, BRANCH, False),
                                           (FLOAT, LIBRARY, BRANCH, True),
                                           (NB, OTHER_LIB, None, False)):
            conn.execute(insert(branches).values(id=bid, name=bid, library_isil=lib,
                                                 parent_id=parent, floating=floating))
    for cab, branch in CABS.items():
        add_cabinet(engine, cab, branch)


def add_cabinet(engine: Engine, cab: str, branch: str) -> None:
    with write_tx(engine) as conn:
        conn.execute(insert(cabinets).values(id=cab, branch_id=branch, name=f"柜 {cab}",
                                             location="", public_key=CAB_PUBLIC,
                                             registered_at=NOW, active=True, applied_through=0,
                                             deny_version_sent=0))


def book(engine: Engine, item_id: str, home: str | None, owner: str = LIBRARY,
         status: str = "loaned") -> None:
    with write_tx(engine) as conn:
        conn.execute(insert(items).values(id=item_id, title=f"书 {item_id}", owner_library=owner,
                                          home_branch_id=home, status=status, version=0))


def ev(cab: str, kind: str, seq: int | None = None, **payload: Any) -> CabinetEvent:
    """The next event of ``cab``, later than every event made before it (any cabinet)."""
    if seq is None:
        seq = _seqs[cab] = _seqs.get(cab, 0) + 1
    return CabinetEvent(cabinet_id=cab, seq=seq, uuid=uuid.uuid4(), kind=kind,  # type: ignore[arg-type]
                        at=NOW + timedelta(seconds=next(_tick)), mono=float(seq), boot_id="b",
                        offline=False, payload=payload)


def ret(cab: str, item_id: str, owner: str | None = LIBRARY, **kw: Any) -> CabinetEvent:
    payload = {"item_id": item_id, "door": 1, "session": "s", **kw}
    if owner is not None:
        payload["owner_library"] = owner
    return ev(cab, "return", **payload)


def manifest(cab: str, loaded: list[str] = [], removed: list[str] = [],  # noqa: B006
             **kw: Any) -> CabinetEvent:
    return ev(cab, "restock", **kw, manifest={
        "door": 1, "staff_id": "S1", "loaded": loaded, "removed": removed, "unreadable": [],
        "cabinet_id": cab, "session": "r", "signature": "x", "public_key": "y"})


def sync(engine: Engine, *evs: CabinetEvent) -> None:
    cab = evs[0].cabinet_id
    send(engine, SyncBatch(cabinet_id=cab, sent_at=NOW, events=list(evs)), NOW)


def transit_rows(engine: Engine, item_id: str | None = None) -> list[Any]:
    stmt = select(transits).order_by(transits.c.id)
    if item_id is not None:
        stmt = stmt.where(transits.c.item_id == item_id)
    with engine.connect() as conn:
        return list(conn.execute(stmt).all())


def item_row(engine: Engine, item_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(items).where(items.c.id == item_id)).one()


def tasks(engine: Engine, **kw: Any) -> list[tuple[str, str, str, str, str]]:
    with engine.connect() as conn:
        return [(t["cabinet_id"], t["item_id"], t["action"], t["reason"], t["ref"])
                for t in restock.open_tasks(conn, **kw)]


def where(engine: Engine, item_id: str) -> tuple[str, str | None]:
    row = item_row(engine, item_id)
    return row.status, row.location_cabinet_id


@pytest.fixture
def net(engine: Engine) -> Engine:
    setup(engine)
    return engine


@pytest.fixture
def staff_client(net: Engine) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    clock = Clock(NOW)
    tok = {role: bearer(token_for(net, add_staff(net, f"{role}-r", role), NOW))
           for role in ("operator", "branch_staff", "auditor", "technician")}
    with TestClient(make_app(net, clock), raise_server_exceptions=False) as client:
        yield client, tok


# ---------------------------------------------------------------------- the rule (pure)


def test_route_for_is_the_documented_rule() -> None:
    class B:
        def __init__(self, id: str, lib: str, floating: bool = False) -> None:
            self.id, self.library_isil, self.floating = id, lib, floating

    here, fl = B("east", "L"), B("fl", "L", True)
    net = ["L", "M"]
    route = routing.route_for
    assert route(returning_branch=here, home_branch=here, owner="L", network=net).action == "stay"
    assert route(returning_branch=fl, home_branch=here, owner="L", network=net).action == "stay"
    away = route(returning_branch=fl, home_branch=B("m1", "M"), owner="M", network=net)
    assert (away.action, away.to_branch_id, away.to_library) == ("transit", "m1", "M")
    home = route(returning_branch=here, home_branch=B("main", "L"), owner="X", network=net)
    assert (home.action, home.to_branch_id) == ("transit", "main")  # the home branch wins
    assert route(returning_branch=here, home_branch=None, owner="L", network=net).action == "stay"
    assert route(returning_branch=here, home_branch=None, owner="", network=net).action == "stay"
    lib = route(returning_branch=fl, home_branch=None, owner="M", network=net)
    assert (lib.action, lib.to_branch_id, lib.to_library) == ("transit", None, "M")
    assert route(returning_branch=here, home_branch=None, owner="Z", network=net).action == (
        "foreign")


# ---------------------------------------------------------------------- through sync


def test_a_book_returned_at_another_branch_goes_home_and_is_received(
        net: Engine, staff_client: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, tok = staff_client
    book(net, "A1", BRANCH)
    sync(net, ret("cab-east", "A1"))
    (tr,) = transit_rows(net, "A1")
    assert (tr.status, tr.from_cabinet_id, tr.to_branch_id, tr.to_library) == (
        "waiting_pickup", "cab-east", BRANCH, LIBRARY)
    assert where(net, "A1") == ("in_cabinet", "cab-east")  # physically there until taken out
    assert tasks(net, branch_id=EAST) == [
        ("cab-east", "A1", "unload", "transit_home", f"transit:{tr.id}")]
    listed = client.get("/api/restock", params={"branch_id": EAST}, headers=tok["auditor"])
    assert listed.status_code == 200, listed.text
    (task,) = listed.json()["tasks"]
    assert (task["cabinet_name"], task["title"], task["action"], task["reason"]) == (
        "柜 cab-east", "书 A1", "unload", "transit_home")
    assert listed.json()["cabinets"] == [{"cabinet_id": "cab-east", "cabinet_name": "柜 cab-east",
                                          "branch_id": EAST, "load": 0, "unload": 1}]

    version = item_row(net, "A1").version
    sync(net, manifest("cab-east", removed=["A1"]))
    (tr,) = transit_rows(net, "A1")
    assert tr.status == "in_transit" and tr.picked_up_at is not None
    assert where(net, "A1") == ("in_transit", None)
    assert item_row(net, "A1").version > version
    assert tasks(net) == []

    on_way = client.get("/api/transits", params={"to_branch_id": BRANCH}, headers=tok["auditor"])
    assert [(t["id"], t["status"], t["title"]) for t in on_way.json()["transits"]] == [
        (tr.id, "in_transit", "书 A1")]
    got = client.post(f"/api/transits/{tr.id}/receive", headers=tok["branch_staff"])
    assert got.status_code == 200, got.text
    assert got.json()["status"] == "received" and got.json()["received_at"]
    assert where(net, "A1") == ("on_shelf", None)
    with net.connect() as conn:
        (row,) = conn.execute(select(audit).where(audit.c.action == "transit.receive")).all()
    assert (row.actor, row.target, row.detail["was"]) == (
        "branch_staff-r", f"transit:{tr.id}", "in_transit")
    assert_error(client.post(f"/api/transits/{tr.id}/receive", headers=tok["operator"]),
                 409, "already_received")
    assert client.get("/api/transits", headers=tok["auditor"]).json()["transits"] == []
    done = client.get("/api/transits", params={"status": "received"}, headers=tok["auditor"])
    assert [t["id"] for t in done.json()["transits"]] == [tr.id]


def test_home_and_floating_returns_stay(net: Engine) -> None:
    book(net, "H1", BRANCH)
    book(net, "F1", BRANCH)
    book(net, "N1", NB, owner=OTHER_LIB)
    sync(net, ret("cab-main", "H1"))
    sync(net, ret("cab-float", "F1"), ret("cab-float", "N1", owner=OTHER_LIB))
    assert transit_rows(net, "H1") == [] and transit_rows(net, "F1") == []
    assert where(net, "F1") == ("in_cabinet", "cab-float")
    # a floating branch keeps its own library's books only: 宁波's goes back to 宁波
    (tr,) = transit_rows(net)
    assert (tr.item_id, tr.to_branch_id, tr.to_library) == ("N1", NB, OTHER_LIB)
    assert tasks(net, cabinet_id="cab-float") == [
        ("cab-float", "N1", "unload", "transit_home", f"transit:{tr.id}")]


def test_county_and_city_books_go_straight_to_their_home_branch(net: Engine) -> None:
    book(net, "C1", COUNTY)
    book(net, "M1", BRANCH)
    sync(net, ret("cab-main", "C1"))
    sync(net, ret("cab-county", "M1"))
    assert [(t.item_id, t.from_cabinet_id, t.to_branch_id) for t in transit_rows(net)] == [
        ("C1", "cab-main", COUNTY), ("M1", "cab-county", BRANCH)]


def test_unknown_items_route_by_owner_library_and_foreign_ones_are_flagged(
        net: Engine, staff_client: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, tok = staff_client
    # never seen before: the return's tag names the owner
    returns = [ret("cab-east", "U-NB", owner=OTHER_LIB), ret("cab-east", "U-OWN"),
               ret("cab-east", "U-FOREIGN", owner=FOREIGN_LIB, reader_id="R9")]
    sync(net, *returns)
    sync(net, *returns)  # re-sent after a lost reply: nothing new
    (tr,) = transit_rows(net)
    assert (tr.item_id, tr.to_branch_id, tr.to_library) == ("U-NB", None, OTHER_LIB)
    assert where(net, "U-OWN") == ("in_cabinet", "cab-east")
    # outside the network: kept and flagged, never lost, no transit
    assert where(net, "U-FOREIGN") == ("in_cabinet", "cab-east")
    with net.connect() as conn:
        (exc,) = conn.execute(select(exceptions).where(
            exceptions.c.kind == "foreign_item_returned")).all()
    assert (exc.item_id, exc.cabinet_id, exc.reader_id, exc.status) == (
        "U-FOREIGN", "cab-east", "R9", "open")
    assert exc.evidence["owner_library"] == FOREIGN_LIB
    assert exc.actions == ["keep_for_owner", "send_to_owner"]
    resolved = client.post(f"/api/exceptions/{exc.id}/resolve", headers=tok["branch_staff"],
                           json={"action": "send_to_owner", "note": "post it back"})
    assert resolved.status_code == 200, resolved.text
    assert ("cab-east", "U-FOREIGN", "unload", "transit_home", f"exception:{exc.id}") in tasks(net)
    sync(net, manifest("cab-east", removed=["U-FOREIGN", "U-NB"]))
    assert where(net, "U-FOREIGN") == ("on_shelf", None)
    assert where(net, "U-NB") == ("in_transit", None)
    assert tasks(net) == []


def test_a_replayed_or_duplicated_return_makes_one_transit(net: Engine) -> None:
    book(net, "D1", BRANCH)
    first = ret("cab-east", "D1")
    batch = SyncBatch(cabinet_id="cab-east", sent_at=NOW, events=[first])
    for _ in range(3):
        send(net, batch, NOW)
    # the same event again among new ones (a re-sent batch after a lost reply)
    sync(net, first, ev("cab-east", "session", session="x"))
    assert len(transit_rows(net, "D1")) == 1
    assert len(tasks(net)) == 1


def test_a_loan_before_pickup_or_a_newer_return_supersedes_the_transit(net: Engine) -> None:
    book(net, "L1", BRANCH)
    sync(net, ret("cab-east", "L1"))
    sync(net, ev("cab-east", "loan", item_id="L1", reader_id="R1", due="2030-06-01", door=1,
                 session="s"))
    (tr,) = transit_rows(net, "L1")
    assert tr.status == "cancelled" and tasks(net) == []
    # returned at another away cabinet: a new transit from there; then at home: it stays
    sync(net, ret("cab-county", "L1"))
    sync(net, ret("cab-main", "L1"))
    assert [(t.from_cabinet_id, t.status) for t in transit_rows(net, "L1")] == [
        ("cab-east", "cancelled"), ("cab-county", "cancelled")]
    assert tasks(net) == []


def test_a_late_return_placed_before_a_later_loan_routes_nothing(net: Engine) -> None:
    book(net, "T1", BRANCH)
    late = ret("cab-east", "T1")  # stamped earlier than the loan below
    sync(net, ev("cab-main", "loan", item_id="T1", reader_id="R1", due="2030-06-01", door=1,
                 session="s"))
    sync(net, late)
    assert where(net, "T1") == ("loaned", None)
    assert transit_rows(net) == []


def test_a_held_book_does_not_go_home(net: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from server import holds

    monkeypatch.setattr(holds, "holder_of", lambda _conn, item: "R1" if item == "HOLD" else None)
    book(net, "HOLD", BRANCH)
    sync(net, ret("cab-east", "HOLD"))
    assert transit_rows(net) == []


def test_a_manifest_loads_and_shelves_and_picks_up_elsewhere(net: Engine) -> None:
    book(net, "X1", BRANCH)
    book(net, "S1", EAST, status="in_cabinet")
    book(net, "IN", EAST, status="on_shelf")
    sync(net, ret("cab-east", "X1"))
    (tr,) = transit_rows(net)
    # X1 found its way into cab-county (moved by hand): taken out there, the cab-east task goes
    sync(net, manifest("cab-county", removed=["X1"]))
    assert transit_rows(net)[0].status == "in_transit" and tasks(net) == []
    sync(net, manifest("cab-east", loaded=["IN", "NOT-AN-ITEM"], removed=["S1"]))
    assert where(net, "IN") == ("in_cabinet", "cab-east")
    assert where(net, "S1") == ("on_shelf", None)
    with net.connect() as conn:
        assert conn.execute(select(items.c.id).where(items.c.id == "NOT-AN-ITEM")).first() is None


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.lists(st.sampled_from(["return", "manifest", "both"]), min_size=1, max_size=5))
def test_any_delivery_of_return_and_manifest_gives_one_transit(net: Engine,
                                                              order: list[str]) -> None:
    """Batches re-sent, reordered, split or merged: one transit, picked up, one task done."""
    n = next(_tick)
    cab, item_id = f"cab-h{n}", f"P{n}"
    add_cabinet(net, cab, EAST)
    book(net, item_id, BRANCH)
    back, out = ret(cab, item_id, seq=1), manifest(cab, removed=[item_id], seq=2)
    chosen = {"return": [back], "manifest": [out], "both": [back, out]}
    for name in [*order, "both"]:  # in the end everything was delivered at least once
        sync(net, *chosen[name])
    (tr,) = transit_rows(net, item_id)
    assert tr.status == "in_transit" and where(net, item_id) == ("in_transit", None)
    assert tasks(net, cabinet_id=cab) == []


# ---------------------------------------------------------------------- HTTP refusals


def test_bad_filters_and_ids_are_clear_4xx(
        net: Engine, staff_client: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, tok = staff_client
    auditor = tok["auditor"]
    assert_error(client.get("/api/restock", params={"branch_id": "nowhere"}, headers=auditor),
                 404, "not_found")
    assert_error(client.get("/api/restock", params={"cabinet_id": "cab-x"}, headers=auditor),
                 404, "not_found")
    assert_error(client.get("/api/restock", params={"cabinet_id": ""}, headers=auditor), 422)
    assert client.get("/api/restock", params={"cabinet_id": "cab-east"},
                      headers=auditor).json() == {"tasks": [], "cabinets": []}
    assert_error(client.get("/api/transits", params={"status": "lost"}, headers=auditor), 422)
    assert_error(client.get("/api/transits", params={"to_branch_id": "nowhere"},
                            headers=auditor), 404, "not_found")
    assert_error(client.get("/api/transits", params={"limit": 0}, headers=auditor), 422)
    staff = tok["branch_staff"]
    assert_error(client.post("/api/transits/999999/receive", headers=staff), 404, "not_found")
    assert_error(client.post("/api/transits/0/receive", headers=staff), 422)
    assert_error(client.post("/api/transits/abc/receive", headers=staff), 422)
    assert_error(client.post("/api/transits/99999999999/receive", headers=staff), 422)
    assert_error(client.post("/api/transits/1/receive", headers=tok["auditor"]), 403, "forbidden")
    # a cancelled transit cannot be received
    book(net, "Z1", BRANCH)
    sync(net, ret("cab-east", "Z1"))
    sync(net, ev("cab-east", "loan", item_id="Z1", reader_id="R1", due="2030-06-01", door=1,
                 session="s"))
    (tr,) = transit_rows(net, "Z1")
    assert_error(client.post(f"/api/transits/{tr.id}/receive", headers=staff), 409,
                 "transit_cancelled")
