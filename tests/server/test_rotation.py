"""Collection rotation (``server.rotation``, ``server.routes_rotation``) on both databases.

What must hold: each take-out and each bring-in rule picks exactly the books it names on a
hand-built collection, and nothing unavailable (loaned, lost, already being moved, held for
another cabinet, damaged, of another branch); the size of the proposal and its split by
theme shares are the numbers worked out by hand below; applying it puts rotation tasks on
the restock list once (a second apply the same day adds nothing), and the cabinet's restock
manifest, through the real sync path, closes them. For random collections the proposal
never overfills the cabinet, never names a book twice and never moves an unavailable book.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, insert, select, update

from server import ingest, restock, rotation
from server.db import lock_cabinet, write_tx
from server.schema import (
    audit,
    branches,
    cabinets,
    collection_profiles,
    door_snapshots,
    events,
    holds,
    items,
    libraries,
    readers,
    recommendations,
    restock_tasks,
)
from syncproto.messages import CabinetEvent, SyncBatch
from tests.server.test_security import Clock, add_staff, assert_error, bearer, make_app, token_for

NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
LIB = "CN-440300"
HOME, AWAY = "B1", "B2"
CAB, OTHER, SIMILAR, UNLIKE = "cab-r1", "cab-r2", "cab-r3", "cab-r4"
_hold_ids = itertools.count(1)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def setup(engine: Engine, *, capacity: int = 0, floating: bool = False) -> None:
    """One library, the cabinet's branch and another, four cabinets, one reader."""
    with write_tx(engine) as conn:
        conn.execute(insert(libraries).values(isil=LIB, name="Shenzhen Library"))
        for branch in (HOME, AWAY):
            conn.execute(insert(branches).values(id=branch, name=branch, library_isil=LIB,
                                                 floating=floating and branch == HOME))
        for cab in (CAB, OTHER, SIMILAR, UNLIKE):
            conn.execute(insert(cabinets).values(
                id=cab, branch_id=HOME, name=cab, location="", public_key="k" * 43,
                registered_at=NOW, active=True, applied_through=0, deny_version_sent=0,
                capacity=capacity if cab == CAB else 0))
        conn.execute(insert(readers).values(id="R1", display_name="r", role="reader",
                                            tier="standard", status="ok", registered_at=NOW))


def profile(engine: Engine, themes: dict[str, float], *, cab: str = CAB, per_door: int = 10,
            stale_days: int = 60) -> None:
    with write_tx(engine) as conn:
        rotation.put_profile(conn, cab, themes=themes, per_door=per_door, stale_days=stale_days,
                             now=NOW)


def book(conn: Connection, item_id: str, category: str = "I247", *, status: str = "on_shelf",
         cab: str | None = None, **values: Any) -> None:
    values.setdefault("home_branch_id", HOME)
    if status == "in_cabinet" and cab is None:
        cab = CAB
    conn.execute(insert(items).values(id=item_id, title=f"title {item_id}", category=category,
                                      owner_library=LIB, status=status, location_cabinet_id=cab,
                                      version=0, **values))


def hold(conn: Connection, item_id: str, cab: str, status: str = "waiting") -> int:
    return int(conn.execute(insert(holds).values(
        reader_id="R1", item_id=item_id, pickup_cabinet_id=cab, status=status,
        placed_at=days_ago(2)).returning(holds.c.id)).scalar_one())


def loan_event(conn: Connection, cab: str, item_id: str, at: datetime) -> None:
    seq = next(_hold_ids)
    conn.execute(insert(events).values(
        cabinet_id=cab, seq=seq, uuid=str(uuid.uuid4()), kind="loan", at=at, at_corrected=at,
        mono=float(seq), boot_id="b", offline=False, payload={"item_id": item_id},
        item_id=item_id, received_at=at, applied=True))


def propose(engine: Engine, cab: str = CAB) -> rotation.Proposal:
    with engine.connect() as conn:
        return rotation.propose(conn, cab, NOW)


