"""The circulation engine (``server.engine``) and the exceptions endpoints, on both databases.

One test per conflict the issue lists: each either resolves deterministically (checked on
the item) or lands in the exceptions queue with its evidence and offered actions; then the
resolution endpoint, with its audit row and its permission refusals.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select, update

from server import engine as circulation
from server import ingest
from server.db import lock_cabinet, write_tx
from server.schema import audit, deny_list, events, grants, items, readers
from syncproto.messages import CabinetEvent, ReaderQuery
from tests.server.test_ingest import (
    CAB,
    NOW,
    OTHER,
    batch_of,
    exception_rows,
    item_state,
    send,
    setup_network,
)
from tests.server.test_security import Clock, add_staff, bearer, make_app, seed_network, token_for

_seqs: dict[str, int] = {}


def ev(cab: str, kind: str, at: datetime, *, seq: int | None = None, offline: bool = True,
       **payload: Any) -> CabinetEvent:
    """An event of ``cab`` (next seq of that cabinet unless given) stamped ``at``."""
    if seq is None:
        seq = _seqs[cab] = _seqs.get(cab, 0) + 1
    return CabinetEvent(cabinet_id=cab, seq=seq, uuid=uuid.uuid4(), kind=kind,  # type: ignore[arg-type]
                        at=at, mono=float(seq), boot_id="b", offline=offline, payload=payload)


def lend(cab: str, item: str, reader: str, at: datetime, **kw: Any) -> CabinetEvent:
    grant_id = kw.pop("grant_id", None)
    payload: dict[str, Any] = {"item_id": item, "reader_id": reader, "due": "2030-04-01",
                               "door": 1, "session": "s"}
    if grant_id:
        payload["grant_id"] = grant_id
    return ev(cab, "loan", at, **kw, **payload)


def back(cab: str, item: str, at: datetime, **kw: Any) -> CabinetEvent:
    return ev(cab, "return", at, **kw, item_id=item, owner_library="CN-440300", door=1,
              session="s")


def fresh(engine: Engine) -> None:
    _seqs.clear()
    setup_network(engine)


def item(engine: Engine, item_id: str) -> tuple[Any, ...]:
    return next((i[1:5] for i in item_state(engine) if i[0] == item_id), ())


def put_item(engine: Engine, item_id: str, status: str, cabinet: str | None = None) -> None:
    with write_tx(engine) as conn:
        conn.execute(insert(items).values(id=item_id, title="t", status=status,
                                          location_cabinet_id=cabinet, version=0))


def kinds(engine: Engine) -> list[tuple[str, str | None]]:
    return [(r.kind, r.item_id) for r in exception_rows(engine)]


# ---------------------------------------------------------------------- conflicts


def test_return_of_a_lost_or_missing_item_finds_it_and_queues_a_check(engine: Engine) -> None:
    fresh(engine)
    put_item(engine, "L1", "lost")
    send(engine, batch_of([back(CAB, "L1", NOW)]))
    assert item(engine, "L1") == ("in_cabinet", CAB, None, None)  # the book is there
    (exc,) = exception_rows(engine)
    assert (exc.kind, exc.item_id, exc.cabinet_id, exc.status) == (
        "returned_while_lost", "L1", CAB, "open")
    assert exc.actions == ["accept_return", "mark_lost"] and exc.evidence["was"] == "lost"
    assert exc.evidence["events"][0]["kind"] == "return"
    # an alarm marks an item missing; its later return is the same case
    send(engine, batch_of([ev(CAB, "alarm", NOW, reason="unlent_item", item_id="M1"),
                           back(CAB, "M1", NOW + timedelta(minutes=5))]))
    assert item(engine, "M1") == ("in_cabinet", CAB, None, None)
    assert kinds(engine) == [("returned_while_lost", "L1"), ("returned_while_lost", "M1")]


def test_offline_loan_of_an_item_on_hold_for_someone_else(engine: Engine) -> None:
    """The book is with the borrower: the loan stands, the unfillable hold goes to staff."""
    fresh(engine)
    put_item(engine, "H1", "in_cabinet", CAB)
    loan = lend(CAB, "H1", "R1", NOW)
    with write_tx(engine) as conn:
        circulation.apply_event(conn, CAB, loan, NOW, holds=lambda _c, i: "R2" if i == "H1" else None)
        # the hold's own reader borrowing it is no conflict
        circulation.apply_event(conn, CAB, lend(CAB, "H2", "R2", NOW), NOW,
                                holds=lambda _c, _i: "R2")
    assert item(engine, "H1") == ("loaned", None, "R1", "2030-04-01")
    (exc,) = exception_rows(engine)
    assert (exc.kind, exc.item_id, exc.reader_id) == ("loan_over_hold", "H1", "R1")
    assert exc.evidence["hold_for"] == "R2" and exc.actions == ["accept_loan", "void_loan"]


def test_offline_loan_to_a_reader_blocked_meanwhile(engine: Engine) -> None:
    fresh(engine)
    with write_tx(engine) as conn:
        conn.execute(update(readers).where(readers.c.id == "R3").values(status="blocked"))
    send(engine, batch_of([lend(CAB, "B1", "R3", NOW)]))
    assert item(engine, "B1") == ("loaned", None, "R3", "2030-04-01")  # it did leave
    (exc,) = exception_rows(engine)
    assert (exc.kind, exc.reader_id, exc.evidence["reader_status"]) == (
        "loan_to_blocked_reader", "R3", "blocked")
    # an online loan is the server's own decision: nothing to reconcile
    send(engine, batch_of([lend(CAB, "B2", "R3", NOW, offline=False)]))
    assert len(exception_rows(engine)) == 1


def test_offline_loans_over_the_grant_suspend_it(engine: Engine) -> None:
    fresh(engine)
    with write_tx(engine) as conn:
        cab = lock_cabinet(conn, CAB)
        assert cab is not None
        grant = ingest.resolve_reader(conn, cab, ReaderQuery(cabinet_id=CAB, reader_id="R1"), NOW)
    assert grant.grant is not None and grant.grant.offline_allowance == 2
    gid = grant.grant.grant_id
    send(engine, batch_of([lend(CAB, "O1", "R1", NOW, grant_id=gid),
                           lend(CAB, "O2", "R1", NOW, grant_id=gid)]))
    assert exception_rows(engine) == []
    # the third offline loan is one over: at another cabinet, in its own offline window
    reply = send(engine, batch_of([lend(OTHER, "O3", "R1", NOW, grant_id=gid)], cab=OTHER))
    with engine.connect() as conn:
        assert conn.execute(select(grants.c.suspended).where(grants.c.grant_id == gid)).scalar_one()
        denied = conn.execute(select(deny_list.c.reader_id, deny_list.c.denied,
                                     deny_list.c.reason)).all()
    assert [tuple(d) for d in denied] == [("R1", True, "overdraft")]
    assert reply.deny[0].added == ["R1"] and reply.grants == []
    (exc,) = exception_rows(engine)
    assert (exc.kind, exc.reader_id, exc.evidence["offline_loans"],
            exc.evidence["offline_allowance"]) == ("overdraft", "R1", 3, 2)
    send(engine, batch_of([lend(OTHER, "O4", "R1", NOW, grant_id=gid)], cab=OTHER))
    assert len(exception_rows(engine)) == 1  # once per grant


def test_one_item_lent_in_two_offline_windows_is_a_data_error(engine: Engine) -> None:
    fresh(engine)
    send(engine, batch_of([lend(CAB, "D1", "R1", NOW)]))
    send(engine, batch_of([lend(OTHER, "D1", "R2", NOW + timedelta(minutes=10))], cab=OTHER))
    (exc,) = exception_rows(engine)
    assert exc.kind == "double_loan" and exc.item_id == "D1"
    assert [e["cabinet_id"] for e in exc.evidence["events"]] == [CAB, OTHER]
    assert exc.actions == ["keep_later_loan", "keep_earlier_loan", "mark_missing"]
    assert item(engine, "D1") == ("loaned", None, "R2", "2030-04-01")  # the later one, flagged


def test_return_of_an_item_never_lent_is_accepted_and_audited(engine: Engine) -> None:
    fresh(engine)
    send(engine, batch_of([back(CAB, "N1", NOW)]))
    assert item(engine, "N1") == ("in_cabinet", CAB, None, None)
    assert exception_rows(engine) == []
    with engine.connect() as conn:
        (row,) = conn.execute(select(audit)).all()
    assert (row.actor, row.action, row.target) == ("engine", "engine.return_without_loan",
                                                   "item:N1")


def test_cabinet_clock_skew_is_corrected_before_ordering(engine: Engine) -> None:
    """OTHER's clock is 3 h behind: its return at real 10:00 reads 07:00. Ordered by raw
    clocks it would precede the 09:00 loan; corrected, it follows it."""
    fresh(engine)
    skew = timedelta(hours=3)
    send(engine, batch_of([back(OTHER, "S1", NOW + timedelta(hours=1) - skew)], cab=OTHER,
                          sent_at=NOW - skew))
    send(engine, batch_of([lend(CAB, "S1", "R1", NOW)]))
    assert item(engine, "S1") == ("in_cabinet", OTHER, None, None)
    with engine.connect() as conn:
        corrected = conn.execute(select(events.c.at_corrected)
                                 .where(events.c.cabinet_id == OTHER)).scalar_one()
    assert corrected.replace(tzinfo=NOW.tzinfo) == NOW + timedelta(hours=1)
    assert exception_rows(engine) == []


def test_duplicate_upload_changes_nothing(engine: Engine) -> None:
    fresh(engine)
    batch = batch_of([lend(CAB, "U1", "R1", NOW), lend(CAB, "U1", "R2", NOW)])
    send(engine, batch)
    before = (item_state(engine), [r.id for r in exception_rows(engine)])
    send(engine, batch)
    send(engine, batch)
    assert (item_state(engine), [r.id for r in exception_rows(engine)]) == before
    assert kinds(engine) == [("double_loan", "U1")]


def test_out_of_order_arrival_is_reordered(engine: Engine) -> None:
    fresh(engine)
    # across cabinets: OTHER's 10:00 return is uploaded before CAB's 09:00 loan
    send(engine, batch_of([back(OTHER, "X1", NOW + timedelta(hours=1))], cab=OTHER))
    send(engine, batch_of([lend(CAB, "X1", "R1", NOW)]))
    assert item(engine, "X1") == ("in_cabinet", OTHER, None, None)
    # within a cabinet: seq 2 (return) before seq 1 (loan) waits for the gap to fill
    loan, ret = lend(CAB, "X2", "R1", NOW), back(CAB, "X2", NOW + timedelta(minutes=1))
    assert send(engine, batch_of([ret])).gap_from == loan.seq
    assert item(engine, "X2") == ()
    send(engine, batch_of([loan]))
    assert item(engine, "X2") == ("in_cabinet", CAB, None, None)
    assert exception_rows(engine) == []


# ---------------------------------------------------------------------- the endpoints


def test_resolving_an_exception_is_audited_and_permission_checked(engine: Engine) -> None:
    fresh(engine)
    seed_network(engine)
    send(engine, batch_of([lend(CAB, "E1", "R1", NOW)]))
    send(engine, batch_of([lend(OTHER, "E1", "R2", NOW + timedelta(minutes=1))], cab=OTHER))
    clock = Clock(NOW)
    ids = {role: add_staff(engine, f"{role}-x", role) for role in
           ("branch_staff", "auditor", "technician")}
    tok = {role: bearer(token_for(engine, sid, NOW)) for role, sid in ids.items()}
    with TestClient(make_app(engine, clock)) as client:
        listed = client.get("/api/exceptions", params={"status": "open"}, headers=tok["auditor"])
        assert listed.status_code == 200
        (exc,) = listed.json()["exceptions"]
        assert exc["kind"] == "double_loan" and "keep_earlier_loan" in exc["actions"]
        url = f"/api/exceptions/{exc['id']}/resolve"
        assert client.get("/api/exceptions", headers=tok["technician"]).status_code == 403
        refused = client.post(url, json={"action": "mark_lost"}, headers=tok["auditor"])
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert client.post(url, json={"action": "mark_lost"}).status_code == 401
        not_offered = client.post(url, json={"action": "mark_lost"}, headers=tok["branch_staff"])
        assert not_offered.status_code == 422
        assert not_offered.json()["error"] == "action_not_offered"
        done = client.post(url, json={"action": "keep_earlier_loan", "note": "CCTV: R1"},
                           headers=tok["branch_staff"])
        assert done.status_code == 200 and done.json()["resolution"] == "keep_earlier_loan"
        again = client.post(url, json={"action": "mark_missing"}, headers=tok["branch_staff"])
        assert again.status_code == 409
        assert client.post("/api/exceptions/999999/resolve", json={"action": "x"},
                           headers=tok["branch_staff"]).status_code == 404
        assert client.get("/api/exceptions", headers=tok["auditor"]).json()["exceptions"] == []
    assert item(engine, "E1") == ("loaned", None, "R1", "2030-04-01")
    (row,) = exception_rows(engine)
    assert (row.status, row.resolution, row.resolved_by) == (
        "resolved", "keep_earlier_loan", ids["branch_staff"])
    with engine.connect() as conn:
        entries = conn.execute(select(audit).where(audit.c.action == "exception.resolve")).all()
    assert [(a.actor, a.target, a.detail["action"], a.detail["note"]) for a in entries] == [
        ("branch_staff-x", f"exception:{row.id}", "keep_earlier_loan", "CCTV: R1")]


def test_lifting_an_overdraft_suspension_clears_the_denial(engine: Engine) -> None:
    fresh(engine)
    with write_tx(engine) as conn:
        cab = lock_cabinet(conn, CAB)
        assert cab is not None
        grant = ingest.resolve_reader(conn, cab, ReaderQuery(cabinet_id=CAB, reader_id="R3"), NOW)
    assert grant.grant is not None and grant.grant.offline_allowance == 1
    gid = grant.grant.grant_id
    send(engine, batch_of([lend(CAB, f"Q{i}", "R3", NOW, grant_id=gid) for i in range(2)]))
    (exc,) = exception_rows(engine)
    seed_network(engine)
    sid = add_staff(engine, "op", "operator")
    with write_tx(engine) as conn:
        circulation.resolve_exception(conn, exc.id, "lift_suspension", "paid", sid, "op", NOW)
    with engine.connect() as conn:
        assert not conn.execute(select(grants.c.suspended)
                                .where(grants.c.grant_id == gid)).scalar_one()
        last = conn.execute(select(deny_list).order_by(deny_list.c.version.desc())).first()
    assert last is not None and (last.reader_id, last.denied) == ("R3", False)
