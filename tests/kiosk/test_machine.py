"""The cabinet's session state machine (kiosk/machine.py): example flows, then a hypothesis
state machine that runs it against a simulated physical cabinet."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import event as hyp_event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kiosk.machine import (
    AlarmRaised,
    BeginReturn,
    BeginSession,
    ChooseDoor,
    Command,
    Commit,
    Content,
    DoorClosed,
    DoorInfo,
    DoorOpened,
    EndSession,
    Event,
    Finish,
    Inventory,
    InventoryFailed,
    InventoryResult,
    Machine,
    MachineError,
    MachinePolicy,
    Notify,
    Resolve,
    Resolved,
    ResolveRefused,
    TagRead,
    Tick,
    Unlock,
    UnlockDone,
)
from kiosk.rules import ItemView, Patron

OWN = "CN-OWN"
NET = "CN-NET"
FAR = "CN-FAR"  # a library outside the network
POLICY = MachinePolicy(own_library=OWN, network_libraries=frozenset({OWN, NET}))
DOORS = {1: DoorInfo(number=1, capacity=4), 2: DoorInfo(number=2, capacity=4),
         3: DoorInfo(number=3, capacity=4, accessible=True)}


# ---------------------------------------------------------------- helpers
def c(item: str, owner: str | None = None) -> Content:
    """A book whose tag uid is derived from its item id."""
    return Content("u-" + item, item, owner)


def tags(*contents: Content) -> tuple[TagRead, ...]:
    return tuple(TagRead(x.uid, x.item_id, x.owner_library) for x in contents)


def known(*contents: Content) -> dict[str, Content]:
    return {x.uid: x for x in contents}


def of(cmds: Iterable[Command], kind: type) -> list:
    return [x for x in cmds if isinstance(x, kind)]


def notes(cmds: Iterable[Command]) -> list[str]:
    return [x.key for x in cmds if isinstance(x, Notify)]


def one_commit(cmds: list[Command]) -> Commit:
    commits = of(cmds, Commit)
    assert len(commits) == 1, cmds
    return commits[0]


class Cab:
    """A machine plus a clock, with the steps a reader goes through."""

    def __init__(self, doors: Mapping[int, DoorInfo] = DOORS, policy: MachinePolicy = POLICY,
                 fill: Mapping[int, int] | None = None) -> None:
        self.m = Machine(doors, policy, fill)
        self.now = 1000.0

    def __call__(self, event: Event, dt: float = 0.0) -> list[Command]:
        self.now += dt
        return self.m.handle(event, self.now)

    def login(self, patron: Patron, hold_doors: tuple[int, ...] = (), sid: str = "s1"
              ) -> list[Command]:
        assert self(BeginSession(sid, "card")) == [Resolve(sid), Notify("session.identifying")]
        return self(Resolved(patron, hold_doors))

    def open_close(self, door: int) -> list[Command]:
        """Unlock confirmed, the door opened and closed: returns the close's commands."""
        assert notes(self(UnlockDone(door, True))) == ["door.unlocked"]
        assert notes(self(DoorOpened(door), 1)) == ["door.open"]
        out = self(DoorClosed(door), 1)
        assert of(out, Inventory) == [Inventory(door, 0)]
        return out

    def take(self, door: int, before: Iterable[Content], after: Iterable[Content],
             items: Mapping[str, ItemView] | None = None, exposure_left: int = 0
             ) -> list[Command]:
        """One visit of an already unlocked door: open, close, the count."""
        self.open_close(door)
        before, after = list(before), list(after)
        views = dict(items or {})
        for x in before + after:
            if x.item_id and x.item_id not in views and x.owner_library in (None, OWN):
                views[x.item_id] = ItemView(item_id=x.item_id)
        return self(InventoryResult(door, tags(*after), known(*before), views, exposure_left))

    def borrow(self, door: int, before: Iterable[Content], after: Iterable[Content],
               items: Mapping[str, ItemView] | None = None, exposure_left: int = 0
               ) -> list[Command]:
        unlock = of(self(ChooseDoor(door), 1), Unlock)
        assert [u.door for u in unlock] == [door]
        return self.take(door, before, after, items, exposure_left)


R1 = Patron(reader_id="R1", loans=0, max_loans=10)
A, B, C, D, H = c("A"), c("B"), c("C"), c("D"), c("H")


# ---------------------------------------------------------------- borrowing
def test_borrow_several_doors_in_one_session() -> None:
    cab = Cab()
    out = cab.login(Patron(reader_id="R1", loans=7, max_loans=10))
    assert notes(out) == ["borrow.choose_door"] and not of(out, Unlock)
    out = cab(ChooseDoor(1), 1)
    assert of(out, Unlock) == [Unlock(1, "borrow", "s1", "R1")]
    out = cab.take(1, [A, B, C], [C])
    commit = one_commit(out)
    assert commit.loans == ("A", "B") and commit.alarms == () and commit.returns == ()
    assert commit.contents == (C,) and commit.reader_id == "R1" and commit.session == "s1"
    assert not commit.offline and commit.manifest is None
    assert ("borrow.loaned" in notes(out)) and not of(out, Unlock)
    # the second door: the first door's loans count against the limit (7 + 2 + 1 = 10)
    out = cab.borrow(2, [D, H], [])
    commit = one_commit(out)
    assert commit.loans == ("D",)
    assert commit.contents == (H,)  # refused, still expected back
    assert of(out, Unlock) == [Unlock(2, "reopen", "s1", "R1", ("H",))]
    assert "borrow.put_back" in notes(out)
    out = cab(Finish(), 1)
    assert notes(out) == ["session.close_doors_first"] and not of(out, EndSession)
    out = cab.take(2, [H], [H])  # put back: nothing to record
    commit = one_commit(out)
    assert commit.loans == () and commit.alarms == () and commit.contents == (H,)
    out = cab(Finish(), 1)
    assert of(out, EndSession) == [EndSession("s1", "finished")]
    assert out[0] == Notify("session.finished", {"loans": 3})
    assert not cab.m.busy


REFUSALS = {
    "hold_for_other": (R1, ItemView(item_id="H", hold_for="R9")),
    "reference_only": (R1, ItemView(item_id="H", reference_only=True)),
    "limit_reached": (Patron(reader_id="R1", loans=9, max_loans=10), ItemView(item_id="H")),
    "offline_allowance": (Patron(reader_id="R1", offline=True, grant_id="g", offline_allowance=1),
                          ItemView(item_id="H")),
}


@pytest.mark.parametrize("reason", sorted(REFUSALS))
@pytest.mark.parametrize("put_back", [True, False])
def test_refused_item_is_asked_back_never_loaned(reason: str, put_back: bool) -> None:
    patron, view = REFUSALS[reason]
    cab = Cab()
    cab.login(patron)
    out = cab.borrow(1, [A, H, C], [C], {"H": view}, exposure_left=5)
    commit = one_commit(out)
    assert commit.loans == ("A",)
    assert commit.offline == patron.offline and commit.grant_id == patron.grant_id
    assert "H" not in commit.loans and commit.alarms == ()
    assert set(commit.contents) == {C, H}
    put = [n for n in of(out, Notify) if n.key == "borrow.put_back"]
    assert put == [Notify("borrow.put_back", {"door": 1, "items": [
        {"item_id": "H", "reason": reason}]})]
    assert of(out, Unlock) == [Unlock(1, "reopen", "s1", "R1", ("H",))]
    after = [C, H] if put_back else [C]
    out = cab.take(1, [C, H], after, {"H": view}, exposure_left=4)
    commit = one_commit(out)
    assert commit.loans == ()
    if put_back:
        assert commit.alarms == () and set(commit.contents) == {C, H}
    else:
        assert commit.alarms == (("H", "refused_not_returned:" + reason),)
        assert commit.contents == (C,)
        assert "alarm.item" in notes(out)
    assert not of(out, Unlock)  # one re-open only
    assert notes(cab(Finish(), 1))[-1] == "session.finished"