def reasons(lines: list[rotation.Line]) -> list[tuple[str, str]]:
    return [(line.item_id, line.reason) for line in lines]


# ---------------------------------------------------------------------- take out


def test_each_take_out_rule_and_what_is_never_taken_out(engine: Engine) -> None:
    setup(engine)
    profile(engine, {"I": 0.6, "K": 0.4}, stale_days=60)
    with write_tx(engine) as conn:
        book(conn, "D1", status="in_cabinet", damaged=True, last_loan_at=days_ago(1))
        book(conn, "O1", status="in_cabinet", home_branch_id=AWAY, last_loan_at=days_ago(1))
        book(conn, "P1", "TP312", status="in_cabinet", last_loan_at=days_ago(1))
        book(conn, "S1", status="in_cabinet", last_loan_at=days_ago(90), acquired_at=days_ago(400))
        book(conn, "S2", "K825", status="in_cabinet", acquired_at=days_ago(100))
        book(conn, "F1", status="in_cabinet", last_loan_at=days_ago(10), acquired_at=days_ago(400))
        book(conn, "U1", "", status="in_cabinet")  # unclassified, no dates: no evidence
        book(conn, "H1", status="in_cabinet", last_loan_at=days_ago(90))
        hold(conn, "H1", CAB, "ready")  # waiting to be picked up here
        book(conn, "T1", status="in_cabinet", home_branch_id=AWAY)
        restock.add_task(conn, cabinet_id=CAB, item_id="T1", action="unload",
                         reason="transit_home", ref="transit:1", now=NOW)
        book(conn, "X1", "TP312", status="in_cabinet", cab=OTHER)  # another cabinet's
    proposal = propose(engine)
    assert reasons(proposal.take_out) == [("D1", "damaged"), ("O1", "other_branch"),
                                          ("P1", "off_profile"), ("S1", "stale"),
                                          ("S2", "stale")]
    detail = {line.item_id: line.detail for line in proposal.take_out}
    assert detail["S1"] == "last lent 2029-12-01, 90 days ago (stale after 60)"
    assert detail["S2"].startswith("never lent; acquired 2029-11-21")
    assert detail["P1"] == "class T is not one of the themes IK"
    assert proposal.take_out[0].as_dict() == {"item_id": "D1", "title": "title D1",
                                              "category": "I247", "reason": "damaged",
                                              "detail": "marked damaged"}


def test_a_floating_branch_keeps_other_branches_books(engine: Engine) -> None:
    setup(engine, floating=True)
    profile(engine, {})  # general collection: nothing is off-profile
    with write_tx(engine) as conn:
        book(conn, "O1", status="in_cabinet", home_branch_id=AWAY, last_loan_at=days_ago(1))
        book(conn, "P1", "TP312", status="in_cabinet", last_loan_at=days_ago(1))
    assert propose(engine).take_out == []


# ---------------------------------------------------------------------- bring in


