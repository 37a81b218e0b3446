"""``server.inventory`` (door snapshots, the discrepancy report) on SQLite and PostgreSQL.

What must hold: every kind is found through the real sync path (a batch carrying
``inventory``); an older snapshot never replaces a newer one; an item that changed after
the count (a return, a loan) is not called missing or unexpected; a cabinet that never
reported is "no snapshot", not "everything missing"; and for any snapshots against any item
states the report partitions: each snapshot item is consistent or in exactly one kind, each
item the server places in the cabinet is seen or ``missing``.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, insert, select

from server import inventory
from server.db import write_tx
from server.schema import door_snapshots, items, libraries
from syncproto.messages import CabinetEvent, DoorSnapshot, SnapshotItem
from tests.server.test_ingest import CAB, NOW, OTHER, batch_of, send, setup_network
from tests.server.test_security import Clock, add_staff, assert_error, bearer, make_app, token_for

HOME = "CN-440300"  # the cabinets' branch's library (setup_network)
SISTER = "CN-330100"  # another library of the network
FOREIGN = "XX-999"  # not in the network

_seqs: dict[str, int] = {}


def fresh(engine: Engine) -> None:
    _seqs.clear()
    setup_network(engine)
    with write_tx(engine) as conn:
        conn.execute(insert(libraries).values(isil=SISTER, name="Hangzhou Library"))


def put(engine: Engine, item_id: str, status: str, cabinet: str | None = None,
        owner: str = HOME) -> None:
    with write_tx(engine) as conn:
        conn.execute(insert(items).values(id=item_id, title="t", status=status, owner_library=owner,
                                          location_cabinet_id=cabinet, version=0))


def ev(kind: str, at: datetime, cab: str = CAB, **payload: Any) -> CabinetEvent:
    seq = _seqs[cab] = _seqs.get(cab, 0) + 1
    return CabinetEvent(cabinet_id=cab, seq=seq, uuid=uuid.uuid4(), kind=kind,  # type: ignore[arg-type]
                        at=at, mono=float(seq), boot_id="b", offline=False, payload=payload)


def ret(item: str, at: datetime, door: int = 1, cab: str = CAB) -> CabinetEvent:
    return ev("return", at, cab, item_id=item, owner_library=HOME, door=door, session="s")


def lend(item: str, at: datetime, cab: str = CAB) -> CabinetEvent:
    return ev("loan", at, cab, item_id=item, reader_id="R1", due="2030-04-01", door=1,
              session="s")


def snap(door: int, at: datetime, *ids: str | tuple[str, str], unreadable: int = 0
         ) -> DoorSnapshot:
    """A door's count; an id alone is owned by HOME, a pair is (id, owner)."""
    seen = [SnapshotItem(item_id=i, owner_library=HOME) if isinstance(i, str)
            else SnapshotItem(item_id=i[0], owner_library=i[1]) for i in ids]
    return DoorSnapshot(door=door, taken_at=at, items=seen, unreadable=unreadable)


def report(engine: Engine, cab: str | None = CAB) -> dict[str, Any]:
    with engine.connect() as conn:
        return inventory.report(conn, cab, now=NOW)


def found(engine: Engine, cab: str | None = CAB) -> set[tuple[str, str, int | None]]:
    return {(r["kind"], r["item_id"], r["door"]) for r in report(engine, cab)["discrepancies"]}


# ---------------------------------------------------------------------- kinds


def test_every_kind_through_the_sync_path(engine: Engine) -> None:
    fresh(engine)
    put(engine, "OK1", "in_cabinet", CAB)  # where it should be: no row
    put(engine, "M1", "in_cabinet", CAB)  # nobody saw it
    put(engine, "U1", "loaned")  # the server thinks a reader has it
    put(engine, "P1", "in_cabinet", OTHER)  # the server thinks it is next door
    put(engine, "O1", "in_cabinet", CAB, owner=SISTER)  # a sister library's book
    taken = NOW - timedelta(hours=1)
    send(engine, batch_of([], inventory=[
        snap(1, taken, "OK1", "U1", "U2", unreadable=2),
        snap(2, taken, "P1", ("O1", SISTER), ("F1", FOREIGN)),
    ]))
    rows = {r["item_id"]: r for r in report(engine)["discrepancies"]}
    assert {(r["kind"], i, r["door"]) for i, r in rows.items()} == {
        ("missing", "M1", None), ("unexpected", "U1", 1), ("unexpected", "U2", 1),
        ("misplaced", "P1", 2), ("other_library", "O1", 2), ("foreign", "F1", 2)}
    assert rows["U1"]["believed"] == {"status": "loaned", "location_cabinet_id": None}
    assert rows["U2"]["believed"] == {"status": "unknown", "location_cabinet_id": None}
    assert rows["P1"]["believed"] == {"status": "in_cabinet", "location_cabinet_id": OTHER}
    assert rows["F1"]["owner_library"] == FOREIGN
    assert rows["U1"]["snapshot_at"] == taken.isoformat()
    assert rows["U1"]["snapshot_age_s"] == 3600.0
    (cab,) = report(engine)["cabinets"]
    assert (cab["status"], cab["doors_reported"], cab["items_seen"], cab["unreadable"]) == (
        "ok", [1, 2], 6, 2)
    assert (cab["missing_count"], cab["unexpected_count"], cab["foreign_count"]) == (1, 2, 1)


