"""Hardware config errors for the device-family keys, and a mixed config building every
family's drivers (no I/O: constructors open nothing)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from drivers.board import ControllerBoard
from drivers.errors import ConfigError
from drivers.hardware import Hardware
from drivers.rfid import RfidReader

URL = "socket://127.0.0.1:9"  # never connected: building opens nothing

BASE: dict[str, Any] = {
    "cabinet": {"id": "families-hw"},
    "buses": [{"name": "lb-1", "url": URL, "family": "lendbox"},
              {"name": "kerong-1", "url": URL, "family": "kerong"},
              {"name": "cn485-1", "url": URL, "family": "cn485", "baudrate": 9600},
              {"name": "modbus-1", "url": URL, "family": "modbus", "baudrate": 9600},
              {"name": "feig-1", "url": URL, "family": "feig", "baudrate": 38400},
              {"name": "rr-1", "url": URL, "family": "rr3036"}],
    "boards": [{"address": 1, "bus": "kerong-1", "options": {"locks": 4}},
               {"address": 2, "bus": "cn485-1", "options": {"locks": 8,
                                                           "feedback": "open_is_11"}},
               {"address": 3, "bus": "modbus-1", "options": {"locks": 4,
                                                            "door_open_when": False}},
               {"address": 4, "bus": "lb-1"}],
    "readers": [{"name": "feig", "bus": "feig-1", "options": {"antennas": 8}},
                {"name": "rr-a", "bus": "rr-1", "address": 1}],
    "doors": [{"number": 1, "board": 1, "lock": 1, "antenna": 1, "reader": "feig"},
              {"number": 2, "board": 2, "lock": 1, "antenna": 1, "reader": "rr-a"},
              {"number": 3, "board": 3, "lock": 1, "antenna": 2, "reader": "feig"},
              {"number": 4, "board": 4, "lock": 1, "antenna": 1}],
}


def _with(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    change(data)
    return data


def test_mixed_config_builds_every_family() -> None:
    with Hardware.from_dict(BASE) as hw:
        assert {n: type(b).__name__ for n, b in hw.boards.items()} == {
            1: "KerongBoard", 2: "Cn485Board", 3: "ModbusIoBoard", 4: "LendboxBoard"}
        assert all(isinstance(b, ControllerBoard) for b in hw.boards.values())
        assert {n: type(r).__name__ for n, r in hw.readers.items()} == {
            4: "LendboxRfidReader", "feig": "FeigReader", "rr-a": "RR3036Reader"}
        assert all(isinstance(r, RfidReader) for r in hw.readers.values())
        assert hw.reader_of(3) is hw.readers["feig"] and hw.reader_of(4) is hw.readers[4]
        assert hw.doors_read_by("feig") == [1, 3]


@pytest.mark.parametrize("change,message", [
    (lambda d: d["doors"][0].pop("reader"),
     "door 1: board 1 is a kerong lock board without RFID: name the door's reader"),
    (lambda d: d["doors"][1].update(reader="rr-z"),
     "door 2: unknown reader 'rr-z' (defined: feig, rr-a)"),
    (lambda d: d["readers"].append({"name": "x", "bus": "cn485-1"}),
     "reader 'x': bus 'cn485-1' speaks cn485, which is not a reader protocol"),
    (lambda d: d["boards"].append({"address": 5, "bus": "rr-1"}),
     "board 5: bus 'rr-1' speaks rr3036, a reader protocol: put the reader under [[readers]]"),
    (lambda d: d["readers"].append({"name": "feig", "bus": "feig-1", "address": 2}),
     "reader 'feig': duplicate reader name"),
    (lambda d: d["buses"][1].update(family="hid"), "bus 'kerong-1': unknown family 'hid'"),
    (lambda d: d["buses"][4].update(parity="X"), "bus 'feig-1': 'parity' must be"),
])
def test_spec_errors_name_the_entry_and_the_problem(change: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Hardware.from_dict(_with(change))


@pytest.mark.parametrize("change,message", [
    (lambda d: d["boards"][0]["options"].update(colour="red"), "board 1 (kerong): bad option"),
    (lambda d: d["boards"][1]["options"].update(volume=11), "board 2 (cn485): bad option"),
    (lambda d: d["boards"][1]["options"].update(feedback="sideways"), "board 2 (cn485)"),
    (lambda d: d["boards"][2]["options"].update(coil_start=4), "board 3 (modbus)"),
    (lambda d: d["boards"][3].update(options={"pulse_s": 1}), "board 4 (lendbox): bad option"),
    (lambda d: d["boards"][0]["options"].update(locks=17), "board 1 (kerong)"),
    (lambda d: d["readers"][0]["options"].update(antennas=9), "reader 'feig' (feig)"),
    (lambda d: d["readers"][1].update(options={"antennas": 2}),
     "reader 'rr-a' (rr3036): bad option"),
])
def test_unknown_or_bad_driver_option_names_the_board(change: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Hardware.from_dict(_with(change))