def test_each_bring_in_rule_and_what_is_never_brought_in(engine: Engine) -> None:
    setup(engine, capacity=100)
    profile(engine, {"I": 0.5, "K": 0.5})
    profile(engine, {"K": 1.0}, cab=SIMILAR)
    profile(engine, {"T": 1.0}, cab=UNLIKE)
    with write_tx(engine) as conn:
        book(conn, "HOLD1", "O1")  # off-profile, but a reader waits for it here
        hold_id = hold(conn, "HOLD1", CAB)
        book(conn, "HOLD2", acquired_at=days_ago(1))
        hold(conn, "HOLD2", OTHER)  # new, but held for another cabinet
        book(conn, "REC1")
        book(conn, "REC_OLD")
        for rec, at in (("REC1", days_ago(5)), ("REC_OLD", days_ago(40))):
            conn.execute(insert(recommendations).values(
                reader_id="R1", title=rec, status="shelved", item_id=rec, history=[],
                created_at=days_ago(60), updated_at=at))
        book(conn, "NEW1", "K825", acquired_at=days_ago(3))
        book(conn, "NEW_OLD", "K825", acquired_at=days_ago(40), last_loan_at=days_ago(39))
        # a title lent three times at a similar cabinet: another copy of it comes in
        book(conn, "POP0", "K81", status="in_cabinet", cab=SIMILAR, isbn="9787000000001")
        book(conn, "POP1", "K81", isbn="9787000000001", last_loan_at=days_ago(20))
        for n in (1, 2, 3):
            loan_event(conn, SIMILAR, "POP0", days_ago(n * 5))
        loan_event(conn, SIMILAR, "POP0", days_ago(45))  # too long ago to count
        # lent at a cabinet of other themes only: not "similar"
        book(conn, "UNL0", "K81", status="in_cabinet", cab=UNLIKE, isbn="9787000000002")
        book(conn, "UNL1", "K81", isbn="9787000000002", last_loan_at=days_ago(20))
        loan_event(conn, UNLIKE, "UNL0", days_ago(2))
        # recent, but not to be moved
        obstacles: list[tuple[str, dict[str, Any]]] = [
            ("LOANED", {"status": "loaned"}), ("LOST", {"status": "lost"}),
            ("DMG", {"damaged": True}), ("REF", {"reference_only": True}),
            ("AWAYB", {"home_branch_id": AWAY}), ("BUSY", {}), ("OFFP", {"category": "TP3"})]
        for item_id, extra in obstacles:
            book(conn, item_id, **{"acquired_at": days_ago(2), **extra})
        restock.add_task(conn, cabinet_id=OTHER, item_id="BUSY", action="load",
                         reason="hold", ref="hold:99", now=NOW)
    proposal = propose(engine)
    assert reasons(proposal.bring_in) == [("HOLD1", "hold"), ("REC1", "recommended"),
                                          ("NEW1", "new_acquisition"), ("POP1", "popular_nearby")]
    detail = {line.item_id: line.detail for line in proposal.bring_in}
    assert detail["HOLD1"] == f"hold {hold_id} placed 2030-02-27 picks up here"
    assert detail["REC1"].startswith("荐购 ") and detail["REC1"].endswith("shelved 2030-02-24")
    assert detail["NEW1"] == "acquired 2030-02-26"
    assert detail["POP1"] == "3 loans in the last 30 days at similar cabinets"
    assert proposal.take_out == []


# ---------------------------------------------------------------------- sizing


def test_size_and_theme_split_are_the_hand_computed_numbers(engine: Engine) -> None:
    """capacity 10, stock 6 with 2 stale → free = 10 − 6 + 2 = 6; one hold first → 5 left;
    shares I 0.5, K 0.3: I 2.5, K 1.5, floor(0.8 × 5) = 4 slots → I 2+1 (tie → I), K 1; the
    fifth slot (the unshared 0.2) goes to the next candidate in priority order."""
    setup(engine, capacity=10)
    profile(engine, {"I": 0.5, "K": 0.3})
    with write_tx(engine) as conn:
        for n in range(4):
            book(conn, f"IN{n}", status="in_cabinet", last_loan_at=days_ago(5))
        book(conn, "OLD1", status="in_cabinet", last_loan_at=days_ago(61))
        book(conn, "OLD2", "K1", status="in_cabinet", last_loan_at=days_ago(200))
        book(conn, "WANT", "I2")
        hold(conn, "WANT", CAB)
        for order, item_id in enumerate(("I1", "K1", "I2", "K2", "I3", "K3", "I4", "I5"), 1):
            book(conn, item_id, f"{item_id[0]}3", acquired_at=days_ago(order))
    proposal = propose(engine)
    assert (proposal.capacity, proposal.capacity_source, proposal.stock, proposal.free) == (
        10, "cabinet", 6, 6)
    assert reasons(proposal.take_out) == [("OLD1", "stale"), ("OLD2", "stale")]
    assert proposal.quotas == {"I": 3, "K": 1}
    assert [line.item_id for line in proposal.bring_in] == ["WANT", "I1", "K1", "I2", "K2", "I3"]
    assert rotation.quotas({"A": 0.34, "B": 0.33, "C": 0.33}, 10) == {"A": 4, "B": 3, "C": 3}
    assert rotation.quotas({"A": 0.1}, 5) == {"A": 0}


