"""Cabinet config validation: every mistake is a ConfigError naming the problem."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from simulator import ConfigError, load_config, parse_config

from .conftest import CABINETS

BASE = {
    "cabinet": {"id": "x"},
    "buses": [{"name": "b"}],
    "boards": [{"address": 1, "bus": "b", "locks": 2, "antennas": 2}],
    "doors": [{"number": 1, "board": 1, "lock": 1}],
}


def test_shipped_cabinets_load() -> None:
    demo = load_config(CABINETS / "demo.toml")
    assert len(demo.doors) == 24 and len(demo.boards) == 2 and len(demo.items) == 150
    owners = {i.owner_library for i in demo.items}
    assert "CN-440300" in owners and len(owners) > 1
    assert all(len(i.item_id) == 13 and i.item_id.isdigit() for i in demo.items)
    assert all(i.uid[0] == 0xE0 for i in demo.items)
    assert load_config(CABINETS / "demo.toml").items == demo.items  # deterministic
    small = load_config(CABINETS / "small.toml")
    assert sum(1 for i in small.items if i.door == 1) == 30 and len(small.items) == 40
    assert small.buses[0].baudrate == 115200


@pytest.mark.parametrize("patch, message", [
    (lambda d: d["boards"][0].update(bus="nope"), "bus 'nope' is not a declared"),
    (lambda d: d["doors"][0].update(lock=3), "lock must be ≤ 2"),
    (lambda d: d["doors"][0].update(antenna=5), "antenna 5 does not exist"),
    (lambda d: d["doors"][0].update(items=20, capacity=10), "exceed capacity"),
    (lambda d: d["doors"].append({"number": 1, "board": 1, "lock": 2}), "appears twice"),
    (lambda d: d["doors"][0].update(board=9), "board 9 is not a declared"),
    (lambda d: d["buses"][0].update(kind="can"), "kind must be one of"),
    (lambda d: d["doors"][0].update(colour="red"), "unknown key(s) colour"),
    (lambda d: d["boards"][0].update(address=300), "address must be ≤ 247"),
    (lambda d: d.pop("cabinet"), "missing required key 'cabinet'"),
    (lambda d: d["doors"][0].update(spring="yes"), "spring must be true/false"),
])
def test_errors_name_the_problem(patch, message: str) -> None:  # type: ignore[no-untyped-def]
    data = copy.deepcopy(BASE)
    patch(data)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(data)


def test_bad_toml_file(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[cabinet\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
