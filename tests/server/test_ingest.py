"""``server.ingest`` and ``server.keys`` on both databases (SQLite file, private PostgreSQL).

What must hold: a cabinet may re-send anything any number of times and in any order and the
server ends up with each event once, applied in sequence order — the same state as if every
batch had arrived once, in order; a gap holds later events back until it fills; a reused
sequence is kept once and reported; the reply's deltas are the ones the cabinet lacks; a
key rotation leaves grants already handed out verifiable.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, Row, delete, insert, select, update

from server import ingest, keys
from server.db import lock_cabinet, write_tx
from server.schema import (
    branches,
    cabinets,
    deny_list,
    events,
    exceptions,
    grants,
    items,
    libraries,
    readers,
    server_keys,
)
from syncproto import grants as grants_mod
from syncproto.messages import CabinetEvent, ReaderQuery, SyncBatch, SyncReply

CAB = "cab-0001"
OTHER = "cab-0002"
NOW = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
CAB_PRIVATE, CAB_PUBLIC = grants_mod.generate_keypair()


# ---------------------------------------------------------------------- helpers


def setup_network(engine: Engine, cabinet_ids: Sequence[str] = (CAB, OTHER)) -> None:
    """A library, a branch, the cabinets and three readers."""
    with write_tx(engine) as conn:
        conn.execute(insert(libraries).values(isil="CN-440300", name="Shenzhen Library"))
        conn.execute(insert(branches).values(id="B1", name="Central", library_isil="CN-440300",
                                             floating=False))
        for cab in cabinet_ids:
            conn.execute(insert(cabinets).values(id=cab, branch_id="B1", name=cab, location="",
                                                 public_key=CAB_PUBLIC, registered_at=NOW,
                                                 active=True, applied_through=0,
                                                 deny_version_sent=0))
        for rid, status, tier in (("R1", "ok", "standard"), ("R2", "ok", "trusted"),
                                  ("R3", "ok", "new")):
            conn.execute(insert(readers).values(id=rid, card_hash=grants_mod.card_hash(f"card-{rid}"),
                                                display_name=f"reader {rid}", role="reader",
                                                tier=tier, status=status, registered_at=NOW))


def add_reader(engine: Engine, rid: str, *, status: str = "ok", tier: str = "standard",
               role: str = "reader", card: str | None = None) -> None:
    with write_tx(engine) as conn:
        conn.execute(insert(readers).values(
            id=rid, card_hash=grants_mod.card_hash(card) if card else None,
            display_name=f"reader {rid}", role=role, tier=tier, status=status,
            registered_at=NOW))


def send(engine: Engine, batch: SyncBatch, now: datetime = NOW) -> SyncReply:
    """What routes_sync does: one write transaction, the cabinet locked, the batch applied."""
    with write_tx(engine) as conn:
        row = lock_cabinet(conn, batch.cabinet_id)
        assert row is not None
        return ingest.apply_batch(conn, row, batch, now)


def batch_of(evs: Iterable[CabinetEvent], cab: str = CAB, sent_at: datetime = NOW,
             **kw: Any) -> SyncBatch:
    return SyncBatch(cabinet_id=cab, sent_at=sent_at, events=list(evs), **kw)


def make_event(seq: int, kind: str = "session", cab: str = CAB, **payload: Any) -> CabinetEvent:
    return CabinetEvent(cabinet_id=cab, seq=seq, uuid=uuid.uuid4(), kind=kind,  # type: ignore[arg-type]
                        at=NOW - timedelta(minutes=60 - seq), mono=float(seq), boot_id="boot-1",
                        payload=payload or {"session": f"s{seq}"})


def loan(seq: int, item: str, reader: str = "R1", cab: str = CAB) -> CabinetEvent:
    return make_event(seq, "loan", cab, item_id=item, reader_id=reader, due="2030-04-01",
                      door=1, session=f"s{seq}")


def ret(seq: int, item: str, cab: str = CAB) -> CabinetEvent:
    return make_event(seq, "return", cab, item_id=item, owner_library="CN-440300", door=1,
                      session=f"s{seq}")


def alarm(seq: int, item: str, cab: str = CAB) -> CabinetEvent:
    return make_event(seq, "alarm", cab, reason="unlent_item", item_id=item, door=1)


def stored_events(engine: Engine, cab: str = CAB) -> list[tuple[Any, ...]]:
    """Every stored event of a cabinet, as comparable tuples (without received_at)."""
    with engine.connect() as conn:
        rows = conn.execute(select(events).where(events.c.cabinet_id == cab)
                            .order_by(events.c.seq)).all()
    return [(r.seq, r.uuid, r.kind, ingest.event_of_row(r).at, r.payload, r.item_id, r.applied)
            for r in rows]


def item_state(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(select(items).order_by(items.c.id)).all()
    return [(r.id, r.status, r.location_cabinet_id, r.borrower_id, r.due, r.version)
            for r in rows]


def exception_rows(engine: Engine, kind: str | None = None) -> list[Any]:
    with engine.connect() as conn:
        stmt = select(exceptions).order_by(exceptions.c.id)
        if kind is not None:
            stmt = stmt.where(exceptions.c.kind == kind)
        return list(conn.execute(stmt).all())


def locked(conn: Connection, cab: str = CAB) -> Row[Any]:
    row = lock_cabinet(conn, cab)
    assert row is not None
    return row


def cabinet(engine: Engine, cab: str = CAB) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(cabinets).where(cabinets.c.id == cab)).one()


# ---------------------------------------------------------------------- exactly once, in order


def test_a_batch_in_order_is_applied_and_acknowledged(engine: Engine) -> None:
    setup_network(engine)
    evs = [loan(1, "I1"), loan(2, "I2"), ret(3, "I1"), make_event(4)]

    reply = send(engine, batch_of(evs))

    assert (reply.applied_through, reply.gap_from) == (4, None)
    assert reply.server_time == NOW and reply.holds == []
    assert [e[0] for e in stored_events(engine)] == [1, 2, 3, 4]
    assert all(e[-1] for e in stored_events(engine))  # every one applied
    state = {i[0]: i[1:5] for i in item_state(engine)}
    assert state["I1"] == ("in_cabinet", CAB, None, None)
    assert state["I2"] == ("loaned", None, "R1", "2030-04-01")
    row = cabinet(engine)
    assert row.applied_through == 4 and ingest._from_db(row.last_sync_at) == NOW


def test_duplicates_replays_and_overlaps_change_nothing(engine: Engine) -> None:
    setup_network(engine)
    evs = [loan(1, "I1"), loan(2, "I2"), ret(3, "I1"), loan(4, "I1", "R2"), ret(5, "I2"),
           make_event(6), alarm(7, "I3"), make_event(8)]
    assert send(engine, batch_of(evs[:5])).applied_through == 5
    first = (stored_events(engine), item_state(engine))

    for again in (evs[:5], evs[2:4], evs[:5] + evs[:5], list(reversed(evs[:5]))):
        reply = send(engine, batch_of(again))
        assert (reply.applied_through, reply.gap_from) == (5, None)
        assert (stored_events(engine), item_state(engine)) == first  # nothing, not even versions

    reply = send(engine, batch_of(evs[3:] + evs[3:]))  # overlapping, with the new ones twice
    assert (reply.applied_through, reply.gap_from) == (8, None)
    assert [e[1] for e in stored_events(engine)] == [str(e.uuid) for e in evs]
    assert exception_rows(engine) == []


def test_a_gap_holds_later_events_until_it_fills(engine: Engine) -> None:
    setup_network(engine)
    # Loan of I1 at 2, its return at 4: applied out of order, I1 would end up "loaned".
    evs = [make_event(1), loan(2, "I1"), make_event(3), ret(4, "I1"), make_event(5)]

    reply = send(engine, batch_of([evs[0], evs[2], evs[3], evs[4]]))  # 2 lost in transit
    assert (reply.applied_through, reply.gap_from) == (1, 2)
    held = {e[0]: e[-1] for e in stored_events(engine)}
    assert held == {1: True, 3: False, 4: False, 5: False}
    assert item_state(engine) == []  # the return waits for its loan

    reply = send(engine, batch_of(evs[4:]))  # a newer batch does not fill it
    assert (reply.applied_through, reply.gap_from) == (1, 2)

    reply = send(engine, batch_of(evs[1:2]))
    assert (reply.applied_through, reply.gap_from) == (5, None)
    assert all(e[-1] for e in stored_events(engine))
    (i1,) = item_state(engine)
    assert i1[:4] == ("I1", "in_cabinet", CAB, None)
    assert i1[5] == 2  # loan (version 1) applied before the return (version 2)
    assert cabinet(engine).applied_through == 5


def test_a_gap_that_does_not_fill_is_reported_to_staff_once(engine: Engine) -> None:
    from datetime import timedelta

    from fastapi.testclient import TestClient

    from tests.server.test_security import Clock, add_staff, bearer, make_app, token_for

    setup_network(engine)
    held = [make_event(1), make_event(3), make_event(4)]  # 2 never arrives
    send(engine, batch_of(held))
    assert [r.kind for r in exception_rows(engine)] == []  # a fresh gap: the cabinet resends
    later = NOW + ingest.GAP_REPORT_AFTER + timedelta(minutes=1)
    for _ in range(3):  # the cabinet keeps re-sending from 2 without it
        assert send(engine, batch_of(held[1:]), now=later).gap_from == 2
    (gap,) = exception_rows(engine)
    assert (gap.kind, gap.cabinet_id) == ("sequence_gap", CAB)
    assert gap.evidence["gap_from"] == 2 and gap.evidence["held_events"] == 2

    staff_id = add_staff(engine, "tech-1", "technician")
    with TestClient(make_app(engine, Clock(later))) as client:
        fleet = client.get("/api/cabinets", headers=bearer(token_for(engine, staff_id, later)))
    row = next(c for c in fleet.json()["cabinets"] if c["id"] == CAB)
    assert (row["applied_through"], row["gap_from"], row["held_events"]) == (1, 2, 2)
    assert row["held_since"] == NOW.isoformat()


def test_a_reused_sequence_lands_in_exceptions_once(engine: Engine) -> None:
    setup_network(engine)
    first = loan(1, "I1")
    impostor = ret(1, "I1")  # same seq, another uuid: a cabinet bug, not a re-send
    held_first = make_event(3)
    held_impostor = make_event(3)
    send(engine, batch_of([first, held_first]))

    for _ in range(3):  # re-sent again and again: recorded once
        reply = send(engine, batch_of([impostor, held_impostor]))
        assert (reply.applied_through, reply.gap_from) == (1, 2)

    conflicts = exception_rows(engine, "sequence_conflict")
    assert len(conflicts) == 2
    by_seq = {c.evidence["seq"]: c for c in conflicts}
    assert by_seq[1].evidence["kept"]["uuid"] == str(first.uuid)
    assert by_seq[1].evidence["refused"]["uuid"] == str(impostor.uuid)
    assert by_seq[1].evidence["refused"]["kind"] == "return"
    assert by_seq[3].evidence["kept"]["uuid"] == str(held_first.uuid)
    assert {c.cabinet_id for c in conflicts} == {CAB} and {c.status for c in conflicts} == {"open"}
    assert [e[1] for e in stored_events(engine)] == [str(first.uuid), str(held_first.uuid)]
    assert item_state(engine)[0][1] == "loaned"  # the first one stands


def test_a_conflict_inside_one_batch_keeps_the_first(engine: Engine) -> None:
    setup_network(engine)
    a, b = loan(1, "I1"), loan(1, "I2")
    reply = send(engine, batch_of([a, b, a]))
    assert reply.applied_through == 1
    assert [e[1] for e in stored_events(engine)] == [str(a.uuid)]
    assert [c.evidence["refused"]["uuid"] for c in exception_rows(engine)] == [str(b.uuid)]


def test_a_uuid_stored_under_another_seq_is_reported(engine: Engine) -> None:
    setup_network(engine)
    e1 = make_event(1)
    twin = e1.model_copy(update={"seq": 2})
    reply = send(engine, batch_of([e1, twin, make_event(3)]))
    assert (reply.applied_through, reply.gap_from) == (1, 2)
    (conflict,) = exception_rows(engine, "uuid_conflict")
    assert conflict.evidence["refused"]["seq"] == 2 and conflict.evidence["kept"]["seq"] == 1


def test_events_of_another_cabinet_are_refused(engine: Engine) -> None:
    setup_network(engine)
    with pytest.raises(ingest.CabinetMismatch):
        send(engine, batch_of([make_event(1, cab=OTHER)]))
    with write_tx(engine) as conn:
        row = lock_cabinet(conn, CAB)
        assert row is not None
        with pytest.raises(ingest.CabinetMismatch):
            ingest.apply_batch(conn, row, batch_of([], cab=OTHER), NOW)
    assert stored_events(engine) == [] and stored_events(engine, OTHER) == []


def test_clock_offset_is_measured_and_corrects_event_times(engine: Engine) -> None:
    setup_network(engine)
    ev = make_event(1)
    send(engine, batch_of([ev], sent_at=NOW + timedelta(seconds=90)))  # cabinet 90 s ahead
    assert cabinet(engine).clock_offset_s == pytest.approx(90.0)
    with engine.connect() as conn:
        row = conn.execute(select(events)).one()
    assert ingest._from_db(row.at) == ev.at
    assert ingest._from_db(row.at_corrected) == ev.at - timedelta(seconds=90)


# ---------------------------------------------------------------------- the property


_KINDS = st.sampled_from(["loan", "return", "alarm", "session"])


def _script(kinds: list[tuple[str, int, int]], cab: str) -> list[CabinetEvent]:
    out = []
    for seq, (kind, item, reader) in enumerate(kinds, start=1):
        if kind == "loan":
            out.append(loan(seq, f"I{item}", f"R{reader}", cab))
        elif kind == "return":
            out.append(ret(seq, f"I{item}", cab))
        elif kind == "alarm":
            out.append(alarm(seq, f"I{item}", cab))
        else:
            out.append(make_event(seq, cab=cab))
    return out


def _reset(engine: Engine) -> None:
    with write_tx(engine) as conn:
        conn.execute(delete(exceptions))
        conn.execute(delete(events))
        conn.execute(delete(items))
        conn.execute(delete(deny_list))  # the engine's overdraft rule writes these two
        conn.execute(update(grants).values(suspended=False))
        conn.execute(update(cabinets).values(applied_through=0))


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_delivery_order_ends_in_the_in_order_state(engine: Engine, data: st.DataObject) -> None:
    """Any interleaving, duplication and reordering of one cabinet's batches (each event
    delivered at least once in the end) yields the same events and items as in-order
    delivery — including item versions, i.e. the order effects were applied in."""
    if not cabinet_exists(engine):
        setup_network(engine)
    script = data.draw(st.lists(st.tuples(_KINDS, st.integers(1, 3), st.integers(1, 3)),
                                min_size=1, max_size=14), label="script")
    n = len(script)
    evs = _script(script, CAB)
    deliveries = data.draw(st.lists(st.lists(st.integers(1, n), max_size=8), max_size=8),
                           label="batches")

    _reset(engine)
    send(engine, batch_of(evs))
    expected = (stored_events(engine), item_state(engine))
    # the engine flags conflicts of the script itself (two loans of one item …): the same
    # ones must come out whatever the delivery order
    expected_exceptions = sorted((r.kind, r.item_id or "") for r in exception_rows(engine))

    _reset(engine)
    high = 0
    for seqs in deliveries:
        reply = send(engine, batch_of([evs[s - 1] for s in seqs]))
        assert reply.applied_through >= high
        high = reply.applied_through
        applied = [e[0] for e in stored_events(engine) if e[-1]]
        assert applied == list(range(1, high + 1))  # a contiguous prefix, nothing beyond it
        assert reply.gap_from in (None, high + 1)
    # The agent eventually re-sends everything from its ack: here, from wherever it stalled.
    reply = send(engine, batch_of(evs[high:]))
    assert (reply.applied_through, reply.gap_from) == (n, None)
    assert (stored_events(engine), item_state(engine)) == expected
    assert sorted((r.kind, r.item_id or "") for r in exception_rows(engine)) == \
        expected_exceptions


def cabinet_exists(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(cabinets.c.id).where(cabinets.c.id == CAB)).first() is not None


def test_two_writers_of_one_cabinet_take_turns(engine: Engine) -> None:
    """Two connections (as two server processes) sending overlapping batches at once:
    lock_cabinet serialises them, so each event is stored and applied once."""
    setup_network(engine)
    evs = [loan(s, f"I{s % 4}") if s % 2 else ret(s, f"I{(s - 1) % 4}") for s in range(1, 61)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker(order: list[CabinetEvent]) -> None:
        try:
            start.wait()
            for i in range(0, len(order), 15):
                send(engine, batch_of(order[i:i + 15]))
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(o,)) for o in
               (evs, list(reversed(evs)), evs[30:] + evs[:30], evs[::2] + evs[1::2])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and not any(t.is_alive() for t in threads)
    stored = stored_events(engine)
    assert [e[1] for e in stored] == [str(e.uuid) for e in evs] and all(e[-1] for e in stored)
    assert cabinet(engine).applied_through == 60
    versions = sorted(i[-1] for i in item_state(engine))
    assert versions[-1] == 60  # one bump per applied loan/return, none twice


# ---------------------------------------------------------------------- deltas


def test_grants_in_the_reply_verify_with_the_trusted_keys(engine: Engine) -> None:
    setup_network(engine)
    add_reader(engine, "R4")
    add_reader(engine, "R5", status="blocked")
    with write_tx(engine) as conn:
        cab = locked(conn, OTHER)
        # resolved elsewhere just now: travels to every cabinet for a day
        recent = ingest.resolve_reader(conn, cab, ReaderQuery(cabinet_id=OTHER, reader_id="R2"),
                                       NOW)
        # resolved two days ago: only to the cabinet where the reader is active
        old_r1 = ingest.resolve_reader(conn, cab, ReaderQuery(cabinet_id=OTHER, reader_id="R1"),
                                       NOW - timedelta(days=2))
        ingest.resolve_reader(conn, cab, ReaderQuery(cabinet_id=OTHER, reader_id="R4"),
                              NOW - timedelta(days=2))  # R4 does nothing here: not sent
        expired = ingest.resolve_reader(conn, cab, ReaderQuery(cabinet_id=OTHER, reader_id="R3"),
                                        NOW - timedelta(days=10))
        suspended = ingest.resolve_reader(conn, cab, ReaderQuery(cabinet_id=OTHER,
                                                                 reader_id="R4"), NOW)
        assert suspended.grant is not None
        conn.execute(update(grants).where(grants.c.grant_id == suspended.grant.grant_id)
                     .values(suspended=True))
    assert recent.grant and old_r1.grant and expired.grant

    reply = send(engine, batch_of([loan(1, "I1", "R1"), loan(2, "I2", "R3"), loan(3, "I3", "R5")]))

    got = {g.reader_id: g for g in reply.grants}
    assert set(got) == {"R1", "R2"}
    assert got["R1"].grant_id == old_r1.grant.grant_id and got["R2"].grant_id == recent.grant.grant_id
    assert reply.trusted_keys
    for grant in reply.grants:
        grants_mod.verify_grant(grant, reply.trusted_keys, NOW)
    assert reply.grants[0].reader_id == "R1"  # the cabinet's own borrowers first


def test_deny_deltas_after_the_cabinets_version(engine: Engine) -> None:
    setup_network(engine)
    with write_tx(engine) as conn:
        for rid, denied in (("R1", True), ("R2", True), ("R1", False), ("R3", True)):
            conn.execute(insert(deny_list).values(reader_id=rid, denied=denied, reason="test",
                                                  at=NOW))
    (delta,) = send(engine, batch_of([])).deny
    assert (delta.from_version, delta.to_version) == (0, 4)
    assert (delta.added, delta.removed) == (["R2", "R3"], ["R1"])
    assert cabinet(engine).deny_version_sent == 4

    (delta,) = send(engine, batch_of([], deny_version=2)).deny
    assert (delta.from_version, delta.to_version, delta.added, delta.removed) == (2, 4, ["R3"], ["R1"])
    assert send(engine, batch_of([], deny_version=4)).deny == []


def test_item_deltas_are_this_cabinets_items_after_its_version(engine: Engine) -> None:
    setup_network(engine)
    with write_tx(engine) as conn:
        conn.execute(insert(items).values(
            id="A", title="围城", author="钱锺书", category="I", owner_library="CN-440300",
            home_branch_id="B1", status="in_cabinet", location_cabinet_id=CAB, version=1))
        conn.execute(insert(items).values(id="B", title="活着", status="in_cabinet",
                                          location_cabinet_id=OTHER, version=2))
        conn.execute(insert(items).values(id="C", title="边城", status="in_cabinet",
                                          location_cabinet_id=CAB, version=3))
    reply = send(engine, batch_of([]))
    assert [i.item_id for i in reply.items] == ["A", "C"] and reply.items_version == 3
    a = reply.items[0]
    assert (a.title, a.author, a.category, a.home_branch, a.reference_only) == (
        "围城", "钱锺书", "I", "B1", False)
    assert send(engine, batch_of([], items_version=3)).items == []

    # B comes back to this cabinet: it is this cabinet's item now, with a new version
    reply = send(engine, batch_of([ret(1, "B")], items_version=3))
    assert [i.item_id for i in reply.items] == ["B"] and reply.items_version == 4


def test_item_deltas_are_bounded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    setup_network(engine)
    monkeypatch.setattr(ingest, "ITEMS_MAX", 2)
    with write_tx(engine) as conn:
        conn.execute(insert(items), [dict(id=f"X{v}", status="in_cabinet", location_cabinet_id=CAB,
                                          version=v) for v in range(1, 6)])
    seen, version = [], 0
    for _ in range(4):
        reply = send(engine, batch_of([], items_version=version))
        seen += [i.item_id for i in reply.items]
        version = reply.items_version
    assert seen == ["X1", "X2", "X3", "X4", "X5"] and version == 5


# ---------------------------------------------------------------------- resolve


def test_resolve_by_card_or_id_with_a_grant_per_tier(engine: Engine) -> None:
    setup_network(engine)
    add_reader(engine, "S1", role="staff", card="staff-card", tier="gold")  # unknown tier
    add_reader(engine, "X1", status="blocked", card="blocked-card")
    add_reader(engine, "X2", status="expired")
    send(engine, batch_of([loan(1, "I1", "R2"), loan(2, "I2", "R2")]))

    with write_tx(engine) as conn:
        cab = locked(conn, CAB)

        def resolve(card_hash: str | None = None, reader_id: str | None = None) -> Any:
            query = ReaderQuery(cabinet_id=CAB, card_hash=card_hash, reader_id=reader_id)
            return ingest.resolve_reader(conn, cab, query, NOW)

        by_card = resolve(card_hash=grants_mod.card_hash("card-R2"))
        by_id = resolve(reader_id="R1")
        staff = resolve(card_hash=grants_mod.card_hash("staff-card"))
        blocked = resolve(card_hash=grants_mod.card_hash("blocked-card"))
        expired = resolve(reader_id="X2")
        unknown = resolve(reader_id="nobody")
        with pytest.raises(ValueError):
            resolve()
        with pytest.raises(ingest.CabinetMismatch):
            ingest.resolve_reader(conn, cab, ReaderQuery(cabinet_id=OTHER, reader_id="R1"), NOW)
        trusted = keys.trusted(conn)

    assert (by_card.status, by_card.reader_id, by_card.loans) == ("ok", "R2", 2)
    assert by_card.grant is not None
    assert (by_card.grant.tier, by_card.grant.max_loans, by_card.grant.offline_allowance) == (
        "trusted", 15, 4)
    assert by_id.grant is not None and (by_id.grant.max_loans, by_id.grant.offline_allowance) == (
        10, 2)
    assert staff.role == "staff" and staff.grant is not None and staff.grant.tier == "new"
    assert (blocked.status, blocked.reader_id, blocked.grant) == ("blocked", "X1", None)
    assert (expired.status, expired.grant) == ("expired", None)
    assert (unknown.status, unknown.reader_id) == ("unknown", None)
    for reply in (by_card, by_id, staff):
        grants_mod.verify_grant(reply.grant, trusted, NOW)
        assert reply.grant.expires_at == NOW + ingest.GRANT_TTL
    with engine.connect() as conn:
        stored = {r.grant_id: r for r in conn.execute(select(grants)).all()}
    assert set(stored) == {by_card.grant.grant_id, by_id.grant.grant_id, staff.grant.grant_id}
    assert stored[by_id.grant.grant_id].signed == by_id.grant.model_dump(mode="json")


# ---------------------------------------------------------------------- keys


def test_key_rotation_keeps_the_previous_key_trusted(engine: Engine) -> None:
    setup_network(engine)
    with write_tx(engine) as conn:
        with pytest.raises(LookupError):
            keys.signing_key(conn)
        assert keys.trusted(conn) == {}
        k1 = keys.ensure_key(conn, NOW)
        assert keys.ensure_key(conn, NOW + timedelta(hours=1)) == k1  # idempotent
        assert keys.signing_key(conn)[0] == k1
        cab = locked(conn, CAB)
        before = ingest.resolve_reader(conn, cab, ReaderQuery(cabinet_id=CAB, reader_id="R1"), NOW)
        assert before.grant is not None and before.grant.key_id == k1

        k2 = keys.rotate(conn, NOW + timedelta(days=1))
        assert k2 != k1 and keys.signing_key(conn)[0] == k2
        assert set(keys.trusted(conn)) == {k1, k2}
    # a grant signed before the rotation still verifies with what cabinets get now
    reply = send(engine, batch_of([loan(1, "I1", "R1")]), NOW + timedelta(days=1))
    assert set(reply.trusted_keys or {}) == {k1, k2}
    grants_mod.verify_grant(before.grant, reply.trusted_keys or {}, NOW + timedelta(days=1))
    assert [g.grant_id for g in reply.grants] == [before.grant.grant_id]

    with write_tx(engine) as conn:
        k3 = keys.rotate(conn, NOW + timedelta(days=2))
        assert set(keys.trusted(conn)) == {k2, k3}  # k1 is two rotations old: dropped
        public = {r.key_id: r.public_key for r in conn.execute(select(server_keys))}
    with engine.connect() as conn:  # the public halves, never the private ones
        assert keys.trusted(conn) == {k2: public[k2], k3: public[k3]}
    # the old grant is no longer sent: cabinets could not verify it
    reply = send(engine, batch_of([loan(2, "I2", "R1")]), NOW + timedelta(days=2))
    assert reply.grants == []


def test_keys_need_an_aware_clock(engine: Engine) -> None:
    with write_tx(engine) as conn:
        with pytest.raises(ValueError):
            keys.ensure_key(conn, datetime(2030, 1, 1))


def test_item_versions_of_one_transaction_never_repeat(engine: Engine) -> None:
    """Engine, routing and holds each take numbers with their own ItemVersions in one batch
    transaction; a number handed out twice could hide an item from a cabinet's delta paging."""
    from server.ingest import ItemVersions

    with write_tx(engine) as conn:
        first, second = ItemVersions(conn), ItemVersions(conn)
        taken = [first.next(), second.next(), first.next(), second.next()]
    assert taken == sorted(set(taken)) and len(taken) == 4
    with write_tx(engine) as conn:  # a new transaction starts from the table again
        assert ItemVersions(conn).next() == 1  # nothing was written with those numbers