def test_missing_uses_the_door_the_book_went_into(engine: Engine) -> None:
    """A book returned into a door that later counted without it is missing there; one
    returned into a door that never reported is unverified, not missing."""
    fresh(engine)
    early = NOW - timedelta(hours=2)
    send(engine, batch_of([ret("M3", early, door=3), ret("M4", early, door=4)]))
    send(engine, batch_of([], inventory=[snap(3, NOW - timedelta(hours=1))]))
    assert found(engine) == {("missing", "M3", 3)}
    (cab,) = report(engine)["cabinets"]
    assert (cab["unverified"], cab["changed_since"], cab["doors_reported"]) == (1, 0, [3])


def test_a_restock_load_names_the_door(engine: Engine) -> None:
    """Loaded by staff into door 2 (a restock manifest): door 2's later count decides."""
    fresh(engine)
    put(engine, "K1", "on_shelf")
    manifest = {"door": 2, "staff_id": "S1", "loaded": ["K1"], "removed": [], "unreadable": [],
                "cabinet_id": CAB, "session": "r1", "signature": "", "public_key": ""}
    send(engine, batch_of([ev("restock", NOW - timedelta(hours=2), manifest=manifest)],
                          inventory=[snap(2, NOW - timedelta(hours=3))]))
    with engine.connect() as conn:
        assert conn.execute(select(items.c.status, items.c.location_cabinet_id)
                            .where(items.c.id == "K1")).one() == ("in_cabinet", CAB)
    assert found(engine) == set()  # counted before it was loaded
    assert report(engine)["cabinets"][0]["changed_since"] == 1
    send(engine, batch_of([], inventory=[snap(2, NOW - timedelta(hours=1))]))
    assert found(engine) == {("missing", "K1", 2)}


def test_a_cabinet_that_never_reported_is_no_snapshot_not_all_missing(engine: Engine) -> None:
    fresh(engine)
    put(engine, "X1", "in_cabinet", OTHER)
    put(engine, "X2", "in_cabinet", OTHER)
    send(engine, batch_of([], inventory=[snap(1, NOW, "Y1")]))  # only CAB reports
    assert found(engine, OTHER) == set()
    assert [(c["cabinet_id"], c["status"]) for c in report(engine, None)["cabinets"]] == [
        (CAB, "ok"), (OTHER, "no_snapshot")]


# ---------------------------------------------------------------------- time


def test_an_older_snapshot_never_replaces_a_newer_one(engine: Engine) -> None:
    fresh(engine)
    new, old = NOW - timedelta(minutes=5), NOW - timedelta(minutes=50)
    send(engine, batch_of([], inventory=[snap(1, new, "A")]))
    send(engine, batch_of([], inventory=[snap(1, old, "B")]))  # a re-sent older batch
    send(engine, batch_of([], inventory=[snap(1, new, "C")]))  # same time: the first stays
    # two counts of one door in one batch: the later wins, whatever their order
    send(engine, batch_of([], inventory=[snap(2, new, "D"), snap(2, old, "E")]))
    with engine.connect() as conn:
        stored = {r.door: ([i["item_id"] for i in r.items], r.taken_at)
                  for r in conn.execute(select(door_snapshots))}
    assert stored == {1: (["A"], new), 2: (["D"], new)}
    assert found(engine) == {("unexpected", "A", 1), ("unexpected", "D", 2)}


