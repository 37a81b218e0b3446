""""Need more time?" (WCAG 2.2.1): the session machine's idle warning and ``MoreTime``.

Properties, over any pattern of clock ticks (at most the runtime's 0.5 s apart) and answers:
a session never times out without its warning at least 20 s before, and never sooner than
``session_idle_s`` after the reader asked for more time.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.machine import (
    WARN_BEFORE_S,
    BeginSession,
    DoorInfo,
    EndSession,
    Machine,
    MachineError,
    MachinePolicy,
    MoreTime,
    Resolved,
    Tick,
)
from kiosk.rules import Patron

DOORS = {1: DoorInfo(number=1, capacity=4)}


def _session(idle_s: float) -> Machine:
    m = Machine(DOORS, MachinePolicy(session_idle_s=idle_s))
    m.handle(BeginSession("s1", "qr"), 0.0)
    m.handle(Resolved(Patron(reader_id="r1", max_loans=5)), 0.0)
    return m


steps = st.lists(st.one_of(st.floats(min_value=0.01, max_value=0.5), st.just("more")),
                 min_size=1, max_size=400)


@settings(max_examples=150, deadline=None)
@given(idle=st.floats(min_value=30.0, max_value=120.0), plan=steps)
def test_no_timeout_without_a_warning_20_s_before(idle: float, plan: list[object]) -> None:
    m = _session(idle)
    now, active_since, warned_at = 0.0, 0.0, None
    for step in plan:
        if step == "more":
            m.handle(MoreTime(), now)
            active_since, warned_at = now, None
            continue
        assert isinstance(step, float)
        now += step
        out = m.handle(Tick(), now)
        if any(isinstance(c, EndSession) for c in out):
            assert warned_at is not None, "timed out without asking"
            assert now - warned_at >= 20.0
            assert now - active_since >= idle
            return
        left = m.idle_warning_due(now)
        if left is not None:
            assert warned_at is None, "asked twice for one stretch of inactivity"
            assert left >= 20.0
            warned_at = now
    assert m.session is not None
    assert now - active_since < idle + 0.5


def test_the_warning_is_in_the_snapshot_and_more_time_clears_it() -> None:
    m = _session(60.0)
    m.handle(Tick(), 60.0 - WARN_BEFORE_S + 1)
    assert m.idle_warning_due(60.0 - WARN_BEFORE_S + 1) is not None
    snap = m.snapshot()["session"]
    assert isinstance(snap, dict) and snap["warned"] and snap["idle_left_s"] <= WARN_BEFORE_S
    m.handle(MoreTime(), 40.0)
    snap = m.snapshot()["session"]
    assert isinstance(snap, dict) and not snap["warned"] and snap["idle_left_s"] == 60.0
    assert m.idle_warning_due(41.0) is None


def test_more_time_without_a_session_is_refused() -> None:
    m = Machine(DOORS, MachinePolicy())
    with pytest.raises(MachineError):
        m.handle(MoreTime(), 1.0)
