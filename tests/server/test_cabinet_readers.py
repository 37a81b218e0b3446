"""The cabinet-signed reader services (/v1/readers/loans, renew, recommend) on both databases.

What a reader at the touchscreen notices: their loans as the phone shows them, a renewal
that moves the due date (or a refusal saying why), a 荐购 that staff then see — and what
the server must refuse: an unsigned caller, a cabinet speaking for another cabinet, an
unknown reader, a bad ISBN, another protocol version. Every write is audited under the
reader, naming the cabinet that vouched for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from server.schema import audit
from syncproto import signing
from tests.server.test_credit import CAB_PRIVATE
from tests.server.test_holds import NOW, World, add_item, make_world, place
from tests.server.test_security import assert_error, bearer


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    with make_world(engine) as made:
        yield made


def signed(w: World, path: str, body: dict[str, Any], cab: str = "cab-a") -> httpx.Response:
    content = json.dumps(body).encode()
    headers = signing.sign_request("POST", path, content, cabinet_id=cab,
                                   private_key=CAB_PRIVATE, now=w.clock.now)
    headers["Content-Type"] = "application/json"
    return w.client.post(path, content=content, headers=headers)


def test_loans_and_renewals_follow_the_phones_rules_and_are_audited(world: World) -> None:
    w = world
    rid, headers = w.reader()
    _, other = w.reader()
    for item, due in (("C1", "2030-03-10"), ("C2", "2030-03-05")):
        add_item(w.engine, item, None, status="loaned", borrower_id=rid, due=due,
                 last_loan_at=NOW - timedelta(days=20))
    place(w, other, "C2")
    got = signed(w, "/v1/readers/loans", {"cabinet_id": "cab-a", "reader_id": rid})
    assert got.status_code == 200, got.text
    phone = w.client.get("/api/readers/me/loans", headers=headers).json()
    assert got.json() == phone
    assert [(x["item_id"], x["wanted_by_others"]) for x in phone["loans"]] == [
        ("C2", True), ("C1", False)]

    renewed = signed(w, "/v1/readers/renew", {"cabinet_id": "cab-a", "reader_id": rid,
                                              "item_id": "C1"})
    assert renewed.json() == {"item_id": "C1", "due": "2030-04-09", "renewals": 1,
                              "max_renewals": 2}
    refused = signed(w, "/v1/readers/renew", {"cabinet_id": "cab-a", "reader_id": rid,
                                              "item_id": "C2"})
    assert "another reader" in assert_error(refused, 409, "held_for_another")["detail"]
    with w.engine.connect() as conn:
        rows = conn.execute(select(audit.c.actor, audit.c.action, audit.c.detail)
                            .where(audit.c.action == "loan.renew")).all()
    assert [(r.actor, r.detail["cabinet_id"], r.detail["due"]) for r in rows] == [
        (f"reader:{rid}", "cab-a", "2030-04-09")]
    # the phone sees the cabinet's renewal
    assert {x["item_id"]: x["due"] for x in w.client.get(
        "/api/readers/me/loans", headers=headers).json()["loans"]}["C1"] == "2030-04-09"


def test_a_recommendation_from_the_cabinet_reaches_staff(world: World) -> None:
    w = world
    rid, _ = w.reader()
    made = signed(w, "/v1/readers/recommend", {"cabinet_id": "cab-a", "reader_id": rid,
                                               "isbn": "978-7-02-000220-7", "title": "红楼梦"})
    assert made.status_code == 200, made.text
    assert (made.json()["isbn"], made.json()["status"]) == ("9787020002207", "need")
    listed = w.client.get("/api/recommendations", headers=bearer(w.staff["operator"])).json()
    assert [(r["reader_id"], r["isbn"]) for r in listed["recommendations"]] == [
        (rid, "9787020002207")]
    with w.engine.connect() as conn:
        row = conn.execute(select(audit.c.actor, audit.c.detail)
                           .where(audit.c.action == "recommendation.create")).one()
    assert (row.actor, row.detail["cabinet_id"]) == (f"reader:{rid}", "cab-a")
    bad = signed(w, "/v1/readers/recommend", {"cabinet_id": "cab-a", "reader_id": rid,
                                              "isbn": "978-7-02-000220-8"})
    assert "check digit" in assert_error(bad, 422, "invalid_isbn")["detail"]


@pytest.mark.parametrize("path", ["/v1/readers/loans", "/v1/readers/renew",
                                  "/v1/readers/recommend"])
def test_refusals(world: World, path: str) -> None:
    w = world
    rid, _ = w.reader()
    body = {"cabinet_id": "cab-a", "reader_id": rid, "item_id": "C9", "title": "x"}
    if path == "/v1/readers/loans":
        body = {"cabinet_id": "cab-a", "reader_id": rid}
    elif path == "/v1/readers/recommend":
        body.pop("item_id")
    else:
        body.pop("title")
    unsigned = w.client.post(path, json=body)
    assert_error(unsigned, 401, "missing_header")
    assert_error(signed(w, path, {**body, "cabinet_id": "cab-p"}), 403, "cabinet_mismatch")
    assert_error(signed(w, path, {**body, "reader_id": "R-nobody"}), 404, "unknown_reader")
    assert_error(signed(w, path, {**body, "version": 2}), 400, "unsupported_version")
    assert signed(w, path, {**body, "reader_id": "../x"}).status_code == 422
    assert signed(w, path, {**body, "extra": 1}).status_code == 422
    content = b"\xff not json"
    headers = signing.sign_request("POST", path, content, cabinet_id="cab-a",
                                   private_key=CAB_PRIVATE, now=w.clock.now)
    assert_error(w.client.post(path, content=content, headers=headers), 422, "invalid_json")
    if path == "/v1/readers/renew":  # not this reader's loan
        assert_error(signed(w, path, body), 404, "not_your_loan")
