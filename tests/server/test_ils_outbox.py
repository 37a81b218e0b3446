"""Forwarding to the ILS exactly once, whatever the wire loses (server.ils_outbox).

The ILS here is an in-memory model with the faults that matter: an answer lost before the
ILS applied the request, one lost after it applied it, an ILS that cannot be reached. The
property: whatever the faults, every queued result reaches the ILS exactly once (or is
refused and lands with staff), in order per item, and the ILS ends where a fault-free run
would have left it. The SIP2 client and the emulator run the same property over sockets.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from server import ils_outbox
from server.db import write_tx
from server.ils_outbox import (
    Entry,
    Forwarder,
    IlsAnswer,
    IlsItemView,
    IlsUnreachable,
    LostAnswer,
    effect_visible,
)
from server.schema import exceptions
from server.schema import ils_outbox as outbox_table

T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
FAULTS = ("ok", "drop_before", "drop_after", "unreachable")


@dataclass
class FakeIls:
    """Items charged to readers, with a due date; ``faults`` are consumed one per call."""

    faults: list[str] = field(default_factory=list)
    charged: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    applied: Counter[int] = field(default_factory=Counter)  # outbox id → times applied
    refuse: set[str] = field(default_factory=set)  # item ids the ILS does not know

    def _fault(self) -> str:
        return self.faults.pop(0) if self.faults else "ok"

    def _apply(self, entry: Entry) -> IlsAnswer:
        if entry.item_id in self.refuse:
            return IlsAnswer(False, "Item not found")
        holder = self.charged.get(entry.item_id)
        if entry.kind == "checkout":
            if holder is not None and holder[0] != entry.reader_id:
                return IlsAnswer(False, "Item charged to another patron")
            self.charged[entry.item_id] = (entry.reader_id or "", entry.due)
        elif entry.kind == "checkin":
            self.charged.pop(entry.item_id, None)
        else:
            if holder is None:
                return IlsAnswer(False, "Item not charged")
            self.charged[entry.item_id] = (holder[0], entry.due)
        self.applied[entry.id] += 1
        return IlsAnswer(True)

    def send(self, entry: Entry) -> IlsAnswer:
        fault = self._fault()
        if fault == "unreachable":
            raise IlsUnreachable("connection refused")
        if fault == "drop_before":
            raise LostAnswer("timed out")
        answer = self._apply(entry)
        if fault == "drop_after":
            raise LostAnswer("connection reset after the request")
        return answer

    def lookup(self, entry: Entry) -> IlsItemView:
        if self._fault() == "unreachable":
            raise IlsUnreachable("connection refused")
        holder = self.charged.get(entry.item_id)
        if holder is None:
            return IlsItemView(charged=False)
        return IlsItemView(charged=True, charged_to=holder[0], due=holder[1])


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def queue(engine: Engine, plan: list[tuple[str, str, str | None, str | None]]) -> None:
    """(kind, item, reader, due) in transaction order."""
    with write_tx(engine) as conn:
        for n, (kind, item, reader, due) in enumerate(plan):
            assert ils_outbox.enqueue(conn, kind=kind, source=str(uuid.uuid4()), item_id=item,
                                      reader_id=reader, cabinet_id=None,
                                      transaction_at=T0 + timedelta(minutes=n), due=due,
                                      offline=True, now=T0)


def statuses(engine: Engine) -> dict[int, tuple[str, str | None]]:
    with engine.connect() as conn:
        return {r.id: (r.status, r.resolved_by)
                for r in conn.execute(select(outbox_table).order_by(outbox_table.c.id))}


# ----------------------------------------------------------------------------- the rule


def test_the_effect_rule() -> None:
    out = Entry(1, "checkout", "I1", "R1", T0, "2030-04-01", True, "sent", 1)
    back = Entry(2, "checkin", "I1", None, T0, None, True, "sent", 1)
    renew = Entry(3, "renew", "I1", "R1", T0, "2030-05-01", False, "sent", 1)
    assert effect_visible(out, IlsItemView(True, "R1", "2030-04-01"))
    assert effect_visible(out, IlsItemView(True, None, None))  # the ILS names no holder
    assert not effect_visible(out, IlsItemView(True, "R2", "2030-04-01"))  # someone else's
    assert not effect_visible(out, IlsItemView(False))
    assert effect_visible(back, IlsItemView(False)) and not effect_visible(back, IlsItemView(True))
    assert effect_visible(renew, IlsItemView(True, "R1", "2030-05-01"))
    assert not effect_visible(renew, IlsItemView(True, "R1", "2030-04-01"))  # not renewed yet
    # knowing the date before the renewal: any move counts (the ILS chose its own date)
    moved = Entry(4, "renew", "I1", "R1", T0, "2030-05-01", False, "sent", 1, "2030-04-01")
    assert effect_visible(moved, IlsItemView(True, "R1", "2030-05-03"))
    assert not effect_visible(moved, IlsItemView(True, "R1", "2030-04-01"))
    assert not effect_visible(moved, IlsItemView(True, "R2", "2030-05-03"))  # someone else's


def test_enqueueing_is_idempotent(engine: Engine) -> None:
    with write_tx(engine) as conn:
        args: dict[str, Any] = dict(kind="checkout", source="ev-1", item_id="I1", reader_id="R1",
                                    cabinet_id=None, transaction_at=T0, due="2030-04-01",
                                    offline=True, now=T0)
        assert ils_outbox.enqueue(conn, **args) is True
        assert ils_outbox.enqueue(conn, **args) is False
        with pytest.raises(ValueError, match="unknown ILS kind"):
            ils_outbox.enqueue(conn, **{**args, "kind": "steal"})


def test_a_batch_of_events_queues_each_result_once_in_event_order(engine: Engine) -> None:
    """What ingest does with a sync batch: its loans and returns become checkouts and
    checkins in event order; an event queued by an earlier batch (a re-sent batch) or twice in
    this one is not queued again; events that are not circulation queue nothing."""
    from syncproto.messages import CabinetEvent

    def event(seq: int, kind: str, **payload: Any) -> CabinetEvent:
        return CabinetEvent(cabinet_id="C1", seq=seq, uuid=uuid.uuid5(uuid.NAMESPACE_URL,
                            f"ev-{seq}"), kind=kind, at=T0 + timedelta(minutes=seq), mono=seq,
                            boot_id="b", offline=seq == 1, payload=payload)

    loan = event(1, "loan", item_id="I1", reader_id="R1", due="2030-04-01T23:59:59+08:00")
    back = event(2, "return", item_id="I1", reader_id="R1")
    alarm = event(3, "alarm", door=1)
    again = event(4, "loan", item_id="I2", reader_id="R2", due="2030-04-02")
    with write_tx(engine) as conn:
        assert ils_outbox.enqueue_event(conn, "C1", again, T0) is True  # an earlier batch
    with write_tx(engine) as conn:
        rows = [r for e in (loan, back, alarm, again, loan)
                if (r := ils_outbox.event_row("C1", e, T0)) is not None]
        assert ils_outbox.enqueue_rows(conn, rows) == 2
    with engine.connect() as conn:
        got = conn.execute(select(outbox_table.c.kind, outbox_table.c.item_id,
                                  outbox_table.c.due, outbox_table.c.offline,
                                  outbox_table.c.source).order_by(outbox_table.c.id)).all()
    assert [tuple(r[:4]) for r in got] == [("checkout", "I2", "2030-04-02", False),
                                           ("checkout", "I1", "2030-04-01", True),
                                           ("checkin", "I1", None, False)]
    assert [r.source for r in got][1:] == [str(loan.uuid), str(back.uuid)]


# ----------------------------------------------------------------------------- faults


def test_a_lost_answer_is_looked_up_not_resent(engine: Engine) -> None:
    queue(engine, [("checkout", "I1", "R1", "2030-04-01")])
    ils = FakeIls(faults=["drop_after"])
    forwarder = Forwarder(engine, ils, clock=Clock())
    assert forwarder.run_once()["lost"] == 1
    assert list(statuses(engine).values()) == [("sent", None)]  # uncertain, durably
    assert forwarder.run_once() == {"confirmed": 1, "rejected": 0, "looked_up": 1, "lost": 0,
                                    "unreachable": 0}
    assert list(statuses(engine).values()) == [("confirmed", "item_information")]
    assert ils.applied == Counter({1: 1})  # charged once


def test_an_answer_lost_before_the_ils_applied_is_sent_again(engine: Engine) -> None:
    queue(engine, [("checkout", "I1", "R1", "2030-04-01")])
    ils = FakeIls(faults=["drop_before"])
    Forwarder(engine, ils, clock=Clock()).drain()
    assert list(statuses(engine).values()) == [("confirmed", "answer")]
    assert ils.applied == Counter({1: 1})


def test_a_checkin_waits_for_its_checkout(engine: Engine) -> None:
    queue(engine, [("checkout", "I1", "R1", "2030-04-01"), ("checkin", "I1", None, None)])
    ils = FakeIls(faults=["drop_before"])
    forwarder = Forwarder(engine, ils, clock=Clock())
    forwarder.run_once()  # the checkout's answer is lost; the checkin must not overtake it
    assert ils.applied == Counter() and ils.charged == {}
    assert [s for s, _ in statuses(engine).values()] == ["sent", "pending"]
    forwarder.drain()
    assert ils.applied == Counter({1: 1, 2: 1}) and ils.charged == {}


def test_a_refusal_goes_to_staff_with_the_ils_message(engine: Engine) -> None:
    queue(engine, [("checkout", "NOPE", "R1", "2030-04-01")])
    ils = FakeIls(refuse={"NOPE"})
    Forwarder(engine, ils, clock=Clock()).drain()
    assert list(statuses(engine).values()) == [("rejected", "answer")]
    with engine.connect() as conn:
        (exc,) = conn.execute(select(exceptions)).all()
    assert exc.kind == "ils_rejected" and exc.evidence["ils_message"] == "Item not found"
    assert exc.actions == ["acknowledge", "resend"]


def test_an_unreachable_ils_stops_the_pass_and_loses_nothing(engine: Engine) -> None:
    queue(engine, [("checkout", "I1", "R1", "2030-04-01"), ("checkout", "I2", "R2", None)])
    ils = FakeIls(faults=["unreachable"])
    forwarder = Forwarder(engine, ils, clock=Clock())
    assert forwarder.run_once()["unreachable"] == 1
    assert [s for s, _ in statuses(engine).values()] == ["pending", "pending"]  # nothing went out
    forwarder.drain()
    assert ils.applied == Counter({1: 1, 2: 1})


@st.composite
def histories(draw: Any) -> list[tuple[str, str, str | None, str | None]]:
    """Per item, a realistic life: checkout, maybe renewals, checkin, again…, interleaved.

    (Two checkouts to the same reader with no checkin between would be indistinguishable
    from one in the ILS — the lookup then rightly confirms the second without sending it.)"""
    lives: list[list[tuple[str, str, str | None, str | None]]] = []
    for n in range(draw(st.integers(1, 3))):
        item, life = f"I{n}", []
        loans = draw(st.integers(1, 3))
        for n_loan in range(loans):
            reader = draw(st.sampled_from(["R1", "R2", "张三"]))
            life.append(("checkout", item, reader, "2030-04-01"))
            for k in range(draw(st.integers(0, 1))):
                life.append(("renew", item, reader, f"2030-05-0{k + 1}"))
            # returned before the next loan; the last loan may still be out
            if n_loan < loans - 1 or draw(st.booleans()):
                life.append(("checkin", item, None, None))
        lives.append(life)
    plan: list[tuple[str, str, str | None, str | None]] = []
    while any(lives):
        life = draw(st.sampled_from([x for x in lives if x]))
        plan.append(life.pop(0))
    return plan


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=histories(), faults=st.lists(st.sampled_from(FAULTS), max_size=30))
def test_whatever_the_wire_loses_each_result_reaches_the_ils_once(
        engine: Engine, plan: list[tuple[str, str, str | None, str | None]],
        faults: list[str]) -> None:
    note(f"plan={plan} faults={faults}")
    with write_tx(engine) as conn:
        conn.execute(outbox_table.delete())
    queue(engine, plan)
    ils = FakeIls(faults=list(faults))
    Forwarder(engine, ils, clock=Clock()).drain()
    clean = FakeIls()
    with engine.connect() as conn:
        rows = conn.execute(select(outbox_table).order_by(outbox_table.c.id)).all()
    # a fault-free run in the same order says which results the ILS accepts (a checkout of
    # a copy charged to someone else is refused either way)
    expected = {r.id: "confirmed" if clean._apply(ils_outbox._entry(r)).ok else "rejected"
                for r in rows}
    assert {r.id: r.status for r in rows} == expected
    assert ils.applied == Counter({i: 1 for i, s in expected.items() if s == "confirmed"})
    assert ils.charged == clean.charged


def test_a_lost_renewal_is_not_repeated_by_an_ils_that_picks_its_own_date(engine: Engine) -> None:
    class OwnDates(FakeIls):
        def _apply(self, entry: Entry) -> IlsAnswer:
            answer = super()._apply(entry)
            if entry.kind == "renew" and answer.ok:  # the ILS's policy, not our date
                self.charged[entry.item_id] = (entry.reader_id or "", "2030-06-30")
            return answer

    ils = OwnDates(faults=[], charged={"I1": ("R1", "2030-04-01")})
    with write_tx(engine) as conn:
        ils_outbox.enqueue(conn, kind="renew", source="renew:I1:1", item_id="I1", reader_id="R1",
                           cabinet_id=None, transaction_at=T0, due="2030-05-01", offline=False,
                           now=T0, previous_due="2030-04-01")
    ils.faults = ["drop_after"]
    Forwarder(engine, ils, clock=Clock()).drain()
    assert list(statuses(engine).values()) == [("confirmed", "item_information")]
    assert ils.applied == Counter({1: 1})  # renewed once, though the dates differ