def test_without_a_capacity_doors_times_per_door_else_one_for_one(engine: Engine) -> None:
    setup(engine, capacity=0)
    profile(engine, {"I": 1.0}, per_door=4)
    with write_tx(engine) as conn:
        book(conn, "OLD1", status="in_cabinet", last_loan_at=days_ago(100))
        book(conn, "KEEP", status="in_cabinet", last_loan_at=days_ago(1))
        for n in range(10):
            book(conn, f"N{n}", acquired_at=days_ago(1 + n))
    # no snapshots: the stock is the capacity, the stale book is swapped for one new book
    proposal = propose(engine)
    assert (proposal.capacity, proposal.capacity_source, proposal.free) == (2, "stock", 1)
    assert [line.item_id for line in proposal.bring_in] == ["N0"]
    with write_tx(engine) as conn:
        for door in (1, 2):
            conn.execute(insert(door_snapshots).values(cabinet_id=CAB, door=door, taken_at=NOW,
                                                       items=[], unreadable=0, received_at=NOW))
    proposal = propose(engine)  # 2 doors × 4 = 8; 8 − 2 + 1 = 7
    assert (proposal.capacity, proposal.capacity_source, proposal.free) == (8, "doors", 7)
    assert len(proposal.bring_in) == 7


# ---------------------------------------------------------------------- HTTP: apply, profile


@dataclass
class Api:
    engine: Engine
    client: TestClient
    staff: dict[str, dict[str, str]]  # role → headers


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    setup(engine, capacity=4)
    clock = Clock(NOW)
    with write_tx(engine) as conn:  # test_security's staff helpers hang staff on its branch
        conn.execute(insert(libraries).values(isil="CN-330100", name="杭州图书馆"))
        conn.execute(insert(branches).values(id="hz-main", name="总馆", library_isil="CN-330100",
                                             floating=False))
    headers = {role: bearer(token_for(engine, add_staff(engine, f"{role}-1", role), NOW))
               for role in ("operator", "branch_staff", "auditor")}
    with TestClient(make_app(engine, clock), raise_server_exceptions=False) as client:
        yield Api(engine, client, headers)


def send_manifest(engine: Engine, loaded: list[str], removed: list[str]) -> None:
    """The cabinet's restock handover, through the real sync path (ingest.apply_batch)."""
    manifest = {"door": 1, "staff_id": "S1", "loaded": loaded, "removed": removed,
                "unreadable": [], "cabinet_id": CAB, "session": "rs1", "signature": "",
                "public_key": ""}
    event = CabinetEvent(cabinet_id=CAB, seq=1, uuid=uuid.uuid4(), kind="restock", at=NOW,
                         mono=1.0, boot_id="b", offline=False, payload={"manifest": manifest})
    with write_tx(engine) as conn:
        row = lock_cabinet(conn, CAB)
        assert row is not None
        ingest.apply_batch(conn, row, SyncBatch(cabinet_id=CAB, sent_at=NOW, events=[event]), NOW)


