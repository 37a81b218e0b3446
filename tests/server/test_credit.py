"""``server.credit`` and ``server.routes_readers`` on both databases (SQLite, PostgreSQL).

What must hold: the tier rule is monotone in the credit score and history only raises it;
one person gets one card and their id number and phone are nowhere in the database in
clear; grants verify with the keys cabinets trust (also after one rotation, not two);
blocks and overdue suspensions stop grants *and* reach cabinets as deny deltas; the QR the
phone gets is accepted by an offline cabinet; the exposure figure is the README's formula;
bad input is a 422, never a 500.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select, update

from kiosk.credentials import CredentialResolver
from kiosk.ledger import Ledger
from kiosk.machine import Resolved
from server import credit, ingest, keys
from server.db import lock_cabinet, write_tx
from server.schema import audit, cabinets, deny_list, events, grants, items, metadata, readers
from syncproto import grants as grants_mod
from syncproto.messages import ReaderQuery, SyncBatch
from syncproto.qrtoken import verify_token
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
CAB_PRIVATE, CAB_PUBLIC = grants_mod.generate_keypair()
POLICY = credit.DEFAULT_POLICY


def id_number(seed: int) -> str:
    """A well-formed resident id number (valid check digit) made from ``seed``."""
    body = f"110101199{seed % 10}0101{seed:04d}"[:17]
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def add_cabinet(engine: Engine, cab: str, cap: int = 20, active: bool = True) -> None:
    with write_tx(engine) as conn:
        conn.execute(insert(cabinets).values(id=cab, branch_id=BRANCH, name=cab, location="",
                                             public_key=CAB_PUBLIC, registered_at=NOW,
                                             active=active, applied_through=0,
                                             deny_version_sent=0, offline_exposure_cap=cap))


def register(engine: Engine, seed: int, **kw: Any) -> str:
    with write_tx(engine) as conn:
        return credit.register_reader(conn, display_name=kw.pop("name", f"读者{seed}"),
                                      id_number=id_number(seed), now=NOW, **kw)


def reader_row(engine: Engine, reader_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(readers).where(readers.c.id == reader_id)).one()


def sync(engine: Engine, cab: str, deny_version: int = 0) -> Any:
    with write_tx(engine) as conn:
        row = lock_cabinet(conn, cab)
        assert row is not None
        return ingest.apply_batch(conn, row, SyncBatch(cabinet_id=cab, sent_at=NOW, events=[],
                                                       deny_version=deny_version), NOW)


def loan_item(engine: Engine, item: str, reader_id: str, due: str) -> None:
    with write_tx(engine) as conn:
        conn.execute(insert(items).values(id=item, status="loaned", borrower_id=reader_id,
                                          due=due, version=0))


# ---------------------------------------------------------------------- the policy (pure)

scores = st.none() | st.integers(min_value=0, max_value=1000)
histories = st.builds(credit.History, on_time_returns=st.integers(0, 30),
                      late_returns=st.integers(0, 5), overdue_now=st.integers(0, 3))


@given(a=st.integers(0, 1000), b=st.integers(0, 1000), history=histories)
def test_the_tier_is_monotone_in_the_score(a: int, b: int, history: credit.History) -> None:
    low, high = sorted((a, b))
    assert POLICY.rank(POLICY.tier_for(low, history)) <= POLICY.rank(POLICY.tier_for(high, history))


@given(score=scores, history=histories)
def test_history_can_only_raise_the_tier_and_by_one(score: int | None,
                                                    history: credit.History) -> None:
    base = POLICY.rank(POLICY.tier_for(score))
    assert base <= POLICY.rank(POLICY.tier_for(score, history)) <= base + 1


def test_the_default_thresholds_and_history_rule() -> None:
    assert [POLICY.tier_for(s) for s in (None, 0, 549, 550, 649, 650, 950)] == [
        "new", "new", "new", "standard", "standard", "trusted", "trusted"]
    good = credit.History(on_time_returns=10)
    assert POLICY.tier_for(None, good) == "standard"
    assert POLICY.tier_for(700, good) == "trusted"  # already the top
    assert POLICY.tier_for(None, credit.History(on_time_returns=10, overdue_now=1)) == "new"
    assert POLICY.tier_for(None, credit.History(on_time_returns=9)) == "new"
    assert POLICY.tier("gold") == POLICY.tier("new")  # unknown tier: the least


@pytest.mark.parametrize(("change", "key"), [
    (lambda d: d.pop("tiers"), "tiers"),
    (lambda d: d["tiers"][1].update(max_loans=101), "tiers[1].max_loans"),
    (lambda d: d["tiers"][0].update(max_loans="5"), "tiers[0].max_loans"),
    (lambda d: d["tiers"][0].update(offline_allowance=9), "tiers[0].offline_allowance"),
    (lambda d: d["tiers"][2].update(grant_ttl_hours=24 * 31), "tiers[2].grant_ttl_hours"),
    (lambda d: d["tiers"][2].update(name="new"), "tiers[2].name"),
    (lambda d: d["tiers"][0].update(colour="red"), "tiers[0].colour"),
    (lambda d: d["score"]["thresholds"].update(gold=900), "score.thresholds.gold"),
    (lambda d: d["score"]["thresholds"].update(standard=700), "score.thresholds.standard"),
    (lambda d: d["score"].update(no_score="vip"), "score.no_score"),
    (lambda d: d["history"].update(on_time_returns=0), "history.on_time_returns"),
    (lambda d: d.update(extra=1), "extra"),
])
def test_a_bad_policy_names_the_key(change: Any, key: str) -> None:
    data = json.loads(json.dumps(credit.DEFAULT_POLICY_TABLE))
    change(data)
    with pytest.raises(credit.PolicyError) as err:
        credit.CreditPolicy.from_dict(data)
    assert err.value.key == key and key in str(err.value)


def test_policies_load_from_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "credit.toml"
    toml.write_text('[[tiers]]\nname = "only"\nmax_loans = 3\noffline_allowance = 0\n'
                    'grant_ttl_hours = 12\n[history]\non_time_returns = 5\n', encoding="utf-8")
    policy = credit.load_policy(toml)
    assert policy.tier_for(900) == "only" and policy.tier("only").grant_ttl == timedelta(hours=12)
    js = tmp_path / "credit.json"
    js.write_text(json.dumps(credit.DEFAULT_POLICY_TABLE), encoding="utf-8")
    assert credit.load_policy(js) == credit.DEFAULT_POLICY
    js.write_text("{not json", encoding="utf-8")
    with pytest.raises(credit.PolicyError):
        credit.load_policy(js)


# ---------------------------------------------------------------------- registration


def _everything_stored(engine: Engine) -> str:
    """Every row of every table as text (what a database dump would show)."""
    with engine.connect() as conn:
        return "\n".join(repr(row) for table in metadata.sorted_tables
                         for row in conn.execute(select(table)).all())


def test_one_card_per_id_number_and_nothing_in_clear(engine: Engine) -> None:
    seed_network(engine)
    ident, phone = id_number(7), "13912345678"
    first = register(engine, 7, phone=phone, credit_score=600)
    again = register(engine, 7, name="someone else", phone="13800000000", credit_score=900)
    lower_x = register(engine, 8)
    assert first == again != lower_x
    row = reader_row(engine, first)
    assert (row.tier, row.credit_score, row.display_name) == ("standard", 600, "读者7")
    assert row.id_number_hash == credit.id_hash_of(ident)
    assert row.id_number_hash != grants_mod.card_hash(ident)  # a pepper of its own
    with engine.connect() as conn:
        assert conn.execute(select(readers)).all().__len__() == 2
    dump = _everything_stored(engine)
    assert ident not in dump and phone not in dump and ident[:-1] not in dump
    if engine.dialect.name == "sqlite":
        raw = b"".join(p.read_bytes() for p in Path(str(engine.url.database)).parent.glob("*.db*"))
        assert ident.encode() not in raw and phone.encode() not in raw
    with pytest.raises(ValueError, match="check digit"):
        with write_tx(engine) as conn:
            credit.register_reader(conn, display_name="x", id_number=ident[:-1] + "0"
                                   if ident[-1] != "0" else ident[:-1] + "1", now=NOW)


# ---------------------------------------------------------------------- grants and keys


def test_grants_verify_after_one_rotation_not_two(engine: Engine) -> None:
    seed_network(engine)
    rid = register(engine, 1, credit_score=700)
    with write_tx(engine) as conn:
        grant = credit.issue_grant(conn, rid, NOW)
        trusted0 = keys.trusted(conn)
    assert (grant.tier, grant.max_loans, grant.offline_allowance) == ("trusted", 15, 4)
    assert grant.expires_at == NOW + timedelta(hours=168)
    grants_mod.verify_grant(grant, trusted0, NOW)
    with write_tx(engine) as conn:
        keys.rotate(conn, NOW + timedelta(hours=1))
        trusted1 = keys.trusted(conn)
        newer = credit.issue_grant(conn, rid, NOW)
    grants_mod.verify_grant(grant, trusted1, NOW)
    assert newer.key_id != grant.key_id
    with write_tx(engine) as conn:
        keys.rotate(conn, NOW + timedelta(hours=2))
        trusted2 = keys.trusted(conn)
    with pytest.raises(grants_mod.GrantError) as err:
        grants_mod.verify_grant(grant, trusted2, NOW)
    assert err.value.reason == "unknown_key"
    grants_mod.verify_grant(newer, trusted2, NOW)


def test_history_raises_the_grant_tier_and_an_overdue_item_takes_it_back(engine: Engine) -> None:
    seed_network(engine)
    add_cabinet(engine, "cab-h")
    rid = register(engine, 2)  # no score: new
    with write_tx(engine) as conn:
        rows = []
        for i in range(10):
            item = f"H{i}"
            loaned_at, returned_at = NOW - timedelta(days=40 - i), NOW - timedelta(days=30 - i)
            for seq, kind, at, payload in (
                    (2 * i + 1, "loan", loaned_at, {"item_id": item, "reader_id": rid,
                                                     "due": (loaned_at + timedelta(days=20))
                                                     .date().isoformat()}),
                    (2 * i + 2, "return", returned_at, {"item_id": item})):
                rows.append({"cabinet_id": "cab-h", "seq": seq, "uuid": str(uuid.uuid4()),
                             "kind": kind, "at": at, "at_corrected": at, "mono": 0.0,
                             "boot_id": "b", "offline": False, "payload": payload,
                             "item_id": item, "received_at": at, "applied": True})
        conn.execute(insert(events), rows)
        assert credit.reader_history(conn, rid, NOW) == credit.History(on_time_returns=10)
        assert credit.issue_grant(conn, rid, NOW).tier == "standard"
    loan_item(engine, "late-book", rid, (NOW - timedelta(days=1)).date().isoformat())
    with write_tx(engine) as conn:
        assert credit.reader_history(conn, rid, NOW).overdue_now == 1
        assert credit.issue_grant(conn, rid, NOW).tier == "new"


# ---------------------------------------------------------------------- deny list, suspension


def test_a_blocked_reader_gets_no_grant_and_cabinets_get_the_delta(engine: Engine) -> None:
    seed_network(engine)
    add_cabinet(engine, "cab-1")
    rid, other = register(engine, 3), register(engine, 4)
    with write_tx(engine) as conn:
        credit.issue_grant(conn, rid, NOW)
        version = credit.block(conn, rid, "lost card", NOW)
        assert credit.block(conn, rid, "again", NOW) == version  # no second row
        with pytest.raises(credit.CreditRefused):
            credit.issue_grant(conn, rid, NOW)
        cab = lock_cabinet(conn, "cab-1")
        reply = ingest.resolve_reader(conn, cab, ReaderQuery(cabinet_id="cab-1", reader_id=rid),
                                      NOW)
        assert (reply.status, reply.grant) == ("blocked", None)
        assert conn.execute(select(grants.c.suspended).where(grants.c.reader_id == rid)
                            ).scalars().all() == [True]
    first = sync(engine, "cab-1")
    assert [(d.added, d.removed, d.to_version) for d in first.deny] == [([rid], [], version)]
    assert all(g.reader_id != rid for g in first.grants)
    with write_tx(engine) as conn:
        back = credit.unblock(conn, rid, "found", NOW)
        fresh = credit.issue_grant(conn, rid, NOW)
    second = sync(engine, "cab-1", deny_version=version)
    assert [(d.added, d.removed, d.to_version) for d in second.deny] == [([], [rid], back)]
    assert fresh.grant_id in {g.grant_id for g in second.grants}
    assert reader_row(engine, other).status == "ok"


def test_overdue_and_overdraft_readers_are_suspended_with_a_deny_row(engine: Engine) -> None:
    seed_network(engine)
    late, over, fine = register(engine, 5), register(engine, 6), register(engine, 9)
    with write_tx(engine) as conn:
        credit.issue_grant(conn, late, NOW)
    loan_item(engine, "L1", late, (NOW - timedelta(days=1)).date().isoformat())
    for i in range(POLICY.tier("new").max_loans + 1):  # offline cabinets each allowed one
        loan_item(engine, f"O{i}", over, (NOW + timedelta(days=10)).date().isoformat())
    loan_item(engine, "F1", fine, NOW.date().isoformat())  # due today: not yet overdue
    with write_tx(engine) as conn:
        assert credit.suspend_overdue(conn, NOW) == sorted([late, over])
        assert credit.suspend_overdue(conn, NOW) == []  # once
        reasons = {r.reader_id: r.reason for r in conn.execute(
            select(deny_list.c.reader_id, deny_list.c.reason))}
        with pytest.raises(credit.CreditRefused, match="suspended"):
            credit.issue_grant(conn, late, NOW)
        assert conn.execute(select(grants.c.suspended).where(grants.c.reader_id == late)
                            ).scalars().all() == [True]
    assert reasons == {late: "overdue", over: "overdraft"}
    assert reader_row(engine, fine).status == "ok"
    add_cabinet(engine, "cab-2")
    assert set(sync(engine, "cab-2").deny[0].added) == {late, over}


# ---------------------------------------------------------------------- exposure


def test_the_exposure_figure_is_the_formula(engine: Engine) -> None:
    seed_network(engine)
    caps = {"cab-a": 20, "cab-b": 15, "cab-c": 5}
    for cab, cap in caps.items():
        add_cabinet(engine, cab, cap)
    add_cabinet(engine, "cab-off", 100, active=False)
    register(engine, 10, credit_score=700)
    register(engine, 11)
    with engine.connect() as conn:
        result = credit.fleet_exposure(conn)
        two = credit.fleet_exposure(conn, k=2)
    assert result["fleet_bound"] == sum(caps.values()) == 40
    assert result["active_cabinets"] == 3
    assert {c["id"]: c["offline_exposure_cap"] for c in result["cabinets"]} == caps
    assert [(t["tier"], t["per_reader_bound"], t["readers"]) for t in result["per_reader"]] == [
        ("new", 1 * 3, 1), ("standard", 2 * 3, 0), ("trusted", 4 * 3, 1)]
    assert [t["per_reader_bound"] for t in two["per_reader"]] == [2, 4, 8]


# ---------------------------------------------------------------------- HTTP


@dataclass
class Api:
    engine: Engine
    client: TestClient
    clock: Clock
    staff: dict[str, str]  # role → bearer token


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    seed_network(engine)
    clock = Clock(datetime.now(UTC).replace(microsecond=0))  # the kiosk's ledger uses real time
    tokens = {role: token_for(engine, add_staff(engine, f"{role}-1", role), clock.now)
              for role in ("operator", "branch_staff", "auditor", "technician")}
    with TestClient(make_app(engine, clock), raise_server_exceptions=False) as client:
        yield Api(engine, client, clock, tokens)


def test_register_then_the_qr_is_accepted_by_an_offline_cabinet(api: Api, tmp_path: Path) -> None:
    body = {"display_name": "张三", "id_number": id_number(20), "phone": "13700000001"}
    made = api.client.post("/api/readers/register", json=body)
    assert made.status_code == 201, made.text
    reader_id, token = made.json()["reader_id"], made.json()["token"]
    assert made.json()["tier"] == "new" and made.json()["created"] is True
    again = api.client.post("/api/readers/register", json=body)
    assert again.status_code == 200 and again.json()["reader_id"] == reader_id
    assert_error(api.client.post("/api/readers/register", json={**body, "phone": "13700000002"}),
                 409, "already_registered")
    assert_error(api.client.post("/api/readers/register",
                                 json={k: v for k, v in body.items() if k != "phone"}), 409)

    qr = api.client.get("/api/readers/me/qr", headers=bearer(token))
    assert qr.status_code == 200, qr.text
    with api.engine.connect() as conn:
        trusted = keys.trusted(conn)
    claims = verify_token(qr.json()["qr"], trusted, api.clock.now)
    assert claims.reader_id == reader_id and claims.grant is not None
    assert (claims.expires_at - claims.issued_at).total_seconds() <= 60
    grants_mod.verify_grant(claims.grant, trusted, api.clock.now)
    # the same grant is reused by the next refresh (no new grant per QR)
    assert verify_token(api.client.get("/api/readers/me/qr", headers=bearer(token)).json()["qr"],
                        trusted, api.clock.now).grant_id == claims.grant_id

    ledger = Ledger(tmp_path / "ledger.db", "cab-offline")
    try:
        resolver = CredentialResolver(ledger=ledger, cabinet_id="cab-offline",
                                      trusted_keys=trusted, online=None, max_loans=10,
                                      offline_allowance=2)
        outcome = resolver.resolve("qr", qr.json()["qr"], api.clock.now)
        assert isinstance(outcome, Resolved), outcome
        assert outcome.patron.reader_id == reader_id and outcome.patron.offline
        assert outcome.patron.offline_allowance == POLICY.tier("new").offline_allowance
        assert resolver.resolve("qr", qr.json()["qr"], api.clock.now).reason == "token_replayed"
    finally:
        ledger.close()

    # tokens do not cross: a staff token is no reader token and the reverse
    assert_error(api.client.get("/api/readers/me/qr", headers=bearer(api.staff["operator"])), 401)
    assert_error(api.client.get("/api/credit/exposure", headers=bearer(token)), 401)
    with api.engine.connect() as conn:
        dump = _everything_stored(api.engine)
    assert body["id_number"] not in dump and body["phone"] not in dump and token not in dump


def test_block_and_unblock_over_http_are_audited_and_stop_the_qr(api: Api) -> None:
    made = api.client.post("/api/readers/register",
                           json={"display_name": "李四", "id_number": id_number(21)}).json()
    rid, token = made["reader_id"], made["token"]
    staff = bearer(api.staff["branch_staff"])
    blocked = api.client.post(f"/api/readers/{rid}/block", json={"reason": "lost card"},
                              headers=staff)
    assert blocked.status_code == 200 and blocked.json()["status"] == "blocked"
    assert_error(api.client.get("/api/readers/me/qr", headers=bearer(token)), 403,
                 "reader_blocked")
    assert_error(api.client.post(f"/api/readers/{rid}/block", headers=bearer(api.staff["auditor"])),
                 403, "forbidden")
    assert_error(api.client.post("/api/readers/nobody/block", headers=staff), 404, "unknown_reader")
    unblocked = api.client.post(f"/api/readers/{rid}/unblock", headers=staff)
    assert unblocked.status_code == 200 and unblocked.json()["status"] == "ok"
    assert api.client.get("/api/readers/me/qr", headers=bearer(token)).status_code == 200
    with api.engine.connect() as conn:
        actions = [tuple(r) for r in conn.execute(
            select(audit.c.action, audit.c.actor, audit.c.target).order_by(audit.c.id))]
    assert actions == [("reader.block", "branch_staff-1", rid),
                       ("reader.unblock", "branch_staff-1", rid)]


def test_exposure_over_http(api: Api) -> None:
    add_cabinet(api.engine, "cab-x", 12)
    add_cabinet(api.engine, "cab-y", 8)
    got = api.client.get("/api/credit/exposure", headers=bearer(api.staff["technician"]))
    assert got.status_code == 200 and got.json()["fleet_bound"] == 20
    got = api.client.get("/api/credit/exposure", params={"k": 3},
                         headers=bearer(api.staff["auditor"]))
    assert [t["per_reader_bound"] for t in got.json()["per_reader"]] == [3, 6, 12]


def test_a_cabinet_registered_with_its_kiosks_cap_counts_that_cap_in_the_fleet_bound(
        api: Api) -> None:
    """The console shows each cabinet's own cap next to the fleet's worst case: registering
    the cabinet with its kiosk's ``offline_exposure_cap`` keeps the two figures in agreement."""
    staff = bearer(api.staff["operator"])
    for cab, body_cap in (("cab-small", {"offline_exposure_cap": 5}), ("cab-default", {})):
        _, public = grants_mod.generate_keypair()
        made = api.client.post("/api/cabinets", headers=staff, json={
            "id": cab, "branch_id": BRANCH, "public_key": public, **body_cap})
        assert made.status_code == 201, made.text
    caps = {c["id"]: c["offline_exposure_cap"]
            for c in api.client.get("/api/cabinets", headers=staff).json()["cabinets"]}
    assert caps == {"cab-small": 5, "cab-default": 20}
    got = api.client.get("/api/credit/exposure", headers=staff).json()
    assert got["fleet_bound"] == 25
    _, public = grants_mod.generate_keypair()
    refused = api.client.post("/api/cabinets", headers=staff, json={
        "id": "cab-bad", "branch_id": BRANCH, "public_key": public, "offline_exposure_cap": -1})
    assert refused.status_code == 422