def test_exposure_cap_refuses_offline_loans() -> None:
    cab = Cab()
    cab.login(Patron(reader_id="R1", offline=True, grant_id="g", offline_allowance=5))
    out = cab.borrow(1, [A, B, C], [], exposure_left=1)
    commit = one_commit(out)
    assert commit.loans == ("A",) and commit.offline and commit.grant_id == "g"
    assert out[-1] == Unlock(1, "reopen", "s1", "R1", ("B", "C"))


def test_refused_item_not_put_back_stays_an_alarm_when_the_rules_would_now_allow_it() -> None:
    """A sync between the refusal and the re-opened door's close frees exposure: the item
    the reader was told to put back is still an alarm, not a loan of the second close."""
    cab = Cab()
    cab.login(Patron(reader_id="R1", offline=True, grant_id="g", offline_allowance=5))
    out = cab.borrow(1, [A, B], [], exposure_left=1)
    assert one_commit(out).loans == ("A",)
    assert out[-1] == Unlock(1, "reopen", "s1", "R1", ("B",))
    out = cab.take(1, [B, C], [], exposure_left=5)
    commit = one_commit(out)
    assert commit.alarms == (("B", "refused_not_returned:exposure_cap"),)
    assert commit.loans == ("C",)  # a new item taken during the re-open is judged as usual


def test_final_reopen_refusals_are_alarms() -> None:
    cab = Cab()
    cab.login(Patron(reader_id="R1", loans=9, max_loans=10))
    out = cab.borrow(1, [A, B], [])
    assert one_commit(out).loans == ("A",)
    out = cab.take(1, [B, C], [B])  # puts B back but takes C: over the limit, no more reopens
    commit = one_commit(out)
    assert commit.loans == () and commit.alarms == (("C", "refused_not_returned:limit_reached"),)
    assert commit.contents == (B,) and not of(out, Unlock)


def test_duplicate_hold_doors_unlock_once() -> None:
    cab = Cab()
    out = cab.login(Patron(reader_id="R1", holds=frozenset({"H", "D"})), hold_doors=(2, 2, 9))
    assert of(out, Unlock) == [Unlock(2, "hold", "s1", "R1")]


# ---------------------------------------------------------------- holds
def test_hold_pickup_opens_exactly_the_hold_doors() -> None:
    cab = Cab()
    hold = {"H": ItemView(item_id="H", hold_for="R1")}
    out = cab.login(Patron(reader_id="R1", holds=frozenset({"H"})), hold_doors=(3,))
    assert of(out, Unlock) == [Unlock(3, "hold", "s1", "R1")]
    assert out[0] == Notify("borrow.choose_door", {"offline": False, "hold_doors": [3]})
    with pytest.raises(MachineError):
        cab(ChooseDoor(3))  # already being opened for the hold
    out = cab.take(3, [H, A], [A], hold)
    commit = one_commit(out)
    assert commit.loans == ("H",) and commit.reader_id == "R1"
    assert notes(cab(Finish(), 1))[-1] == "session.finished"
    # another reader taking it is refused
    cab2 = Cab()
    cab2.login(Patron(reader_id="R2"), sid="s2")
    out = cab2.borrow(3, [H, A], [A], hold)
    commit = one_commit(out)
    assert commit.loans == () and H in commit.contents
    assert of(out, Unlock) == [Unlock(3, "reopen", "s2", "R2", ("H",))]


def test_holds_are_judged_first_at_the_limit() -> None:
    cab = Cab()
    cab.login(Patron(reader_id="R1", loans=9, max_loans=10, holds=frozenset({"H"})),
              hold_doors=(1,))
    out = cab.take(1, [A, H], [], {"H": ItemView(item_id="H", hold_for="R1")})
    assert one_commit(out).loans == ("H",)


# ---------------------------------------------------------------- returns
def test_return_opens_the_emptiest_door_with_room() -> None:
    cab = Cab(fill={1: 3, 2: 1, 3: 2})
    out = cab(BeginReturn("r1"))
    assert of(out, Unlock) == [Unlock(2, "return", "r1", None)]


def test_return_accessible_door_when_asked() -> None:
    cab = Cab(fill={1: 0, 2: 0, 3: 3})
    out = cab(BeginReturn("r1", accessible=True))
    assert of(out, Unlock) == [Unlock(3, "return", "r1", None)]
    cab = Cab(fill={1: 0, 2: 0, 3: 4})  # the accessible door is full: any door with room
    assert of(cab(BeginReturn("r1", accessible=True)), Unlock)[0].door == 1


def test_return_full_cabinet() -> None:
    cab = Cab(fill={1: 4, 2: 4, 3: 4})
    out = cab(BeginReturn("r1"))
    assert out == [Notify("return.full"), EndSession("r1", "refused")]
    assert not cab.m.busy and cab.m.session is None


def test_return_accepts_own_and_network_books() -> None:
    cab = Cab(fill={1: 1, 2: 2, 3: 2})
    assert of(cab(BeginReturn("r1")), Unlock)[0].door == 1
    nb = c("N", NET)
    cab.open_close(1)
    out = cab(InventoryResult(1, tags(A, B, nb), known(A), {"B": ItemView(item_id="B")}))
    commit = one_commit(out)
    assert commit.returns == (Content("u-B", "B", OWN), nb)
    assert commit.loans == () and commit.alarms == () and commit.reader_id is None
    assert set(commit.contents) == {A, B, nb}
    assert "return.accepted" in notes(out) and notes(out)[-1] == "return.done"
    assert out[-1] == EndSession("r1", "finished")
    assert cab.m.fill[1] == 3


def test_return_of_a_book_of_a_library_outside_the_network_is_asked_out() -> None:
    cab = Cab()
    cab(BeginReturn("r1"))
    cab.open_close(1)
    far = c("F", FAR)
    out = cab(InventoryResult(1, tags(far), {}))
    commit = one_commit(out)
    assert commit.returns == () and commit.contents == ()
    assert "return.remove_foreign" in notes(out)
    assert of(out, Unlock) == [Unlock(1, "reopen", "r1", None)]