def test_apply_makes_restock_tasks_once_and_the_manifest_closes_them(api: Api) -> None:
    with write_tx(api.engine) as conn:
        book(conn, "OLD1", status="in_cabinet", last_loan_at=days_ago(100))
        book(conn, "KEEP", status="in_cabinet", last_loan_at=days_ago(1))
        book(conn, "NEW1", acquired_at=days_ago(1))
        book(conn, "NEW2", acquired_at=days_ago(2))
        book(conn, "NEW3", acquired_at=days_ago(3))
        book(conn, "NEW4", acquired_at=days_ago(4))
    staff = api.staff["branch_staff"]
    put = api.client.put(f"/api/cabinets/{CAB}/profile", headers=staff,
                         json={"themes": {"I": 1}, "per_door": 5, "stale_days": 60})
    assert put.status_code == 200, put.text
    assert put.json()["themes"] == {"I": 1.0}
    shown = api.client.get(f"/api/cabinets/{CAB}/rotation", headers=api.staff["auditor"])
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert (body["capacity"], body["stock"], body["free"]) == (4, 2, 3)  # 4 − 2 + 1
    assert [(out["item_id"], out["reason"]) for out in body["take_out"]] == [("OLD1", "stale")]
    assert [came["item_id"] for came in body["bring_in"]] == ["NEW1", "NEW2", "NEW3"]

    applied = api.client.post(f"/api/cabinets/{CAB}/rotation/apply", headers=staff)
    assert applied.status_code == 200, applied.text
    ref = "rotation:cab-r1:2030-03-01"
    assert applied.json()["ref"] == ref
    assert [(t["item_id"], t["action"], t["reason"]) for t in applied.json()["created"]] == [
        ("OLD1", "unload", "rotation_out"), ("NEW1", "load", "rotation_in"),
        ("NEW2", "load", "rotation_in"), ("NEW3", "load", "rotation_in")]
    with api.engine.connect() as conn:
        tasks = restock.open_tasks(conn, cabinet_id=CAB)
        logged = conn.execute(select(audit).where(audit.c.action == "rotation.apply")).all()
    assert [(t["item_id"], t["action"], t["ref"]) for t in tasks] == [
        ("OLD1", "unload", ref), ("NEW1", "load", ref), ("NEW2", "load", ref),
        ("NEW3", "load", ref)]
    assert [(a.actor, a.target, a.detail["take_out"], a.detail["bring_in"]) for a in logged] == [
        ("branch_staff-1", CAB, 1, 3)]

    again = api.client.post(f"/api/cabinets/{CAB}/rotation/apply", headers=staff)
    assert again.status_code == 200 and again.json()["created"] == []
    after = api.client.get(f"/api/cabinets/{CAB}/rotation", headers=staff).json()
    assert (after["take_out"], after["bring_in"], after["free"]) == ([], [], 0)
    assert len(after["open_tasks"]) == 4

    send_manifest(api.engine, loaded=["NEW1", "NEW2", "NEW3"], removed=["OLD1"])
    with api.engine.connect() as conn:
        assert restock.open_tasks(conn, cabinet_id=CAB) == []
        done = conn.execute(select(restock_tasks.c.status).where(
            restock_tasks.c.ref == ref)).scalars().all()
    assert done == ["done"] * 4


BAD_PROFILES: list[tuple[Any, str]] = [
    ({"themes": {"L": 0.5}}, "not 中图法 class letters: 'L'"),
    ({"themes": {"i": 0.5}}, "not 中图法 class letters: 'i'"),
    ({"themes": {"W": 0.1, "Y": 0.1}}, "'W', 'Y'"),
    ({"themes": {"I": 0.6, "K": 0.5}}, "the shares sum to 1.1"),
    ({"themes": {"I": 1.5}}, "from 0 to 1"),
    ({"themes": {"I": -0.1}}, "from 0 to 1"),
    ({"themes": {"I": True}}, "themes.I"),
    ({"themes": {"I": "0.5"}}, "themes.I"),
    ({"themes": {"I": 0.5}, "per_door": 0}, "per_door"),
    ({"themes": {"I": 0.5}, "per_door": 501}, "per_door"),
    ({"themes": {"I": 0.5}, "stale_days": 0}, "stale_days"),
    ({"themes": {"I": 0.5}, "stale_days": 3651}, "stale_days"),
    ({"themes": {"I": 0.5}, "colour": "red"}, "colour"),
    ({"per_door": 10}, "themes"),
    ([], "body"),
]