def test_an_expired_reader_token_is_refused(api: Api) -> None:
    token = api.client.post("/api/readers/register", json={
        "display_name": "王五", "id_number": id_number(22)}).json()["token"]
    api.clock.advance(31 * 24 * 3600)
    assert_error(api.client.get("/api/readers/me/qr", headers=bearer(token)), 401, "expired_token")


@pytest.mark.parametrize("body", [
    {},
    {"display_name": "x"},
    {"display_name": "x", "id_number": "11010119900101123"},  # 17 characters
    {"display_name": "x", "id_number": "110101199001011230"},  # wrong check digit
    {"display_name": "x", "id_number": 110101199001011234},
    {"display_name": "", "id_number": id_number(30)},
    {"display_name": "   ", "id_number": id_number(30)},
    {"display_name": "a\x00b", "id_number": id_number(30)},
    {"display_name": "x" * 101, "id_number": id_number(30)},
    {"display_name": "x", "id_number": id_number(30), "phone": "12345"},
    {"display_name": "x", "id_number": id_number(30), "credit_score": 900},  # not public
    [],
    "not an object",
])
def test_bad_registrations_are_422(api: Api, body: Any) -> None:
    response = api.client.post("/api/readers/register", json=body)
    detail = assert_error(response, 422)["detail"]
    assert "110101" not in detail  # the id number is never echoed