@pytest.mark.parametrize("left", [True, False])
def test_tag_without_library_data_is_asked_out_then_alarm(left: bool) -> None:
    cab = Cab()
    cab(BeginReturn("r1"))
    cab.open_close(1)
    junk = TagRead("u-junk", None)
    out = cab(InventoryResult(1, (junk, *tags(B)), {}, {"B": ItemView(item_id="B")}))
    commit = one_commit(out)
    assert commit.returns == (Content("u-B", "B", OWN),)
    assert commit.contents == (Content("u-B", "B", None),)  # the junk tag is not recorded yet
    assert "return.remove_foreign" in notes(out) and not of(out, EndSession)
    assert of(out, Unlock) == [Unlock(1, "reopen", "r1", None)]
    cab.open_close(1)
    after = (junk, *tags(B)) if left else tags(B)
    out = cab(InventoryResult(1, after, known(Content("u-B", "B", None))))
    commit = one_commit(out)
    if left:
        assert commit.alarms == ((None, "unrecognised_left:u-junk"),)
        assert Content("u-junk", None) in commit.contents
    else:
        assert commit.alarms == ()
    assert not of(out, Unlock) and of(out, EndSession) == [EndSession("r1", "finished")]


def test_unreadable_tag_bounded_reinventories_then_reposition() -> None:
    cab = Cab()
    cab(BeginReturn("r1"))
    cab.open_close(1)
    bad = TagRead("u-bad", None, readable=False)
    for attempt in range(1, POLICY.inventory_retries + 1):
        out = cab(InventoryResult(1, (bad,), {}))
        assert out == [Inventory(1, attempt)]
    out = cab(InventoryResult(1, (bad,), {}))
    commit = one_commit(out)
    assert commit.contents == () and commit.returns == ()
    assert "return.reposition" in notes(out)
    assert of(out, Unlock) == [Unlock(1, "reopen", "r1", None)]
    cab.open_close(1)  # repositioned: it reads now
    out = cab(InventoryResult(1, tags(A), {}))
    assert one_commit(out).returns == (Content("u-A", "A", OWN),)


def test_anything_removed_during_a_return_is_an_alarm() -> None:
    cab = Cab()
    cab(BeginReturn("r1"))
    cab.open_close(1)
    out = cab(InventoryResult(1, tags(B), known(A, C), {"B": ItemView(item_id="B")}))
    commit = one_commit(out)
    assert commit.alarms == (("A", "removed_during_return"), ("C", "removed_during_return"))
    assert commit.returns == (Content("u-B", "B", OWN),) and commit.loans == ()
    assert commit.contents == (B,)


# ---------------------------------------------------------------- staff
def test_staff_restock_commits_a_manifest() -> None:
    cab = Cab()
    out = cab.login(Patron(reader_id="S1", role="staff"))
    assert notes(out) == ["restock.choose_doors"]
    out = cab(ChooseDoor(2), 1)
    assert of(out, Unlock) == [Unlock(2, "restock", "s1", "S1")]
    cab.open_close(2)
    bad = TagRead("u-bad", None, readable=False)
    out = cab(InventoryResult(2, (*tags(B, C, D), bad), known(A, B)))
    assert out == [Inventory(2, 1)]  # an unreadable new tag: counted again first
    cab(InventoryResult(2, (*tags(B, C, D), bad), known(A, B)))
    out = cab(InventoryResult(2, (*tags(B, C, D), bad), known(A, B)))
    commit = one_commit(out)
    assert commit.loans == () and commit.returns == () and commit.alarms == ()
    assert commit.manifest == {"door": 2, "staff_id": "S1", "loaded": ["C", "D", "u-bad"],
                               "removed": ["A"], "unreadable": ["u-bad"]}
    assert set(commit.contents) == {B, C, D, Content("u-bad", None)}
    assert not of(out, Unlock)


# ---------------------------------------------------------------- time
def test_door_left_open_prompts_then_one_alarm() -> None:
    cab = Cab()
    cab.login(R1)
    cab(ChooseDoor(1))
    cab(UnlockDone(1, True))
    cab(DoorOpened(1))
    seen: list[Command] = []
    for _ in range(30):
        seen += cab(Tick(), 10)
    prompts = [n.params["level"] for n in of(seen, Notify) if n.key == "door.close_prompt"]
    assert prompts == [1, 2]
    assert of(seen, AlarmRaised) == [AlarmRaised("door_left_open", 1)]
    assert not of(seen, EndSession)  # a session with an open door does not time out
    assert of(cab(DoorClosed(1)), Inventory) == [Inventory(1, 0)]


def test_idle_session_times_out() -> None:
    cab = Cab()
    cab.login(R1)
    assert cab(Tick(), POLICY.session_idle_s - 1) == []
    out = cab(Tick(), 1)
    assert out == [Notify("session.timeout"), EndSession("s1", "timeout")]
    assert cab.m.session is None


def test_unanswered_resolution_times_out() -> None:
    cab = Cab()
    cab(BeginSession("s1", "qr"))
    assert of(cab(Tick(), POLICY.session_idle_s), EndSession) == [EndSession("s1", "timeout")]


def test_resolve_refused_ends_the_session() -> None:
    cab = Cab()
    cab(BeginSession("s1", "card"))
    out = cab(ResolveRefused("blocked"))
    assert out == [Notify("refused.blocked"), EndSession("s1", "refused")]
    cab(BeginSession("s2", "card"))  # the cabinet is free again


def test_credential_expiry_refuses_new_doors() -> None:
    cab = Cab()
    cab.login(R1)
    out = cab(ChooseDoor(1), POLICY.credential_ttl_s + 1)
    assert out == [Notify("refused.credential_expired"), EndSession("s1", "expired")]
    assert not cab.m.busy


def test_credential_expiry_while_a_door_is_being_counted_keeps_the_reader() -> None:
    """The reader's first door is still being counted when they ask for another one after
    the credential's time: the refused door must not turn the count into a stray one."""
    cab = Cab()
    cab.login(R1)
    cab(ChooseDoor(1))
    cab.open_close(1)
    out = cab(ChooseDoor(2), POLICY.credential_ttl_s)
    assert notes(out) == ["refused.credential_expired"] and not of(out, Unlock)
    commit = one_commit(cab(InventoryResult(1, tags(B), known(A, B),
                                            {"A": ItemView(item_id="A")})))
    assert commit.loans == ("A",) and commit.alarms == () and commit.reader_id == "R1"
    out = cab(Finish())
    assert of(out, EndSession) == [EndSession("s1", "finished")]


def test_credential_expiry_with_an_open_door_keeps_the_session() -> None:
    cab = Cab()
    cab.login(R1)
    cab(ChooseDoor(1))
    cab(UnlockDone(1, True))
    cab(DoorOpened(1))
    out = cab(ChooseDoor(2), POLICY.credential_ttl_s + 1)
    assert out == [Notify("refused.credential_expired")]
    assert cab.m.session is not None


def test_unlocked_door_nobody_opens_counts_as_closed() -> None:
    cab = Cab()
    cab.login(R1)
    cab(ChooseDoor(1))
    cab(UnlockDone(1, True))
    assert cab(Tick(), POLICY.unlock_wait_s - 1) == []
    out = cab(Tick(), 1)
    assert of(out, Inventory) == [Inventory(1, 0)]
    commit = one_commit(cab(InventoryResult(1, tags(A), known(A))))
    assert commit.loans == () and commit.contents == (A,)


# ---------------------------------------------------------------- device failures
def test_unlock_failure_alarms_and_commits_nothing() -> None:
    cab = Cab()
    cab.login(R1)
    cab(ChooseDoor(1))
    out = cab(UnlockDone(1, False, "jammed"))
    assert of(out, AlarmRaised) == [AlarmRaised("unlock_failed:jammed", 1)]
    assert "door.unlock_failed" in notes(out) and not of(out, Commit)
    assert cab(DoorClosed(1)) == [] and cab(InventoryResult(1, (), known(A))) == []
    assert cab(UnlockDone(1, True)) == []  # a late answer changes nothing
    assert of(cab(ChooseDoor(1)), Unlock)  # the reader may try again