def test_bad_profiles_are_422_and_unknown_or_unprofiled_cabinets_404_409(api: Api) -> None:
    staff = api.staff["operator"]
    for body, words in BAD_PROFILES:
        answer = api.client.put(f"/api/cabinets/{CAB}/profile", headers=staff, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert words in assert_error(answer, 422)["detail"], (body, answer.text)
    assert api.client.put(f"/api/cabinets/{CAB}/profile", headers=staff, content=b"{1",
                          ).status_code == 422
    with api.engine.connect() as conn:
        assert conn.execute(select(collection_profiles)).all() == []
    good = {"themes": {"I": 0.5}}
    for method, path in (("PUT", "profile"), ("GET", "profile"), ("GET", "rotation"),
                         ("POST", "rotation/apply")):
        answer = api.client.request(method, f"/api/cabinets/nope/{path}", headers=staff,
                                    json=good if method == "PUT" else None)
        assert assert_error(answer, 404, "unknown_cabinet"), (method, path)
    assert_error(api.client.get(f"/api/cabinets/{CAB}/profile", headers=staff), 404, "no_profile")
    for method, path in (("GET", "rotation"), ("POST", "rotation/apply")):
        answer = api.client.request(method, f"/api/cabinets/{CAB}/{path}", headers=staff)
        detail = assert_error(answer, 409, "no_profile")["detail"]
        assert "PUT /api/cabinets/cab-r1/profile" in detail
    made = api.client.put(f"/api/cabinets/{CAB}/profile", headers=staff, json=good)
    assert made.status_code == 200
    assert api.client.get(f"/api/cabinets/{CAB}/profile", headers=staff).json() == made.json() == {
        "cabinet_id": CAB, "themes": {"I": 0.5}, "per_door": 10, "stale_days": 60,
        "updated_at": NOW.isoformat()}
    # 0.1 + 0.2 + 0.7 is a float hair over 1: still a full profile
    full = api.client.put(f"/api/cabinets/{CAB}/profile", headers=staff,
                          json={"themes": {"A": 0.1, "B": 0.2, "Z": 0.7}})
    assert full.status_code == 200, full.text


# ---------------------------------------------------------------------- property

STATUSES = ("on_shelf",) * 3 + ("in_cabinet",) * 3 + ("loaned", "lost", "missing", "in_transit")
_rarely = (False,) * 4 + (True,)
# mostly ordinary books (so that most proposals move some), with every obstacle now and then
book_specs = st.lists(st.fixed_dictionaries({
    "status": st.sampled_from(STATUSES),
    "cab": st.sampled_from((CAB, CAB, OTHER)),
    "letter": st.sampled_from("IIKKTO "),
    "isbn": st.sampled_from((None, None, "111", "222")),
    "damaged": st.sampled_from(_rarely),
    "away": st.sampled_from(_rarely),
    "loan_age": st.none() | st.integers(0, 120),
    "acq_age": st.none() | st.integers(0, 45),
    "hold": st.sampled_from((None,) * 4 + ((CAB, "waiting"), (CAB, "ready"), (OTHER, "assigned"))),
    "task": st.sampled_from((None,) * 5 + ((CAB, "unload"), (CAB, "load"), (OTHER, "load"))),
    "rec_age": st.none() | st.integers(0, 60),
    "lent_at": st.sampled_from((None, None, SIMILAR, UNLIKE)),
}), min_size=6, max_size=25)


def _reset(engine: Engine) -> None:
    with write_tx(engine) as conn:
        for table in (restock_tasks, holds, recommendations, events, door_snapshots,
                      collection_profiles, items):
            conn.execute(delete(table))


def _build(engine: Engine, specs: list[dict[str, Any]], capacity: int,
           themes: dict[str, float]) -> None:
    with write_tx(engine) as conn:
        conn.execute(update(cabinets).where(cabinets.c.id == CAB).values(capacity=capacity))
        for n, spec in enumerate(specs):
            item_id = f"it{n:02d}"
            age = {k: None if spec[k] is None else days_ago(spec[k])
                   for k in ("loan_age", "acq_age")}
            book(conn, item_id, f"{spec['letter']}1".strip(), status=spec["status"],
                 cab=spec["cab"] if spec["status"] == "in_cabinet" else None, isbn=spec["isbn"],
                 damaged=spec["damaged"], home_branch_id=AWAY if spec["away"] else HOME,
                 last_loan_at=age["loan_age"], acquired_at=age["acq_age"])
            if spec["hold"]:
                hold(conn, item_id, *spec["hold"])
            if spec["task"]:
                restock.add_task(conn, cabinet_id=spec["task"][0], item_id=item_id,
                                 action=spec["task"][1], reason="misplaced", ref="x", now=NOW)
            if spec["rec_age"] is not None:
                conn.execute(insert(recommendations).values(
                    reader_id="R1", title="t", status="shelved", item_id=item_id, history=[],
                    created_at=NOW, updated_at=days_ago(spec["rec_age"])))
            if spec["lent_at"]:
                loan_event(conn, spec["lent_at"], item_id, days_ago(3))
        for cab, cab_themes in ((CAB, themes), (SIMILAR, {"I": 1.0}), (UNLIKE, {"T": 1.0})):
            rotation.put_profile(conn, cab, themes=cab_themes, per_door=5, stale_days=60, now=NOW)


shares = st.dictionaries(st.sampled_from("IKT"), st.sampled_from((0.0, 0.2, 0.3, 0.5)),
                         max_size=3).filter(lambda d: sum(d.values()) <= 1)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=book_specs, capacity=st.sampled_from((0, 0, 5, 10, 20, 30)), themes=shares)
