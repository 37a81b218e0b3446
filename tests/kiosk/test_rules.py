"""Properties of the pure lending rules (kiosk/rules.py)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.rules import REFUSAL_REASONS, ItemView, Patron, judge_removals, return_verdict

READER = "R1"

item_ids = st.text(alphabet="abcdefgh0123456789", min_size=1, max_size=4)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Patron, list[ItemView], int, int]:
    ids = draw(st.lists(item_ids, unique=True, max_size=10))
    items = [ItemView(item_id=i,
                      reference_only=draw(st.booleans()) and draw(st.booleans()),
                      hold_for=draw(st.sampled_from([None, None, READER, "R2"])))
             for i in ids]
    offline = draw(st.booleans())
    patron = Patron(
        reader_id=READER,
        loans=draw(st.integers(0, 12)),
        max_loans=draw(st.integers(0, 12)),
        offline=offline,
        grant_id="g1" if offline else None,
        offline_allowance=draw(st.integers(0, 5)),
        offline_used=draw(st.integers(0, 5)),
        # the shell fills both from the same holds table: consistent
        holds=frozenset(i.item_id for i in items if i.hold_for == READER),
    )
    session_loans = draw(st.integers(0, 6))
    exposure_left = draw(st.integers(-1, 6))
    return patron, items, session_loans, exposure_left


def _eligible(patron: Patron, it: ItemView) -> bool:
    return not it.reference_only and it.hold_for in (None, patron.reader_id)


@settings(max_examples=400)
@given(cases())
def test_judge_removals_budgets(case: tuple[Patron, list[ItemView], int, int]) -> None:
    patron, items, session_loans, exposure_left = case
    verdicts = judge_removals(patron, items, session_loans=session_loans,
                              exposure_left=exposure_left)
    # one verdict per item, nothing invented
    assert sorted(v.item_id for v in verdicts) == sorted(i.item_id for i in items)
    by_id = {i.item_id: i for i in items}
    ok = [v for v in verdicts if v.ok]
    budget = max(0, patron.max_loans - patron.loans - session_loans)
    limits = [budget]
    if patron.offline:
        limits.append(max(0, patron.offline_allowance - patron.offline_used - session_loans))
        limits.append(max(0, exposure_left))
    assert len(ok) <= min(limits)
    for v in verdicts:
        it = by_id[v.item_id]
        if v.ok:
            assert v.reason == ""
            assert _eligible(patron, it)
        else:
            assert v.reason in REFUSAL_REASONS
        if it.hold_for is not None and it.hold_for != patron.reader_id:
            assert not v.ok and v.reason == "hold_for_other"
        elif it.reference_only:
            assert not v.ok and v.reason == "reference_only"
    # no item refused for a budget while the budgets had room: as many loans as allowed
    eligible = [i for i in items if _eligible(patron, i)]
    assert len(ok) == min([len(eligible), *limits])
    # the online rules ignore the cabinet's offline exposure entirely
    if not patron.offline:
        again = judge_removals(patron, items, session_loans=session_loans, exposure_left=-5)
        assert again == verdicts


@settings(max_examples=400)
@given(cases())
def test_judge_removals_holds_first(case: tuple[Patron, list[ItemView], int, int]) -> None:
    patron, items, session_loans, exposure_left = case
    verdicts = judge_removals(patron, items, session_loans=session_loans,
                              exposure_left=exposure_left)
    by_id = {i.item_id: i for i in items}
    ok = {v.item_id for v in verdicts if v.ok}
    held_refused = [v for v in verdicts if not v.ok and v.item_id in patron.holds
                    and _eligible(patron, by_id[v.item_id])]
    if held_refused:  # a limit cost them a hold: then no other item got the budget
        assert ok <= patron.holds
    # holds first in the verdicts, then the rest in item-id order
    ids = [v.item_id for v in verdicts]
    held = [i for i in ids if i in patron.holds]
    rest = [i for i in ids if i not in patron.holds]
    assert ids == held + rest
    assert held == sorted(held) and rest == sorted(rest)


@settings(max_examples=300)
@given(cases(), st.randoms(use_true_random=False))
def test_judge_removals_deterministic(case: tuple[Patron, list[ItemView], int, int],
                                      rnd: random.Random) -> None:
    patron, items, session_loans, exposure_left = case
    first = judge_removals(patron, items, session_loans=session_loans,
                           exposure_left=exposure_left)
    shuffled = list(items)
    rnd.shuffle(shuffled)
    # the same door gives the same verdicts whatever order the antenna saw the tags in
    assert judge_removals(patron, shuffled, session_loans=session_loans,
                          exposure_left=exposure_left) == first
    assert judge_removals(patron, items, session_loans=session_loans,
                          exposure_left=exposure_left) == first


def test_judge_removals_examples() -> None:
    p = Patron(reader_id=READER, loans=9, max_loans=10, holds=frozenset({"z"}))
    v = judge_removals(p, [ItemView(item_id="a"), ItemView(item_id="z", hold_for=READER)],
                       session_loans=0, exposure_left=0)
    assert v[0].item_id == "z" and v[0].ok  # the hold wins the last slot
    assert v[1].item_id == "a" and v[1].reason == "limit_reached"
    off = Patron(reader_id=READER, offline=True, grant_id="g", offline_allowance=2,
                 offline_used=1)
    v = judge_removals(off, [ItemView(item_id="a"), ItemView(item_id="b")], session_loans=0,
                       exposure_left=5)
    assert [x.ok for x in v] == [True, False] and v[1].reason == "offline_allowance"
    v = judge_removals(off, [ItemView(item_id="a")], session_loans=0, exposure_left=0)
    assert v[0].reason == "exposure_cap"
    v = judge_removals(off, [ItemView(item_id="a")], session_loans=1, exposure_left=3)
    assert v[0].reason == "offline_allowance"  # this session's loans count offline too


libs = st.sampled_from([None, "", "OWN", "NET", "FAR"])


@settings(max_examples=300)
@given(st.one_of(st.none(), item_ids), libs, st.booleans(),
       st.sampled_from([frozenset(), frozenset({"NET"}), frozenset({"OWN", "NET"})]))
def test_return_verdict(item_id: str | None, owner: str | None, known: bool,
                        network: frozenset[str]) -> None:
    v = return_verdict(item_id, owner, known_item=known, own_library="OWN", network=network)
    assert v in ("accept", "foreign")
    assert v == return_verdict(item_id, owner, known_item=known, own_library="OWN",
                               network=list(network))  # any iterable, also a one-shot one
    assert v == return_verdict(item_id, owner, known_item=known, own_library="OWN",
                               network=iter(network))
    if item_id is None:
        assert v == "foreign"  # no library data: never taken back
    elif not owner or owner == "OWN" or owner in network or known:
        assert v == "accept"  # no owner = the cabinet's own library (most Chinese tags)
    else:
        assert v == "foreign"


def test_return_verdict_examples() -> None:
    net = frozenset({"CN-440300", "CN-440305"})
    assert return_verdict("b1", "CN-440305", known_item=False, own_library="CN-440300",
                          network=net) == "accept"
    assert return_verdict("b1", "CN-110000", known_item=False, own_library="CN-440300",
                          network=net) == "foreign"
    assert return_verdict("b1", None, known_item=False, own_library="CN-440300",
                          network=net) == "accept"
    assert return_verdict(None, "CN-440300", known_item=True, own_library="CN-440300",
                          network=net) == "foreign"