def test_unlock_failure_ends_a_return_session() -> None:
    cab = Cab()
    cab(BeginReturn("r1"))
    out = cab(UnlockDone(1, False))
    assert of(out, AlarmRaised) == [AlarmRaised("unlock_failed:no answer", 1)]
    assert of(out, EndSession) == [EndSession("r1", "refused")]


def test_inventory_failure_bounded_retries_then_alarm_and_no_commit() -> None:
    cab = Cab()
    cab.login(R1)
    cab(ChooseDoor(1))
    cab.open_close(1)
    for attempt in range(1, POLICY.inventory_retries + 1):
        assert cab(InventoryFailed(1, "antenna")) == [Inventory(1, attempt)]
    out = cab(InventoryFailed(1, "antenna"))
    assert of(out, AlarmRaised) == [AlarmRaised("inventory_failed:antenna", 1)]
    assert not of(out, Commit) and not of(out, Inventory)
    assert cab(InventoryResult(1, (), known(A))) == []  # too late: recovery's business
    assert of(cab(Finish()), EndSession)


def test_door_whose_count_failed_is_out_of_service_until_recovered() -> None:
    """The ledger no longer knows what is in the door: opening it for the next reader would
    charge them with what the last one took."""
    cab = Cab(fill={1: 2, 2: 3, 3: 3})
    cab.login(R1)
    cab(ChooseDoor(1))
    cab.open_close(1)  # the reader took A
    for _ in range(POLICY.inventory_retries + 1):
        out = cab(InventoryFailed(1, "antenna"))
    assert of(out, AlarmRaised) == [AlarmRaised("inventory_failed:antenna", 1)]
    with pytest.raises(MachineError):
        cab(ChooseDoor(1))
    cab(Finish())
    cab(BeginReturn("r1"))  # the emptiest door, but out of service
    assert cab.m.runs[2].purpose == "return"
    cab.open_close(2)
    cab(InventoryResult(2, tags(B, C, D), known(B, C, D)))
    cab.login(Patron(reader_id="R2", holds=frozenset({"H"})), hold_doors=(1,), sid="s3")
    assert 1 not in cab.m.runs or cab.m.runs[1].phase == "done"  # the hold door stays shut
    cab(Finish())
    # the shell's recovery counts it with the failed session's rules
    out = cab.m.recover(1, kind="borrow", session="s1", patron=R1, expect_back=(),
                        door_open=False, now=cab.now)
    assert out == [Inventory(1, 0)]
    commit = one_commit(cab(InventoryResult(1, tags(C), known(A, C))))
    assert commit.loans == ("A",) and commit.reader_id == "R1" and commit.session == "s1"
    cab.login(R1, sid="s4")
    assert of(cab(ChooseDoor(1)), Unlock)


def test_failed_reopen_unlock_puts_the_door_out_of_service() -> None:
    cab = Cab()
    cab.login(Patron(reader_id="R1", loans=10, max_loans=10))
    out = cab.borrow(1, [A, C], [C])
    assert of(out, Unlock) == [Unlock(1, "reopen", "s1", "R1", ("A",))]
    cab(UnlockDone(1, False, "jammed"))
    with pytest.raises(MachineError):  # A is still recorded inside: not for another reader
        cab(ChooseDoor(1))
    assert of(cab(Finish()), EndSession)
    cab.m.recover(1, kind="borrow", session="s1", patron=Patron(reader_id="R1", loans=10,
                                                                 max_loans=10),
                  expect_back=("A",), door_open=False, now=cab.now)
    commit = one_commit(cab(InventoryResult(1, tags(C), known(A, C))))
    assert commit.alarms == (("A", "refused_not_returned:put_back"),) and commit.loans == ()
    cab.login(R1, sid="s2")
    assert of(cab(ChooseDoor(1)), Unlock)


def test_inventory_failure_ends_a_return_session() -> None:
    cab = Cab(policy=MachinePolicy(inventory_retries=0))
    cab(BeginReturn("r1"))
    cab.open_close(1)
    out = cab(InventoryFailed(1, "x"))
    assert of(out, EndSession) == [EndSession("r1", "finished")] and not of(out, Commit)


# ---------------------------------------------------------------- refusals of the machine
def _state(m: Machine) -> object:
    return (m.snapshot(), repr(m.session), repr(m.runs), dict(m.fill))


def test_machine_errors_leave_the_state_unchanged() -> None:
    cab = Cab()
    with pytest.raises(MachineError):
        cab(ChooseDoor(1))  # no session
    with pytest.raises(MachineError):
        cab(Finish())
    with pytest.raises(MachineError):
        cab(Resolved(R1))
    cab.login(R1)
    cab(ChooseDoor(1))
    before = _state(cab.m)
    bad: list[Event] = [BeginSession("s2", "card"), BeginReturn("s2"), ChooseDoor(7),
                        ChooseDoor(1), Resolved(R1), ResolveRefused("unknown")]
    for ev in bad:
        with pytest.raises(MachineError):
            cab(ev)
        assert _state(cab.m) == before, ev
    cab(UnlockDone(1, True))
    cab(DoorOpened(1))
    with pytest.raises(MachineError):
        cab(ChooseDoor(1))  # open
    assert cab(DoorOpened(9)) == [] and cab(DoorClosed(9)) == []  # unknown doors: ignored


def test_return_session_cannot_choose_doors() -> None:
    cab = Cab()
    cab(BeginReturn("r1"))
    with pytest.raises(MachineError):
        cab(ChooseDoor(2))


def test_session_cannot_begin_while_a_stray_door_is_open() -> None:
    cab = Cab()
    cab(DoorOpened(2))
    with pytest.raises(MachineError):
        cab(BeginReturn("r1"))


# ---------------------------------------------------------------- doors nobody unlocked
def test_door_opened_without_session_alarms_and_its_removals_are_alarms() -> None:
    cab = Cab()
    out = cab(DoorOpened(2))
    assert out == [AlarmRaised("door_opened_without_session", 2)]
    out = cab(DoorClosed(2))
    assert of(out, Inventory) == [Inventory(2, 0)]
    nb = c("N", NET)
    out = cab(InventoryResult(2, tags(B, nb), known(A, B)))
    commit = one_commit(out)
    assert commit.loans == () and commit.returns == ()
    assert commit.alarms == (("A", "removed_without_session"),
                             ("N", "appeared_without_session"))
    assert set(commit.contents) == {B, nb} and commit.session is None
    assert not cab.m.busy and not of(out, Unlock)


def test_stray_door_during_a_session_is_not_the_readers() -> None:
    cab = Cab()
    cab.login(R1)
    cab(DoorOpened(3))
    cab(DoorClosed(3))
    commit = one_commit(cab(InventoryResult(3, (), known(A))))
    assert commit.loans == () and commit.alarms == (("A", "removed_without_session"),)
    # a forced door is nobody's: its alarms are not filed under the reader's session
    assert (commit.session, commit.reader_id, commit.grant_id) == (None, None, None)


