"""Cabinet config errors for the device-family keys (buses' ``family``, ``[[readers]]``, a
door's ``reader``, boards' ``options``): each names the entry and the problem."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from simulator import Simulator
from simulator.config import parse_config
from simulator.errors import ConfigError

BASE: dict[str, Any] = {
    "cabinet": {"id": "families-cfg"},
    "buses": [{"name": "kerong-1", "family": "kerong"},
              {"name": "cn485-1", "family": "cn485"},
              {"name": "modbus-1", "family": "modbus"},
              {"name": "feig-1", "family": "feig"},
              {"name": "rr-1", "family": "rr3036"}],
    "boards": [{"address": 1, "bus": "kerong-1", "locks": 2},
               {"address": 2, "bus": "cn485-1", "locks": 2},
               {"address": 3, "bus": "modbus-1", "locks": 2}],
    "readers": [{"name": "feig", "bus": "feig-1", "antennas": 4},
                {"name": "rr-a", "bus": "rr-1", "address": 1}],
    "doors": [{"number": 1, "board": 1, "lock": 1, "reader": "feig", "antenna": 1},
              {"number": 2, "board": 2, "lock": 1, "reader": "rr-a"},
              {"number": 3, "board": 3, "lock": 1, "reader": "feig", "antenna": 2}],
}


def _with(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    change(data)
    return data


def test_the_base_cabinet_is_valid_and_builds() -> None:
    config = parse_config(BASE)
    assert [b.family for b in config.buses] == ["kerong", "cn485", "modbus", "feig", "rr3036"]
    assert config.door(2).reader == "rr-a" and config.door(2).antenna == 1
    Simulator(config, control_port=None)  # emulators built (no I/O until start)


@pytest.mark.parametrize("change,message", [
    (lambda d: d["readers"].append({"name": "x", "bus": "kerong-1"}),
     r"reader 'x': bus 'kerong-1' speaks kerong, which is not a reader protocol"),
    (lambda d: d["boards"][1].update(antennas=2),
     r"\[\[boards\]\] #2: a cn485 lock board has no antennas; put the RFID reader under "
     r"\[\[readers\]\]"),
    (lambda d: d["boards"].append({"address": 4, "bus": "feig-1", "locks": 2}),
     r"\[\[boards\]\] #4: bus 'feig-1' speaks feig, a reader protocol"),
    (lambda d: d["doors"][0].update(reader="nobody"),
     r"door 1: reader 'nobody' is not a declared \[\[readers\]\] name"),
    (lambda d: d["doors"][0].update(antenna=5),
     r"door 1: antenna 5 does not exist on reader 'feig' \(it has 4\)"),
    (lambda d: d["doors"][1].pop("reader"),
     r"door 2: antenna 1 does not exist on board 2 \(it has 0\); a door read by a "
     r"stand-alone reader names it with reader"),
    (lambda d: d["buses"][0].update(family="hid"), r"\[\[buses\]\] #1: family must be one of"),
    (lambda d: d["readers"][0].update(colour="red"), r"\[\[readers\]\] #1: unknown key\(s\) colour"),
])
def test_parse_errors_name_the_entry_and_the_problem(change: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(_with(change), source="cab.toml")


@pytest.mark.parametrize("change,message", [
    (lambda d: d["readers"][1].update(antennas=2),
     "bus 'rr-1': an RR3036 module has one antenna; use one module (reader) per door antenna"),
    (lambda d: d["boards"][1].update(options={"feedback": "sideways"}),
     "board 2 (cn485): feedback must be one of"),
    (lambda d: d["boards"][1].update(options={"volume": 11}),
     "board 2 (cn485): bad option: "),
    (lambda d: d["boards"][0].update(options={"pulse_s": 0.2, "colour": "red"}),
     "board 1 (kerong): bad option: "),
    (lambda d: d["boards"][0].update(locks=17),
     "board 1 (kerong): a Kerong CU unit has at most 16 locks"),
    (lambda d: d["boards"][2].update(options={"coil_start": 4}),
     "board 3 (modbus): bad option: "),
    (lambda d: d["readers"][0].update(options={"data_sets_per_reply": 0}),
     "reader 'feig' (feig): data_sets_per_reply 1..255"),
    (lambda d: d["readers"][1].update(options={"uids": 3}),
     "reader 'rr-a' (rr3036): bad option: "),
])
def test_family_errors_name_the_entry_and_the_problem(change: Any, message: str) -> None:
    config = parse_config(_with(change))
    with pytest.raises(ConfigError, match=re.escape(message)):
        Simulator(config, control_port=None)


def test_driver_only_options_reach_only_the_hardware_config() -> None:
    data = _with(lambda d: (d["boards"][0].update(options={"pulse_s": 0.2, "pulse_ms": 200,
                                                           "sprung_doors": True}),
                            d["readers"][0].update(options={"data_sets_per_reply": 3,
                                                            "max_blocks": 12})))
    hw = Simulator(parse_config(data), control_port=None).hardware_config()
    kerong = next(b for b in hw["boards"] if b["address"] == 1)
    assert kerong["options"] == {"pulse_ms": 200, "sprung_doors": True, "locks": 2}
    feig = next(r for r in hw["readers"] if r["name"] == "feig")
    assert feig["options"] == {"max_blocks": 12, "antennas": 4}
