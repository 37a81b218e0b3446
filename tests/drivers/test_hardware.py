"""Hardware config loading: clear errors naming the problem, and the built devices."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.errors import ConfigError
from drivers.hardware import Hardware, load_spec
from simulator import Simulator

GOOD = """
[cabinet]
id = "t-1"

[[buses]]
name = "rs485-1"
url = "socket://127.0.0.1:9"
baudrate = 19200
family = "lendbox"

[[boards]]
address = 1
bus = "rs485-1"

[[doors]]
number = 1
board = 1
lock = 1
antenna = 1

[[doors]]
number = 2
board = 1
lock = 2
antenna = 2
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hw.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_good_config_builds_without_io(tmp_path: Path) -> None:
    hw = Hardware.from_file(_write(tmp_path, GOOD))
    assert list(hw.buses) == ["rs485-1"] and not hw.buses["rs485-1"].is_open
    assert hw.door(2).lock == 2 and hw.board_of(2) is hw.boards[1]
    assert hw.doors_of(1) == [1, 2]
    with pytest.raises(ConfigError, match="no door 9 in this cabinet \\(doors: 1-2\\)"):
        hw.door(9)
    hw.close()


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.replace('bus = "rs485-1"', 'bus = "rs485-9"'), "board 1: unknown bus 'rs485-9'"),
    (lambda t: t.replace("number = 2", "number = 1"), "door 1: duplicate door number"),
    (lambda t: t.replace("lock = 2\n", ""), "door 2: missing field 'lock'"),
    (lambda t: t.replace("lock = 2", "lock = 1"), "lock 1 of board 1 already drives door 1"),
    (lambda t: t.replace("board = 1\nlock = 2", "board = 3\nlock = 2"), "door 2: unknown board 3"),
    (lambda t: t.replace('url = "socket://127.0.0.1:9"\n', ""), "bus 'rs485-1': missing field 'url'"),
    (lambda t: t.replace('family = "lendbox"', 'family = "hid-iclass"'), "unknown family 'hid-iclass'"),
    (lambda t: t.replace("baudrate = 19200", 'baudrate = "fast"'), "'baudrate' must be"),
    (lambda t: t + '\n[[boards]]\naddress = 1\nbus = "rs485-1"\n', "duplicate board address"),
    (lambda t: t.replace("address = 1", "address = 300"), "address must be 1..247"),
    (lambda t: t + "\n[[doors\n", "not valid TOML"),
])
def test_config_errors_name_the_problem(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message.replace("(", "\\(").replace(")", "\\)")) as exc:
        load_spec(_write(tmp_path, change(GOOD)))
    assert "hw.toml" in str(exc.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such hardware config"):
        load_spec(tmp_path / "nope.toml")


def test_simulator_config_round_trip(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "sim-hw.toml"
    sim.write_hardware_config(path)
    with Hardware.from_file(path) as hw:
        assert sorted(hw.doors) == [1, 2, 3, 4]
        assert hw.boards[1].identify().serial == "LB04T0000001"
