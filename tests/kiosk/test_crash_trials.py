"""Crash trials in the suite: the kiosk process is killed with SIGKILL at random instants of
random sessions (a quarter of them with a lock-board power cut), restarted, and its ledger is
compared with the simulator's ground truth (lendbox/crashtrial.py). 2 × 10 trials here;
``python -m bench.crash_trials`` runs 500+.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lendbox.crashtrial import CrashTrials


@pytest.mark.parametrize("seed", [101, 202])
def test_no_lost_or_phantom_loan_after_random_crashes(tmp_path: Path, seed: int) -> None:
    with CrashTrials(tmp_path, seed=seed) as trials:
        outcomes = trials.run(10)
    bad = [(o.trial, o.kind, o.crash, o.lost, o.phantom, o.problems) for o in outcomes
           if not o.ok]
    assert bad == []
    assert len(outcomes) == 10
    # the trials did exercise recovery: some crashes left an intent open
    assert sum(o.recovered for o in outcomes) >= 1


def test_the_check_catches_a_ledger_that_lies(tmp_path: Path) -> None:
    """The ground-truth check is not vacuous: a loan recorded for a book still in its door,
    and a book taken with no record, are both reported."""
    from kiosk.ledger import Ledger, NewEvent
    from lendbox.crashtrial import ground_truth_problems

    with CrashTrials(tmp_path, seed=1) as trials:
        trials.run(1)
        sim = trials.sim
        led = Ledger(tmp_path / "data" / "ledger.db", sim.config.id)
        try:
            in_door = sim.door_items(2)[0].item_id
            led.append([NewEvent("loan", {"item_id": in_door, "reader_id": "R"})])
            sim.force_door(2)  # a door pried open: the ledger is not told
            gone = sim.door_items(2)[1].item_id
            sim.take_item(gone)
            sim.close_door(2)
            lost, phantom, problems = ground_truth_problems(sim, led)
        finally:
            led.close()
    assert in_door in phantom
    assert gone in lost
    assert any(p.startswith("door 2:") for p in problems)
