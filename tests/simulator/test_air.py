"""The ISO 15693 air-time model against hardware-limits.md §1.3."""

from __future__ import annotations

import random

import pytest

from simulator import air


def _mean_inventory_s(n: int, runs: int = 200) -> float:
    total = 0.0
    for seed in range(runs):
        rng = random.Random(seed)
        uids = [bytes([0xE0, 0x04, 0x01]) + rng.randbytes(5) for _ in range(n)]
        result = air.inventory(uids)
        assert sorted(result.order) == sorted(uids)  # every tag singulated exactly once
        total += result.air_s
    return total / runs


def test_fixed_points() -> None:
    assert air.inventory([]).air_s == pytest.approx(0.0098, abs=0.0002)
    assert air.inventory([b"\xe0" + bytes(7)]).air_s == pytest.approx(0.0139, abs=0.0002)
    assert air.read_blocks_s(8) == pytest.approx(0.0159, abs=0.0002)
    assert air.read_blocks_s(9) == pytest.approx(0.0171, abs=0.0002)


def test_inventory_scales_with_tag_count() -> None:
    means = {n: _mean_inventory_s(n) for n in (10, 20, 30, 50)}
    assert means[10] == pytest.approx(0.082, rel=0.05)
    assert means[30] == pytest.approx(0.285, rel=0.05)
    assert means[50] == pytest.approx(0.467, rel=0.05)
    assert means[10] < means[20] < means[30] < means[50]


def test_same_tags_same_time() -> None:
    uids = [bytes([0xE0, 4, 1, i, 2 * i, 3, 4, 5]) for i in range(30)]
    assert air.inventory(uids) == air.inventory(list(reversed(uids)))