@pytest.mark.parametrize("clock_ahead_s", [0, 3600])
def test_changes_after_the_count_are_not_discrepancies(engine: Engine,
                                                       clock_ahead_s: int) -> None:
    """Returned after the count → not missing; lent after it → not unexpected; the next
    count judges them. Times compare after the cabinet's clock offset is taken out."""
    fresh(engine)
    put(engine, "L9", "in_cabinet", CAB)
    skew = timedelta(seconds=clock_ahead_s)  # the cabinet's clock runs this much ahead

    def cab_time(minutes_ago: int) -> datetime:
        return NOW - timedelta(minutes=minutes_ago) + skew

    send(engine, batch_of([ret("R9", cab_time(10)), lend("L9", cab_time(5))],
                          sent_at=NOW + skew, inventory=[snap(1, cab_time(30), "L9")]))
    assert found(engine) == set()
    (cab,) = report(engine)["cabinets"]
    assert cab["changed_since"] == 2
    # the next count, after both: R9 is there, L9 is not (it is with the reader)
    send(engine, batch_of([], sent_at=NOW + skew, inventory=[snap(1, cab_time(1), "R9")]))
    assert found(engine) == set() and report(engine)["cabinets"][0]["changed_since"] == 0
    # and a count without R9 after its return does call it missing
    send(engine, batch_of([], sent_at=NOW + skew, inventory=[snap(1, cab_time(0))]))
    assert found(engine) == {("missing", "R9", 1)}


# ---------------------------------------------------------------------- the partition

STATES = ("absent", "on_shelf", "loaned", "lost", "in_transit", "here", "next_door")
OWNERS = (HOME, SISTER, FOREIGN, "")
POOL = [f"I{i}" for i in range(8)]

item_states = st.fixed_dictionaries({i: st.tuples(st.sampled_from(STATES),
                                                  st.sampled_from(OWNERS)) for i in POOL})
door_contents = st.dictionaries(st.integers(1, 3), st.lists(
    st.tuples(st.sampled_from(POOL), st.sampled_from(OWNERS)), max_size=6), max_size=3)


def _expected_kind(state: str, owner: str) -> str | None:
    """The oracle: the contract's kinds written out plainly."""
    if owner and owner not in (HOME, SISTER):
        return "foreign"
    if state != "here" and state != "next_door":
        return "unexpected"
    if state == "next_door":
        return "misplaced"
    if owner == SISTER:
        return "other_library"
    return None


def _load(conn: Connection, states: dict[str, tuple[str, str]],
          doors: dict[int, list[tuple[str, str]]]) -> None:
    conn.execute(delete(door_snapshots))
    conn.execute(delete(items))
    for item_id, (state, owner) in states.items():
        if state == "absent":
            continue
        status = {"here": "in_cabinet", "next_door": "in_cabinet"}.get(state, state)
        where = {"here": CAB, "next_door": OTHER}.get(state)
        conn.execute(insert(items).values(id=item_id, status=status, owner_library=owner,
                                          location_cabinet_id=where, version=0))
    for door, seen in doors.items():
        conn.execute(insert(door_snapshots).values(
            cabinet_id=CAB, door=door, taken_at=NOW - timedelta(minutes=door), received_at=NOW,
            unreadable=0, items=[{"item_id": i, "owner_library": o} for i, o in seen]))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(states=item_states, doors=door_contents)
def test_the_report_partitions_snapshots_and_items(engine: Engine,
                                                   states: dict[str, tuple[str, str]],
                                                   doors: dict[int, list[tuple[str, str]]]
                                                   ) -> None:
    with engine.connect() as conn:
        ready = conn.execute(select(libraries.c.isil).where(libraries.c.isil == SISTER)).first()
    if ready is None:  # once per database: hypothesis reuses the test's fixture
        fresh(engine)
    with engine.connect() as conn:
        with conn.begin() as tx:
            _load(conn, states, doors)
            rows = inventory.discrepancies(conn, CAB)
            tx.rollback()
    by_item: dict[str, list[str]] = {}
    for row in rows:
        by_item.setdefault(row["item_id"], []).append(row["kind"])
    assert all(len(kinds) == 1 for kinds in by_item.values()), by_item  # one kind at most
    # the newest door that saw an item decides its reported owner (doors 1..3: 1 is newest)
    seen: dict[str, str] = {}
    for door in sorted(doors, reverse=True):
        for item_id, owner in doors[door]:
            seen[item_id] = owner
    for item_id in POOL:
        state, stored_owner = states[item_id]
        got = by_item.get(item_id, [None])[0]
        if item_id in seen:
            owner = seen[item_id] or (stored_owner if state != "absent" else "")
            assert got == _expected_kind(state, owner), (item_id, state, owner, got)
        elif state == "here" and doors:  # a cabinet with no count at all has no rows
            assert got == "missing", (item_id, got)
        else:
            assert got is None, (item_id, got)


