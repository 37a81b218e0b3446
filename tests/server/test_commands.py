"""Remote commands on the server, on both databases: queued by staff, delivered with the
cabinet's sync replies until its result arrives, expired when late, answered once.

Through the real sync path (``ingest.apply_batch`` under the cabinet lock) and, for the
staff side and the wire format, the real HTTP app with real cabinet signatures.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select

from server import fleet_status
from server.db import write_tx
from server.schema import audit, branches, cabinets, libraries
from syncproto import signing
from syncproto.messages import CabinetStatus, CommandResult, DoorFill, SyncBatch, SyncReply
from tests.server.test_ingest import CAB, CAB_PRIVATE, NOW, OTHER, batch_of, send, setup_network
from tests.server.test_security import Clock, add_staff, bearer, make_app, token_for


def status(at: datetime = NOW, doors: int = 3) -> CabinetStatus:
    return CabinetStatus(reported_at=at, kiosk_version="0.1.0", devices={"board-1": "ok"},
                         fill=[DoorFill(door=n, count=2, capacity=10) for n in range(1, doors + 1)])


def queue(engine: Engine, kind: str = "open_door", args: dict[str, Any] | None = None,
          cab: str = CAB, now: datetime = NOW) -> dict[str, Any]:
    if args is None:
        args = {"door": 2, "reason": "reader stuck, book inside"} if kind == "open_door" else {}
    with write_tx(engine) as conn:
        return fleet_status.queue_command(conn, cabinet_id=cab, kind=kind, args=args,
                                          actor="op-li", now=now)


def commands_of(engine: Engine, cab: str = CAB) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return fleet_status.list_commands(conn, cab)


def audit_rows(engine: Engine, action: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(audit).where(audit.c.action == action)
                                 .order_by(audit.c.id)).all())


def result(cid: int, state: str = "done", **res: Any) -> CommandResult:
    return CommandResult(id=cid, status=state, result=res,  # type: ignore[arg-type]
                         finished_at=NOW + timedelta(seconds=30))


# ---------------------------------------------------------------------- the life of a command


def test_a_command_is_delivered_until_answered_and_the_first_answer_stands(engine: Engine) -> None:
    setup_network(engine)
    cmd = queue(engine)
    assert cmd["status"] == "queued" and cmd["args"] == {"door": 2,
                                                         "reason": "reader stuck, book inside"}
    [row] = audit_rows(engine, "command.queue")
    assert row.actor == "op-li" and row.detail["command"] == cmd["id"]

    # an older kiosk (no status in its batch) never gets a command it could not parse
    assert send(engine, batch_of([])).commands == []
    assert commands_of(engine)[0]["status"] == "queued"

    first = send(engine, batch_of([], status=status()), NOW + timedelta(seconds=5))
    assert [(c.id, c.kind, c.args["door"]) for c in first.commands] == [(cmd["id"], "open_door", 2)]
    assert first.commands[0].expires_at == NOW + timedelta(minutes=10)
    sent = commands_of(engine)[0]
    assert sent["status"] == "sent"

    # a lost reply: the next one carries the same command again, still "sent" since then
    again = send(engine, batch_of([], status=status()), NOW + timedelta(seconds=10))
    assert [c.id for c in again.commands] == [cmd["id"]]
    assert commands_of(engine)[0]["sent_at"] == sent["sent_at"]

    answered = send(engine, batch_of([], status=status(),
                                     command_results=[result(cmd["id"], door=2, unlocked=True)]),
                    NOW + timedelta(seconds=40))
    assert answered.commands == []  # answered in this batch: not delivered again
    done = commands_of(engine)[0]
    assert done["status"] == "done" and done["result"] == {"door": 2, "unlocked": True}

    # the same result again, or a contradicting one: nothing changes
    send(engine, batch_of([], status=status(),
                          command_results=[result(cmd["id"], "failed", reason="x")]),
         NOW + timedelta(seconds=50))
    assert commands_of(engine)[0] == done
    [res] = audit_rows(engine, "command.result")
    assert res.actor == f"cabinet:{CAB}" and res.detail["status"] == "done"


def test_late_commands_expire_and_are_never_delivered(engine: Engine) -> None:
    setup_network(engine)
    door = queue(engine)
    count = queue(engine, "reinventory")
    # eleven minutes later the door opening is no help any more; a recount still is
    reply = send(engine, batch_of([], status=status()), NOW + timedelta(minutes=11))
    assert [c.id for c in reply.commands] == [count["id"]]
    by_id = {c["id"]: c for c in commands_of(engine)}
    assert by_id[door["id"]]["status"] == "expired"
    assert by_id[count["id"]]["status"] == "sent"
    [expired] = audit_rows(engine, "command.expire")
    assert expired.detail == {"command": door["id"], "kind": "open_door", "was": "queued"}
    # never delivered again, even long after
    assert send(engine, batch_of([], status=status()), NOW + timedelta(minutes=12)).commands \
        and all(c.kind != "open_door" for c in send(
            engine, batch_of([], status=status()), NOW + timedelta(minutes=13)).commands)


def test_a_sent_command_without_result_expires_but_a_late_result_is_still_recorded(
        engine: Engine) -> None:
    setup_network(engine)
    cmd = queue(engine)
    send(engine, batch_of([], status=status()), NOW + timedelta(seconds=5))
    assert send(engine, batch_of([], status=status()), NOW + timedelta(minutes=10)).commands == []
    assert commands_of(engine)[0]["status"] == "expired"
    # the cabinet did act (its clock said it was in time): the record must say so
    send(engine, batch_of([], status=status(), command_results=[result(cmd["id"], door=2)]),
         NOW + timedelta(minutes=10, seconds=5))
    row = commands_of(engine)[0]
    assert row["status"] == "done" and row["result"] == {"door": 2}
    assert audit_rows(engine, "command.result")[0].detail["was"] == "expired"


def test_a_cabinet_cannot_answer_for_another(engine: Engine) -> None:
    setup_network(engine)
    theirs = queue(engine, "fetch_diagnostics", cab=OTHER)
    send(engine, batch_of([], status=status(), command_results=[result(theirs["id"])]))
    assert commands_of(engine, OTHER)[0]["status"] == "queued"
    assert send(engine, batch_of([], status=status())).commands == []  # not CAB's
    assert audit_rows(engine, "command.result") == []


@pytest.mark.parametrize(("kind", "args", "code"), [
    ("open_door", {"door": 2}, "reason_required"),
    ("open_door", {"door": 2, "reason": "   "}, "reason_required"),
    ("open_door", {"reason": "stuck"}, "invalid_args"),
    ("open_door", {"door": True, "reason": "stuck"}, "invalid_args"),
    ("open_door", {"door": "2", "reason": "stuck"}, "invalid_args"),
    ("open_door", {"door": 2, "reason": "stuck", "force": 1}, "invalid_args"),
    ("open_door", {"door": 9, "reason": "stuck"}, "unknown_door"),
    ("reinventory", {"door": 1}, "invalid_args"),
    ("self_destruct", {}, "unknown_command"),
])
def test_bad_commands_are_refused_and_nothing_is_queued(engine: Engine, kind: str,
                                                        args: dict[str, Any], code: str) -> None:
    setup_network(engine)
    send(engine, batch_of([], status=status(doors=3)))  # the cabinet reported doors 1..3
    with pytest.raises(fleet_status.CommandRefused) as refused:
        queue(engine, kind, args)
    assert refused.value.code == code and refused.value.status == 422
    assert commands_of(engine) == [] and audit_rows(engine, "command.queue") == []


# ---------------------------------------------------------------------- over HTTP


def _signed(client: TestClient, body: dict[str, Any], now: datetime) -> Any:
    content = json.dumps(body).encode()
    headers = signing.sign_request("POST", "/v1/sync", content, cabinet_id=CAB,
                                   private_key=CAB_PRIVATE, now=now)
    headers["Content-Type"] = "application/json"
    return client.post("/v1/sync", content=content, headers=headers)


def test_staff_queue_and_read_commands_and_the_cabinet_gets_them_over_http(engine: Engine) -> None:
    setup_network(engine)
    clock = Clock(NOW)
    tech = bearer(token_for(engine, add_staff(engine, "tech-wang", "technician"), NOW))
    auditor = bearer(token_for(engine, add_staff(engine, "audit-zhao", "auditor"), NOW))
    with TestClient(make_app(engine, clock), raise_server_exceptions=False) as client:
        # an older kiosk's batch (no status, no results) is accepted; its reply has no
        # "commands" key, which its own reply model would refuse
        old = _signed(client, {"version": 1, "cabinet_id": CAB, "sent_at": NOW.isoformat(),
                               "events": []}, NOW)
        assert old.status_code == 200 and "commands" not in old.json()

        r = client.post(f"/api/cabinets/{CAB}/commands", headers=tech,
                        json={"kind": "open_door", "args": {"door": 1}})
        assert r.status_code == 422 and r.json()["error"] == "reason_required"
        assert client.post("/api/cabinets/nope/commands", headers=tech,
                           json={"kind": "reinventory"}).status_code == 404
        assert client.post(f"/api/cabinets/{CAB}/commands", headers=auditor,
                           json={"kind": "reinventory"}).status_code == 403
        r = client.post(f"/api/cabinets/{CAB}/commands", headers=tech,
                        json={"kind": "open_door", "args": {"door": 1, "reason": "卡住了"}})
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        assert r.json()["actor"] == "tech-wang"

        body = {"version": 1, "cabinet_id": CAB, "sent_at": NOW.isoformat(), "events": [],
                "status": status().model_dump(mode="json")}
        reply = SyncReply.model_validate(_signed(client, body, NOW).json())
        assert [c.id for c in reply.commands] == [cid]

        body["command_results"] = [result(cid, unlocked=True).model_dump(mode="json")]
        assert _signed(client, body, NOW).status_code == 200
        listed = client.get(f"/api/cabinets/{CAB}/commands", headers=auditor).json()["commands"]
        assert [(c["id"], c["status"], c["result"]) for c in listed] == [
            (cid, "done", {"unlocked": True})]
        assert client.get("/api/cabinets/nope/commands", headers=auditor).status_code == 404
        fleet = client.get("/api/fleet", headers=auditor).json()
        assert {c["id"]: c["online"] for c in fleet["cabinets"]} == {CAB: True, OTHER: False}
        bad = client.post(f"/api/cabinets/{CAB}/commands", headers=tech,
                          json={"kind": "reinventory", "args": [1]})
        assert bad.status_code == 422


# ---------------------------------------------------------------------- the status machine

_step = st.one_of(
    st.tuples(st.just("queue"), st.sampled_from(["open_door", "reinventory"])),
    st.tuples(st.just("sync"), st.booleans()),  # with a status (a current kiosk) or not
    st.tuples(st.just("answer"), st.integers(0, 5), st.sampled_from(["done", "failed"])),
    st.tuples(st.just("wait"), st.integers(1, 40)),  # minutes
)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(_step, min_size=1, max_size=14))
def test_command_statuses_follow_their_rules_whatever_happens(engine: Engine,
                                                              steps: list[tuple[Any, ...]]) -> None:
    """A model of the rules next to the real thing: delivered only while open and in time,
    ``done``/``failed`` final, ``expired`` only changed by a late result, one result each."""
    cab = f"cab-{uuid.uuid4().hex[:12]}"
    with write_tx(engine) as conn:
        if conn.execute(select(branches.c.id).where(branches.c.id == "B-prop")).first() is None:
            conn.execute(insert(libraries).values(isil="CN-PROP", name="prop"))
            conn.execute(insert(branches).values(id="B-prop", name="prop", library_isil="CN-PROP",
                                                 floating=False))
        conn.execute(insert(cabinets).values(id=cab, branch_id="B-prop", name=cab, location="",
                                             public_key="x", registered_at=NOW, active=True,
                                             applied_through=0, deny_version_sent=0))
    now = NOW
    model: dict[int, dict[str, Any]] = {}  # id → {kind, status, expires, answers}
    order: list[int] = []
    for step in steps:
        if step[0] == "queue":
            row = queue(engine, step[1], cab=cab, now=now)
            model[row["id"]] = {"status": "queued", "answers": 0,
                                "expires": now + fleet_status.COMMAND_EXPIRY[step[1]]}
            order.append(row["id"])
        elif step[0] == "wait":
            now += timedelta(minutes=step[1])
        else:
            answers: list[CommandResult] = []
            if step[0] == "answer" and order:
                cid = order[step[1] % len(order)]
                answers = [result(cid, step[2])]
            with_status = step[0] == "answer" or step[1]
            reply = send(engine, SyncBatch(cabinet_id=cab, sent_at=now, command_results=answers,
                                           status=status(now) if with_status else None), now)
            for res in answers:
                m = model[res.id]
                if m["status"] not in ("done", "failed"):
                    m["status"], m["answers"] = res.status, m["answers"] + 1
            if with_status:
                for m in model.values():
                    if m["status"] in ("queued", "sent") and m["expires"] <= now:
                        m["status"] = "expired"
                expected = [cid for cid in order if model[cid]["status"] in ("queued", "sent")]
                assert [c.id for c in reply.commands] == expected
                for cid in expected:
                    model[cid]["status"] = "sent"
            else:
                assert reply.commands == []
        stored = {c["id"]: c["status"] for c in commands_of(engine, cab)}
        assert stored == {cid: m["status"] for cid, m in model.items()}
    with engine.connect() as conn:
        results = conn.execute(select(audit.c.detail).where(
            audit.c.action == "command.result", audit.c.target == f"cabinet:{cab}")).all()
    counted: dict[int, int] = {}
    for (detail,) in results:
        counted[detail["command"]] = counted.get(detail["command"], 0) + 1
    assert counted == {cid: m["answers"] for cid, m in model.items() if m["answers"]}
    assert all(n == 1 for n in counted.values())