def test_items_moved_between_two_open_doors_are_not_loans() -> None:
    """A reader with two doors open moves a book from door 1 to door 2: whichever door is
    counted first, the book that is in a door at the commit is never lent."""
    cab = Cab()
    cab.login(R1)
    cab(ChooseDoor(1))
    cab(ChooseDoor(2))
    for d in (1, 2):
        cab(UnlockDone(d, True))
        cab(DoorOpened(d))
    cab(DoorClosed(2))
    cab(DoorClosed(1))
    out = cab(InventoryResult(2, tags(A, C), known(C), {"A": ItemView(item_id="A")}))
    assert set(one_commit(out).contents) == {A, C}
    out = cab(InventoryResult(1, tags(B), known(A, B), {"A": ItemView(item_id="A")}))
    commit = one_commit(out)
    assert "A" not in commit.loans
    assert commit.contents == (B,)


def test_unidentified_tag_taken_is_not_a_loan() -> None:
    """A tag the ledger holds without an item id (left after being asked out, or one whose
    data never read) is not a book that can be lent."""
    cab = Cab()
    cab.login(R1)
    junk = Content("u-junk", None)
    out = cab.borrow(1, [A, junk], [])
    commit = one_commit(out)
    assert commit.loans == ("A",)
    assert commit.alarms == ((None, "removed_unidentified:u-junk"),)
    assert commit.contents == ()



# ---------------------------------------------------------------- the simulated cabinet
@dataclass(frozen=True)
class PTag:
    """A physical RFID tag: a book (item id, maybe an owner library), a tag with no library
    data (``item_id`` None), or one the antenna never reads (``readable`` False)."""

    uid: str
    item_id: str | None
    owner: str | None = None
    readable: bool = True


def _book(item: str, owner: str | None = None) -> PTag:
    return PTag("u-" + item, item, owner)


OWN_BOOKS = [_book("B0"), _book("B1", OWN), _book("B2"), _book("B3", OWN), _book("B4"),
             _book("B5"), _book("B6", OWN), _book("B7"), _book("B8"), _book("B9", OWN)]
OTHER_TAGS = [_book("N0", NET), _book("N1", NET), _book("F0", FAR), PTag("u-J0", None),
              PTag("u-X0", None, readable=False)]
ALL_TAGS = {t.uid: t for t in OWN_BOOKS + OTHER_TAGS}
UID_OF = {t.item_id: t.uid for t in ALL_TAGS.values() if t.item_id}
OWN_ITEMS = {t.item_id for t in OWN_BOOKS}
REFERENCE = {"B8"}
HOLDS = {"B6": "R1", "B7": "R2", "B2": "R3"}
PLACEMENT = {1: ["B0", "B1", "B2", "B3"], 2: ["B4", "B5", "B6"], 3: ["B7", "B8", "B9"]}


@dataclass(frozen=True)
class ReaderCfg:
    max_loans: int
    offline: bool = False
    allowance: int = 0


READERS = {"R1": ReaderCfg(3), "R2": ReaderCfg(4, True, 2), "R3": ReaderCfg(2, True, 1)}
EXPOSURE_CAP = 2
SIM_DOORS = {1: DoorInfo(number=1, capacity=6), 2: DoorInfo(number=2, capacity=5, accessible=True),
             3: DoorInfo(number=3, capacity=5)}
SIM_POLICY = MachinePolicy(door_prompt_s=(30.0, 60.0), door_alarm_s=120.0, session_idle_s=60.0,
                           credential_ttl_s=300.0, inventory_retries=1, max_reopens=1,
                           unlock_wait_s=15.0, own_library=OWN,
                           network_libraries=frozenset({OWN, NET}))
COVERED = {"loan", "alarm", "removed", "world"}
TRACE = bool(os.environ.get("KIOSK_SIM_TRACE"))  # print every event and command


@dataclass
class DoorCtx:
    """What the shell wrote with a door's intent: the session it belongs to, its kind, the
    patron as resolved (``granted``: loans committed under this patron snapshot since)."""

    kind: str  # borrow | return | restock | stray
    session: str | None
    patron: Patron | None
    unlock: Unlock | None
    granted: list[int] = field(default_factory=lambda: [0])