def test_a_lone_surrogate_in_the_name_is_422(api: Api) -> None:
    content = ('{"display_name": "\\ud800", "id_number": "%s"}' % id_number(30)).encode()
    assert_error(api.client.post("/api/readers/register", content=content,
                                 headers={"Content-Type": "application/json"}), 422)


def test_other_bad_input_is_422_never_500(api: Api) -> None:
    staff = bearer(api.staff["operator"])
    for response in (
        api.client.post("/api/readers/bad id!/block", headers=staff),
        api.client.post(f"/api/readers/{'x' * 65}/unblock", headers=staff),
        api.client.post("/api/readers/R1/block", json={"reason": 5}, headers=staff),
        api.client.post("/api/readers/R1/block", json={"reason": "x" * 65}, headers=staff),
        api.client.post("/api/readers/R1/block", json={"why": "x"}, headers=staff),
        api.client.post("/api/readers/R1/block", content=b"{", headers={
            **staff, "Content-Type": "application/json"}),
        api.client.get("/api/credit/exposure", params={"k": 0}, headers=staff),
        api.client.get("/api/credit/exposure", params={"k": "many"}, headers=staff),
    ):
        assert_error(response, 422)
    assert_error(api.client.get("/api/readers/me/qr", headers={"Authorization": "Bearer x"}), 401)


def test_a_suspended_reader_stays_suspended_across_syncs_and_resolve(engine: Engine) -> None:
    seed_network(engine)
    add_cabinet(engine, "cab-s")
    rid = register(engine, 12)
    loan_item(engine, "S1", rid, "2000-01-01")
    with write_tx(engine) as conn:
        credit.suspend_overdue(conn, NOW)
        cab = lock_cabinet(conn, "cab-s")
        reply = ingest.resolve_reader(conn, cab, ReaderQuery(cabinet_id="cab-s", reader_id=rid),
                                      NOW)
        conn.execute(update(items).where(items.c.id == "S1").values(status="in_cabinet",
                                                                     borrower_id=None, due=None))
        assert credit.suspend_overdue(conn, NOW) == []  # a suspension is lifted by staff
    assert (reply.status, reply.grant) == ("blocked", None)
    assert reader_row(engine, rid).status == "suspended"