def test_a_proposal_never_overfills_repeats_or_moves_the_unavailable(
        engine: Engine, specs: list[dict[str, Any]], capacity: int,
        themes: dict[str, float]) -> None:
    if not getattr(engine, "_rotation_ready", False):
        setup(engine)
        engine._rotation_ready = True  # type: ignore[attr-defined]
    _reset(engine)
    _build(engine, specs, capacity, themes)
    proposal = propose(engine)
    assert propose(engine) == proposal  # deterministic
    outs = [line.item_id for line in proposal.take_out]
    ins = [line.item_id for line in proposal.bring_in]
    event(f"takes out: {bool(outs)}, brings in: {bool(ins)}, full: {len(ins) == proposal.free}")
    assert len(ins) <= proposal.free == max(0, proposal.capacity - proposal.stock + len(outs))
    assert len(set(outs)) == len(outs) and len(set(ins)) == len(ins) and not set(outs) & set(ins)
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(items))}
        busy = set(conn.execute(select(restock_tasks.c.item_id).where(
            restock_tasks.c.status == "open")).scalars())
        held = {(h.item_id, h.pickup_cabinet_id) for h in conn.execute(select(holds).where(
            holds.c.status.in_(("waiting", "assigned", "ready"))))}
    held_items = {item for item, _ in held}
    for item_id in outs:
        row = rows[item_id]
        assert (row.status, row.location_cabinet_id) == ("in_cabinet", CAB)
        assert item_id not in busy and item_id not in held_items
    for line in proposal.bring_in:
        row = rows[line.item_id]
        assert row.status == "on_shelf" and line.item_id not in busy
        assert held_items.isdisjoint({line.item_id}) or (line.item_id, CAB) in held
        if line.reason != "hold":
            assert not row.damaged and row.home_branch_id == HOME
            assert not themes or rotation.letter_of(row.category) in themes
    # applying it leaves nothing to propose but what it could not fill
    with write_tx(engine) as conn:
        _, created = rotation.apply(conn, CAB, NOW)
        assert len(created) == len(outs) + len(ins)
        assert rotation.apply(conn, CAB, NOW)[1] == []