class CabinetSim(RuleBasedStateMachine):
    """The machine, the shell's duties (as kiosk.runtime must do them) and the physical
    cabinet (doors holding real tags, people taking and putting them).

    Checked at every Commit: a loan is a book that left this door and is in no door (or in
    another door still open or uncounted, whose count takes it back), never a book a reader
    was told to put back, a held book only for its reader, within max_loans − loans, the
    grant's offline allowance and the cabinet's exposure cap; the contents committed are
    the door's tags, plus refused books expected back, minus tags the reader is asked to
    take out; a book leaving the ledger has a loan, an alarm or a manifest line; a Commit
    only for a door with an Unlock (or a stray open), under the session that opened it.
    After every step: nothing physically gone is unrecorded, and with every door closed and
    counted each door's ledger contents are exactly its tags, none of them on loan.

    Run with KIOSK_SIM_TRACE=1 to print every event and the commands it gave.
    """

    policy = SIM_POLICY

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.loc: dict[str, int | None] = {uid: None for uid in ALL_TAGS}
        self.ledger: dict[int, dict[str, Content]] = {d: {} for d in SIM_DOORS}
        self.status: dict[str, str] = {t.item_id: "world" for t in ALL_TAGS.values() if t.item_id}
        for d, items in PLACEMENT.items():
            for item in items:
                t = ALL_TAGS[UID_OF[item]]
                self.loc[t.uid] = d
                self.ledger[d][t.uid] = Content(t.uid, t.item_id, t.owner)
                self.status[item] = "in"
        self.m = Machine(SIM_DOORS, self.policy, {d: len(c) for d, c in self.ledger.items()})
        self.opened: set[int] = set()  # physically open
        self.unlatched: set[int] = set()  # lock pulsed, door not opened yet
        self.pending_unlock: set[int] = set()
        self.pending_inv: dict[int, int] = {}
        self.live: dict[int, DoorCtx] = {}  # doors with an intent (or a stray open) not yet committed
        self.recovery: dict[int, DoorCtx] = {}  # doors whose count failed: ledger stale
        self.session: str | None = None
        self.kind: str | None = None
        self.at_screen: str | None = None
        self.pending_resolve: str | None = None
        self.patron: Patron | None = None
        self.session_ctx: DoorCtx | None = None  # shared by the session's doors
        self.loans: dict[str, str] = {}  # item → reader
        self.holds = dict(HOLDS)
        self.grants = {r: f"g-{r}-0" for r in READERS}
        self.allowance = {g: READERS[r].allowance for r, g in self.grants.items()}
        self.offline_by_grant: dict[str, int] = {}
        self.unsynced = 0
        self.seq = 0

    # ------------------------------------------------------------ the shell
    def _handle(self, ev: Event, *, user: bool = False) -> list[Command]:
        before = _state(self.m)
        try:
            cmds = self.m.handle(ev, self.now)
        except MachineError:
            assert user, f"a device event was refused: {ev}"
            assert _state(self.m) == before, f"MachineError changed the state: {ev}"
            return []
        self._execute(ev, cmds)
        return cmds

    def _execute(self, ev: object, cmds: list[Command]) -> None:
        if TRACE:
            print(f"@{self.now:.1f} {ev}\n        -> " + "\n        -> ".join(
                repr(c) for c in cmds if not isinstance(c, Notify) or c.key.startswith(
                    ("borrow.put", "return.", "refused"))))
        for cmd in cmds:
            self._run(cmd, cmds)

    def _run(self, cmd: Command, batch: list[Command]) -> None:
        if isinstance(cmd, Resolve):
            self.pending_resolve = cmd.session
        elif isinstance(cmd, Unlock):
            d = cmd.door
            assert d in SIM_DOORS
            assert d not in self.opened, f"Unlock of door {d} which is open"
            assert d not in self.live, f"a second intent for door {d}: {self.live[d]}"
            assert d not in self.recovery, f"Unlock of door {d} whose count failed"
            assert cmd.session == self.session
            assert cmd.reader_id == (self.patron.reader_id if self.patron else None)
            assert self.session_ctx is not None and self.kind is not None
            self.live[d] = replace(self.session_ctx, unlock=cmd)
            self.pending_unlock.add(d)
        elif isinstance(cmd, Inventory):
            d = cmd.door
            assert d not in self.opened, f"Inventory of door {d} while it is open"
            assert d in self.live
            self.pending_inv[d] = cmd.attempt
            self.unlatched.discard(d)  # nobody opened it: the lock latched again
            self.pending_unlock.discard(d)
        elif isinstance(cmd, Commit):
            self._commit(cmd, batch)
        elif isinstance(cmd, AlarmRaised):
            d = cmd.door
            if d is not None and cmd.reason.startswith("unlock_failed"):
                # the intent stays open (recovery counts the door at the next start); the
                # door did not open, so the ledger still knows what is inside, unless it was
                # a re-open (refused items still recorded, foreign tags not yet)
                ctx = self.live.pop(d)
                assert ctx.kind != "stray" and ctx.unlock is not None
                if ctx.unlock.purpose == "reopen":
                    self.recovery[d] = ctx
            elif d is not None and cmd.reason.startswith("inventory_failed"):
                self.recovery[d] = self.live.pop(d)  # the ledger no longer knows this door
            elif cmd.reason == "door_opened_without_session":
                assert d is not None and d in self.opened and d not in self.live
                self.live[d] = DoorCtx("stray", None, None, None)
        elif isinstance(cmd, EndSession):
            assert cmd.session == self.session
            left = {d: c for d, c in self.live.items() if c.session == cmd.session}
            assert not left, f"session ended with doors still to count: {left}"
            self.session = self.kind = self.at_screen = self.pending_resolve = None
            self.patron = self.session_ctx = None

    def _acceptable(self, uid: str) -> bool:
        t = ALL_TAGS[uid]
        return bool(t.readable and t.item_id and (t.owner in (None, OWN, NET)
                                                  or t.item_id in OWN_ITEMS))

    def _commit(self, cm: Commit, batch: list[Command]) -> None:
        d = cm.door
        assert d in self.live, f"Commit of door {d} with no Unlock"
        ctx = self.live.pop(d)
        intent = ctx.unlock
        was_stray = ctx.kind == "stray"
        reopen = next((u for u in batch if isinstance(u, Unlock) and u.door == d
                       and u.purpose == "reopen"), None)
        phys = {uid for uid, where in self.loc.items() if where == d}
        new = {x.uid: x for x in cm.contents}
        assert len(new) == len(cm.contents)
        old = self.ledger[d]
        alarm_items = {a for a, _ in cm.alarms if a}
        # loans: books that left this door, in nobody's door now, within every limit
        assert len(set(cm.loans)) == len(cm.loans)
        for item in cm.loans:
            assert item in UID_OF, f"a loan of something that is not a book: {item}"
            uid = UID_OF[item]
            where = self.loc[uid]
            # in no door; or put into another open door yet to be counted (whose count
            # takes it back, or flags it if the door was forced: see ``at_rest``), or into
            # a door whose count failed (the ledger cannot know: recovery's business)
            assert where is None or where in self.recovery or (
                where != d and where in self.m.runs and self.m.runs[where].phase != "done"), \
                f"loan of {item}, which is in door {where}"
            assert uid in old, f"loan of {item}, which was not in door {d}"
            assert self.holds.get(item) in (None, cm.reader_id), f"held {item} lent to another"
            if intent is not None and intent.purpose == "reopen":
                assert item not in intent.expect_back, f"{item} was to be put back, now lent"
        assert not alarm_items & set(cm.loans)
        if cm.loans:
            p = ctx.patron
            assert p is not None and ctx.kind == "borrow"
            assert (cm.reader_id, cm.offline, cm.grant_id) == (p.reader_id, p.offline, p.grant_id)
            ctx.granted[0] += len(cm.loans)
            assert ctx.granted[0] <= max(0, p.max_loans - p.loans)
            if cm.offline:
                g = p.grant_id
                assert g is not None
                self.offline_by_grant[g] = self.offline_by_grant.get(g, 0) + len(cm.loans)
                assert self.offline_by_grant[g] <= self.allowance[g]
                self.unsynced += len(cm.loans)
                assert self.unsynced <= EXPOSURE_CAP
        assert cm.session == ctx.session
        assert (cm.manifest is not None) == (ctx.kind == "restock")
        # the contents committed: what is physically there, plus refused items expected
        # back, minus tags the reader was just asked to take out
        extra, missing = set(new) - phys, phys - set(new)
        assert extra <= set(old), f"contents invented: {extra}"
        if extra:
            assert reopen is not None, f"items not in door {d} committed as contents: {extra}"
            assert {new[u].item_id for u in extra} <= set(reopen.expect_back)
        if missing:
            assert reopen is not None, f"tags in door {d} not committed: {missing}"
            assert not any(self._acceptable(u) for u in missing), missing
        for uid in set(new) & phys:
            t = ALL_TAGS[uid]
            if t.readable:
                assert (new[uid].uid, new[uid].item_id) == (t.uid, t.item_id)
        # nothing that left the door is silently gone
        removed = set((cm.manifest or {}).get("removed", ()))  # type: ignore[call-overload]
        for uid in set(old) - set(new):
            item = ALL_TAGS[uid].item_id
            if item is None:
                continue
            if item in cm.loans:
                self.status[item] = "loan"
            elif item in alarm_items:
                self.status[item] = "alarm"
            elif item in removed:
                self.status[item] = "removed"
            else:  # moved to another door: that door's count took it in (and maybe out)
                assert any(uid in self.ledger[o] for o in SIM_DOORS if o != d) or (
                    self.status[item] in COVERED - {"world"}), \
                    f"{item} left door {d} with no loan, alarm or manifest"
        for r in cm.returns:
            assert r.uid in new and r.uid not in old and self._acceptable(r.uid)
            assert not was_stray
        for tag in ["loans"] * bool(cm.loans) + ["alarms"] * bool(cm.alarms) + [
                "returns"] * bool(cm.returns) + ["reopen"] * bool(reopen) + [
                f"commit-{ctx.kind}"] + ["recovered"] * (intent is not None
                                                        and intent.purpose == "recovery"):
            hyp_event(tag)
        # apply, as the ledger's one transaction
        self.ledger[d] = new
        self.recovery.pop(d, None)  # a stray count of a door whose count failed
        for uid, x in new.items():
            if x.item_id and ALL_TAGS[uid].item_id:
                self.status[x.item_id] = "in"
                self.loans.pop(x.item_id, None)
        for item, why in cm.alarms:
            if why == "appeared_without_session" and item:
                self.loans.pop(item, None)  # flagged for the staff: the ledger's to settle
        for item in cm.loans:
            self.loans[item] = cm.reader_id or "?"
            if self.holds.get(item) == cm.reader_id:
                del self.holds[item]

    def _patron(self, reader: str) -> Patron:
        if reader == "S1":
            return Patron(reader_id="S1", role="staff")
        cfg = READERS[reader]
        g = self.grants[reader]
        return Patron(reader_id=reader, loans=sum(r == reader for r in self.loans.values()),
                      max_loans=cfg.max_loans, offline=cfg.offline, grant_id=g,
                      offline_allowance=self.allowance[g] if cfg.offline else 0,
                      offline_used=self.offline_by_grant.get(g, 0),
                      holds=frozenset(i for i, r in self.holds.items() if r == reader))

    def _inventory_event(self, d: int) -> InventoryResult:
        reads = []
        for uid in sorted(u for u, where in self.loc.items() if where == d):
            t = ALL_TAGS[uid]
            reads.append(TagRead(uid, t.item_id, t.owner) if t.readable
                         else TagRead(uid, None, None, readable=False))
        known_ = dict(self.ledger[d])
        involved = {x.item_id for x in known_.values()} | {r.item_id for r in reads}
        views = {i: ItemView(item_id=i, reference_only=i in REFERENCE, hold_for=self.holds.get(i))
                 for i in involved if i in OWN_ITEMS}
        return InventoryResult(d, tuple(reads), known_, views, EXPOSURE_CAP - self.unsynced)

    # ------------------------------------------------------------ people and devices
    def _begin(self, ev: BeginSession | BeginReturn, kind: str, reader: str | None
               ) -> list[Command]:
        saved = (self.session, self.kind, self.at_screen, self.patron, self.session_ctx)
        self.session, self.kind, self.at_screen, self.patron = ev.session, kind, reader, None
        self.session_ctx = DoorCtx(kind, ev.session, None, None)
        cmds = self._handle(ev, user=True)
        if not cmds:  # refused: another session or an open door
            assert saved[0] is not None or self.m.open_doors()
            self.session, self.kind, self.at_screen, self.patron, self.session_ctx = saved
        return cmds

    # One rule drives everything, with weights that follow the state: hypothesis' swarm
    # testing switches whole rules off per test case, and the flows that matter need six or
    # seven actions in a row. The ``profile`` initializer plays the swarm's part instead
    # (flaky locks or antennas, vandals, slow readers).
    @initialize(data=st.data())
    def profile(self, data: st.DataObject) -> None:
        self.p_unlock_fail = data.draw(st.sampled_from([0, 0, 10, 30]), label="% unlock fails")
        self.p_inv_fail = data.draw(st.sampled_from([0, 0, 10, 30]), label="% inventory fails")
        self.w_force = data.draw(st.sampled_from([0, 0, 1, 4]), label="forcing weight")
        self.w_finish = data.draw(st.sampled_from([2, 6]), label="finish weight")
        self.slow = data.draw(st.booleans(), label="slow reader")

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        w: dict[str, int] = {}
        active = self.session is not None and self.pending_resolve is None
        w["begin_session"] = 30 if self.session is None else 2
        w["begin_return"] = 15 if self.session is None else 2
        if self.pending_resolve is not None:
            w["resolve"] = 40
        w["choose_door"] = 30 if active and self.kind != "return" else 2
        if self.pending_unlock:
            w["unlock_done"] = 30
        if self.unlatched - self.opened:
            w["visit"] = 30
            w["open_door"] = 10
        if self.opened:
            w["take"] = w["put"] = 15
            w["close"] = 20
        if self.pending_inv:
            w["inventory"] = 30
        if self._forcible() and self.w_force:
            w["force_door"] = self.w_force
        w["finish"] = self.w_finish if self.session is not None else 1
        if self._recoverable():
            w["recover"] = 4
        w["tick"] = 10
        w["sync"] = 3
        moves = [m for m, n in w.items() for _ in range(n)]
        move = data.draw(st.sampled_from(moves), label="move")
        getattr(self, "_" + move)(data)

    def _begin_session(self, data: st.DataObject) -> None:
        reader = data.draw(st.sampled_from(["R1", "R2", "R3", "S1"]), label="reader")
        self.seq += 1
        cmds = self._begin(BeginSession(f"s{self.seq}", "card"), "borrow", reader)
        if cmds:
            assert self.pending_resolve == f"s{self.seq}"

    def _resolve(self, data: st.DataObject) -> None:
        ok = data.draw(st.sampled_from([True, True, True, True, False]), label="resolved")
        assert self.at_screen is not None
        self.pending_resolve = None
        if not ok:
            assert of(self._handle(ResolveRefused("blocked")), EndSession)
            return
        patron = self._patron(self.at_screen)
        # one entry per hold, as a shell listing the holds' doors would give them
        hold_doors = tuple(d for d, cs in self.ledger.items() for x in cs.values()
                           if x.item_id and self.holds.get(x.item_id) == patron.reader_id)
        self.patron = patron
        if patron.role == "staff":
            self.kind = "restock"
        assert self.kind is not None and self.session is not None
        self.session_ctx = DoorCtx(self.kind, self.session, patron, None)
        busy = set(self.live) | set(self.recovery)
        cmds = self._handle(Resolved(patron, hold_doors))
        unlocked = [u.door for u in of(cmds, Unlock)]
        assert all(u.purpose == "hold" for u in of(cmds, Unlock))
        assert len(set(unlocked)) == len(unlocked) and set(unlocked) <= set(hold_doors)
        if patron.role == "staff":
            assert not unlocked
        else:  # exactly the hold doors the machine is free to open
            assert set(unlocked) == {d for d in hold_doors if d not in busy}

    def _begin_return(self, data: st.DataObject) -> None:
        accessible = data.draw(st.booleans(), label="accessible")
        self.seq += 1
        free = [d for d, i in SIM_DOORS.items() if len(self.ledger[d]) < i.capacity
                and d not in self.recovery
                and (d not in self.m.runs or self.m.runs[d].phase == "done")]
        cmds = self._begin(BeginReturn(f"s{self.seq}", accessible), "return", None)
        if not cmds:
            return
        if of(cmds, EndSession):  # full: refused at once
            assert notes(cmds)[0] == "return.full"
            assert not free
            return
        (u,) = of(cmds, Unlock)
        assert u.purpose == "return" and u.door in free
        if accessible and any(SIM_DOORS[d].accessible for d in free):
            assert SIM_DOORS[u.door].accessible

    def _choose_door(self, data: st.DataObject) -> None:
        door = data.draw(st.sampled_from([1, 2, 3, 1, 2, 3, 4]), label="door")
        self._handle(ChooseDoor(door), user=True)

    def _unlock_done(self, data: st.DataObject) -> None:
        d = data.draw(st.sampled_from(sorted(self.pending_unlock)), label="door")
        ok = data.draw(st.integers(0, 99), label="lock") >= self.p_unlock_fail
        self.pending_unlock.discard(d)
        if ok:
            self.unlatched.add(d)
        cmds = self._handle(UnlockDone(d, ok, "" if ok else "jammed"))
        assert bool(of(cmds, AlarmRaised)) == (not ok)
        assert not of(cmds, Commit)

    def _open_door(self, data: st.DataObject) -> None:
        d = data.draw(st.sampled_from(sorted(self.unlatched - self.opened)), label="door")
        self.unlatched.discard(d)
        self.opened.add(d)
        assert not of(self._handle(DoorOpened(d)), AlarmRaised)

    def _forcible(self) -> list[int]:
        return [d for d in SIM_DOORS if d not in self.opened and d not in self.unlatched
                and d not in self.pending_unlock
                and (d not in self.m.runs or self.m.runs[d].phase == "done")]

    def _force_door(self, data: st.DataObject) -> None:
        """A door opened with no pulse of ours (forced, a broken latch)."""
        d = data.draw(st.sampled_from(self._forcible()), label="door")
        self.opened.add(d)
        cmds = self._handle(DoorOpened(d))
        assert of(cmds, AlarmRaised) == [AlarmRaised("door_opened_without_session", d)]

    def _take(self, data: st.DataObject, d: int | None = None) -> None:
        if d is None:
            d = data.draw(st.sampled_from(sorted(self.opened)), label="door")
        inside = sorted(u for u, where in self.loc.items() if where == d)
        if inside:
            for uid in data.draw(st.lists(st.sampled_from(inside), unique=True, max_size=3),
                                 label=f"takes from {d}"):
                self.loc[uid] = None

    def _put(self, data: st.DataObject, d: int | None = None) -> None:
        """Put things in: books taken before (from any door), returns, foreign tags."""
        if d is None:
            d = data.draw(st.sampled_from(sorted(self.opened)), label="door")
        outside = sorted(u for u, where in self.loc.items() if where is None)
        if outside:
            for uid in data.draw(st.lists(st.sampled_from(outside), unique=True, max_size=3),
                                 label=f"puts into {d}"):
                self.loc[uid] = d

    def _visit(self, data: st.DataObject) -> None:
        """Open an unlocked door, take and put a few things, close it (or not yet)."""
        d = data.draw(st.sampled_from(sorted(self.unlatched - self.opened)), label="door")
        self.unlatched.discard(d)
        self.opened.add(d)
        assert not of(self._handle(DoorOpened(d)), AlarmRaised)
        self._take(data, d)
        if data.draw(st.booleans(), label="puts too"):
            self._put(data, d)
        if data.draw(st.sampled_from([True, True, True, False]), label="closes"):
            self._close(data, d)

    def _close(self, data: st.DataObject, d: int | None = None) -> None:
        if d is None:
            d = data.draw(st.sampled_from(sorted(self.opened)), label="door")
        self.opened.discard(d)
        cmds = self._handle(DoorClosed(d))
        assert of(cmds, Inventory) == [Inventory(d, 0)]

    def _inventory(self, data: st.DataObject) -> None:
        d = data.draw(st.sampled_from(sorted(self.pending_inv)), label="door")
        fail = data.draw(st.integers(0, 99), label="antenna") < self.p_inv_fail
        attempt = self.pending_inv.pop(d)
        assert 0 <= attempt <= self.policy.inventory_retries
        if fail:
            self._handle(InventoryFailed(d, "antenna"))
        else:
            self._handle(self._inventory_event(d))

    def _recoverable(self) -> list[int]:
        if self.m.session is not None:  # the shell recovers while the cabinet is idle
            return []
        return [d for d in sorted(self.recovery) if d not in self.opened
                and (d not in self.m.runs or self.m.runs[d].phase == "done")]

    def _recover(self, data: st.DataObject) -> None:
        """The shell finishes a door whose count failed, as its start-up recovery does
        (kiosk.runtime): the intent's kind and reader, with a patron resolved afresh."""
        d = data.draw(st.sampled_from(self._recoverable()), label="door")
        ctx = self.recovery.pop(d)
        patron = self._patron(ctx.patron.reader_id) if ctx.patron is not None else None
        expect = ctx.unlock.expect_back if ctx.unlock is not None else ()
        unlock = Unlock(d, "recovery", ctx.session, patron.reader_id if patron else None, expect)
        self.live[d] = DoorCtx(ctx.kind, ctx.session, patron, unlock)
        cmds = self.m.recover(d, kind=ctx.kind, session=ctx.session, patron=patron,
                              expect_back=expect, door_open=False, now=self.now)
        self._execute(f"recover({d})", cmds)

    def _finish(self, data: st.DataObject) -> None:
        self._handle(Finish(), user=True)

    def _tick(self, data: st.DataObject) -> None:
        steps = [0.5, 2.0, 5.0, 16.0, 31.0, 61.0, 130.0, 301.0] if self.slow else [0.5, 2.0, 5.0]
        self.now += data.draw(st.sampled_from(steps), label="seconds")
        cmds = self._handle(Tick())
        for a in of(cmds, AlarmRaised):
            assert a.reason == "door_left_open" and a.door in self.opened

    def _sync(self, data: st.DataObject) -> None:
        """The server saw every offline loan: the exposure is free again, and offline
        readers get a new grant (a new offline count) at their next resolution."""
        self.unsynced = 0
        for r, cfg in READERS.items():
            if cfg.offline:
                g = self.grants[r]
                n = int(g.rsplit("-", 1)[1]) + 1
                self.grants[r] = f"g-{r}-{n}"
                self.allowance[self.grants[r]] = cfg.allowance

    # ------------------------------------------------------------ invariants
    @invariant()
    def nothing_silently_gone(self) -> None:
        in_ledger = {uid for cs in self.ledger.values() for uid in cs}
        for uid, where in self.loc.items():
            item = ALL_TAGS[uid].item_id
            if where is None and item is not None and uid not in in_ledger:
                assert self.status[item] in COVERED, f"{item} is gone with no record"

    @invariant()
    def at_rest(self) -> None:
        """With every door closed and counted, the ledger is the cabinet: each door's known
        contents are its tags, and nothing in a door is on loan."""
        if self.m.busy or self.opened or self.unlatched or self.pending_inv:
            return
        for d in SIM_DOORS:
            if d in self.recovery:
                continue
            phys = {u for u, where in self.loc.items() if where == d}
            assert set(self.ledger[d]) == phys, (d, set(self.ledger[d]) ^ phys)
            for uid in phys:
                item = ALL_TAGS[uid].item_id
                assert item not in self.loans, f"{item} is in door {d} and on loan"

    @invariant()
    def fill_follows_the_ledger(self) -> None:
        assert self.m.fill == {d: len(cs) for d, cs in self.ledger.items()}

    @invariant()
    def one_session(self) -> None:
        s = self.m.session
        assert (s.id if s else None) == self.session


CabinetSim.TestCase.settings = settings(max_examples=400, stateful_step_count=80, deadline=None)
test_cabinet_simulation = CabinetSim.TestCase


class CabinetSimTwoReopens(CabinetSim):
    policy = replace(SIM_POLICY, max_reopens=2, inventory_retries=0)


CabinetSimTwoReopens.TestCase.settings = settings(max_examples=150, stateful_step_count=60,
                                                  deadline=None)
test_cabinet_simulation_two_reopens = CabinetSimTwoReopens.TestCase