# ---------------------------------------------------------------------- HTTP


def _client(engine: Engine) -> tuple[TestClient, dict[str, str]]:
    staff_id = add_staff(engine, "auditor-1", "auditor")
    clock = Clock(NOW)
    return (TestClient(make_app(engine, clock), raise_server_exceptions=False),
            bearer(token_for(engine, staff_id, NOW)))


def test_http_json_and_csv(engine: Engine) -> None:
    fresh(engine)
    put(engine, "M1", "in_cabinet", CAB)
    put(engine, "U1", "loaned")
    send(engine, batch_of([], inventory=[snap(1, NOW - timedelta(minutes=10), "U1",
                                              ("=cmd", FOREIGN))]))
    client, auth = _client(engine)
    with client:
        body = client.get("/api/reports/discrepancies", headers=auth).json()
        assert set(body) == {"generated_at", "discrepancies", "cabinets"}
        assert [(r["kind"], r["item_id"]) for r in body["discrepancies"]] == [
            ("foreign", "=cmd"), ("unexpected", "U1"), ("missing", "M1")]
        assert {c["cabinet_id"]: c["status"] for c in body["cabinets"]} == {
            CAB: "ok", OTHER: "no_snapshot"}

        response = client.get("/api/reports/discrepancies",
                              params={"cabinet_id": CAB, "format": "csv"}, headers=auth)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert 'filename="lendbox-discrepancies-cab-0001-' in response.headers[
            "content-disposition"]
        parsed = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
        assert [(r["kind"], r["item_id"], r["door"], r["believed_status"]) for r in parsed] == [
            ("foreign", "'=cmd", "1", "unknown"),  # a formula is defused for spreadsheets
            ("unexpected", "U1", "1", "loaned"), ("missing", "M1", "", "in_cabinet")]

        response = client.get("/api/reports/discrepancies",
                              params={"format": "csv", "table": "cabinets"}, headers=auth)
        parsed = list(csv.DictReader(io.StringIO(response.text)))
        assert [(r["cabinet_id"], r["status"], r["missing_count"]) for r in parsed] == [
            (CAB, "ok", "1"), (OTHER, "no_snapshot", "0")]

        assert_error(client.get("/api/reports/discrepancies", params={"cabinet_id": "nope"},
                                headers=auth), 404, "unknown_cabinet")
        assert_error(client.get("/api/reports/discrepancies", params={"format": "xml"},
                                headers=auth), 422)


# ---------------------------------------------------------------------- adopting a count


def test_adopting_a_count_makes_it_the_stock_and_leaves_loans_to_staff(engine: Engine) -> None:
    fresh(engine)
    put(engine, "S1", "on_shelf")  # catalogued, never seen arriving
    put(engine, "L1", "lost")  # found again
    put(engine, "P1", "in_cabinet", OTHER)  # moved by hand
    put(engine, "U1", "loaned")  # a return never recorded? a person decides
    put(engine, "M1", "in_cabinet", CAB)  # not seen: stays missing, adopt adds no verdict
    send(engine, batch_of([], inventory=[snap(1, NOW - timedelta(minutes=5), "S1", "L1", "P1",
                                              "U1", "NEW1")]))
    staff_id = add_staff(engine, "operator-1", "operator")
    client = TestClient(make_app(engine, Clock(NOW)), raise_server_exceptions=False)
    auth = bearer(token_for(engine, staff_id, NOW))
    with client:
        r = client.post(f"/api/cabinets/{CAB}/inventory/adopt", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json() == {"cabinet_id": CAB, "adopted": 4,
                            "left": [{"item_id": "U1", "status": "loaned"}]}
        assert_error(client.post(f"/api/cabinets/{OTHER}/inventory/adopt", headers=auth),
                     409, "no_snapshot")
        assert_error(client.post("/api/cabinets/nope/inventory/adopt", headers=auth),
                     404, "unknown_cabinet")
    with engine.connect() as conn:
        rows = {r.id: (r.status, r.location_cabinet_id) for r in conn.execute(select(items))}
    for item_id in ("S1", "L1", "P1", "NEW1"):
        assert rows[item_id] == ("in_cabinet", CAB)
    assert rows["U1"] == ("loaned", None)
    assert found(engine) == {("unexpected", "U1", 1), ("missing", "M1", None)}
