"""The kiosk config: every problem of a file is reported, each at its line, and a file with any
problem never becomes a KioskConfig (docs/kiosk-contracts.md, "Kiosk config").

Every test writes a real file and reads it back through the public functions or the real
`lendbox` command line; expected lines are found in the test's own text, never counted by hand.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.config import (
    ApiConfig,
    ConfigProblems,
    KioskConfig,
    Policy,
    Problem,
    check_config,
    load_config,
)
from lendbox.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "kiosk" / "cabinets" / "example.toml"
KEY_1 = "Z859gb-BmwMt1Wx8KxeXdaoSD7_TOLFP5vPpc9tZSeE"  # base64url of 32 bytes
KEY_2 = "_ewGtXNcGWM3qCHONMgohhp3dLuHnIUY_6_YLmj4TCM"

VALID = f"""\
# a three-door test cabinet
[cabinet]
id = "test-0001"
branch = "福田区图书馆"
location = "深圳北站 2F 候车室"
language = "zh"
data_dir = "var/test-0001"
own_library = "CN-440300"
network_libraries = ["CN-440300",
                     "CN-440305"]
hours = "24h"
help_line = "0755-12345678"

[server]
url = "http://127.0.0.1:8000"
timeout_s = 2.0
sync_interval_s = 5.0
resolve_timeout_s = 1.5
trusted_keys = {{ k1 = "{KEY_1}", k2 = "{KEY_2}" }}

[api]
host = "127.0.0.1"
port = 8080

[policy]
loan_days = 30
max_loans = 10
offline_allowance = 2
offline_exposure_cap = 20
door_prompt_s = [30, 60]
door_alarm_s = 120
session_idle_s = 60
credential_ttl_s = 300
qr_max_ttl_s = 60
clock_skew_s = 120
inventory_retries = 2

[[buses]]
name = "rs485-1"
url = "socket://127.0.0.1:41234"
family = "lendbox"

[[boards]]
address = 1
bus = "rs485-1"

[[doors]]
number = 1
board = 1
lock = 1
antenna = 1
size = "large"
capacity = 40
accessible = true

[[doors]]
number = 2
board = 1
lock = 2
antenna = 2
size = "medium"
capacity = 25

[[doors]]
number = 3
board = 1
lock = 3
antenna = 3
size = "small"
capacity = 12
accessible = false
"""

MINIMAL = """\
[cabinet]
id = "mini-1"
branch = "南山图书馆"
own_library = "CN-440305"

[[buses]]
name = "b"
url = "loop://"

[[boards]]
address = 1
bus = "b"

[[doors]]
number = 1
board = 1
lock = 1
antenna = 1
size = "small"
capacity = 5
"""


def write(tmp_path: Path, text: str, name: str = "cabinet.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the ``nth`` line of ``text`` that contains ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) >= nth, f"{needle!r} is not in the text {nth} time(s)"
    return hits[nth - 1]


def edit(text: str, old: str, new: str, nth: int = 1) -> str:
    """Replace the ``nth`` occurrence of ``old`` (which must exist) with ``new``."""
    start = -1
    for _ in range(nth):
        start = text.index(old, start + 1)
    return text[:start] + new + text[start + len(old):]


# --------------------------------------------------------------------------------------------
# valid files
# --------------------------------------------------------------------------------------------


def test_a_valid_file_gives_every_field(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    assert check_config(path) == []
    config = load_config(path)
    assert isinstance(config, KioskConfig)
    assert config.cabinet.id == "test-0001" and config.cabinet.branch == "福田区图书馆"
    assert config.cabinet.location == "深圳北站 2F 候车室"
    assert config.cabinet.network_libraries == ("CN-440300", "CN-440305")
    assert config.cabinet.help_line == "0755-12345678"
    assert config.server is not None and not config.stand_alone
    assert config.server.url == "http://127.0.0.1:8000"
    assert (config.server.timeout_s, config.server.resolve_timeout_s) == (2.0, 1.5)
    assert dict(config.server.trusted_keys) == {"k1": KEY_1, "k2": KEY_2}
    assert config.api == ApiConfig(host="127.0.0.1", port=8080)
    assert config.policy == Policy()  # the file spells out the defaults
    assert config.policy.door_prompt_s == (30, 60)
    assert sorted(config.doors) == [1, 2, 3]
    assert config.doors[1].size == "large" and config.doors[1].capacity == 40
    assert config.doors[1].accessible is True
    assert config.doors[2].accessible is False  # the default: never claimed by accident
    assert [d.number for d in config.hardware.doors] == [1, 2, 3]
    assert config.hardware.cabinet_id == "test-0001"
    assert config.path == path
    assert config.data_dir == tmp_path.resolve() / "var" / "test-0001"
    assert config.cabinet.data_dir == config.data_dir


def test_defaults_of_a_minimal_stand_alone_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.server is None and config.stand_alone
    assert config.api == ApiConfig(host="127.0.0.1", port=8080)
    assert config.policy == Policy(loan_days=30, max_loans=10, offline_allowance=2,
                                   offline_exposure_cap=20, door_prompt_s=(30, 60),
                                   door_alarm_s=120, session_idle_s=60, credential_ttl_s=300,
                                   qr_max_ttl_s=60, clock_skew_s=120, inventory_retries=2)
    assert config.cabinet.language == "zh" and config.cabinet.hours == "24h"
    assert config.cabinet.location == "" and config.cabinet.help_line == ""
    assert config.cabinet.network_libraries == ("CN-440305",)
    assert config.data_dir == tmp_path.resolve() / "var" / "mini-1"


def test_data_dir_is_relative_to_the_config_file_not_the_working_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cabinets").mkdir()
    (tmp_path / "elsewhere").mkdir()
    path = write(tmp_path / "cabinets", VALID)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert load_config(path).data_dir == (tmp_path / "cabinets" / "var" / "test-0001").resolve()
    absolute = write(tmp_path, edit(VALID, '"var/test-0001"', f'"{tmp_path / "data"}"'), "a.toml")
    assert load_config(absolute).data_dir == tmp_path / "data"


def test_the_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.policy.loan_days = 90  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.cabinet = config.cabinet  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.server.trusted_keys["evil"] = KEY_1  # type: ignore[index,union-attr]


def test_the_example_cabinet_passes() -> None:
    assert check_config(EXAMPLE) == []
    config = load_config(EXAMPLE)
    assert len(config.doors) == 6 and len(config.hardware.doors) == 6
    assert config.server is not None and len(config.server.trusted_keys) >= 1
    assert config.cabinet.branch and config.cabinet.location
    assert not config.cabinet.branch.isascii()  # a Chinese branch, as the cabinets are
    assert {d.size for d in config.doors.values()} == {"small", "medium", "large"}
    assert any(d.accessible for d in config.doors.values())
    assert config.data_dir.is_relative_to(EXAMPLE.parent)


def test_every_section_of_the_example_is_documented() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    firsts: dict[str, int] = {}  # each kind of table, where it first appears
    for i, line in enumerate(lines):
        if line.startswith("["):
            firsts.setdefault(line.split("#")[0].strip(), i)
    assert {"[cabinet]", "[server]", "[api]", "[policy]", "[[buses]]", "[[boards]]",
            "[[doors]]", "[card_reader]", "[camera]"} <= set(firsts)
    for i in firsts.values():
        before = lines[max(0, i - 4):i]
        has_comment = "#" in lines[i] or any(line.startswith("#") for line in before)
        assert has_comment, f"{lines[i]} (line {i + 1}) has no comment"


# --------------------------------------------------------------------------------------------
# every kind of problem, at its line
# --------------------------------------------------------------------------------------------

# (id, old, new, the blamed line's text (or text and which occurrence) in the edited file,
#  where, part of the message)
CASES = [
    ("missing cabinet id", 'id = "test-0001"\n', "", "[cabinet]", "[cabinet]", "missing key 'id'"),
    ("bad cabinet id", 'id = "test-0001"', 'id = "test 0001/x"', 'id = "test 0001/x"',
     "[cabinet]", "'id' must be 1-64 letters"),
    ("missing branch", 'branch = "福田区图书馆"\n', "", "[cabinet]", "[cabinet]",
     "missing key 'branch'"),
    ("language", 'language = "zh"', 'language = "fr"', 'language = "fr"', "[cabinet]",
     "'language' must be \"zh\" or \"en\", got 'fr'"),
    ("own library not an ISIL", 'own_library = "CN-440300"', 'own_library = "440300"',
     'own_library = "440300"', "[cabinet]", "'own_library' must be an ISIL"),
    ("own library not in the network", '"CN-440300",\n', '"CN-440303",\n',
     "network_libraries", "[cabinet]", "must include own_library 'CN-440300'"),
    ("network library not an ISIL", '"CN-440305"]', '"Futian"]', "network_libraries",
     "[cabinet]", "'Futian' is not an ISIL"),
    ("network library twice", '"CN-440305"]', '"CN-440300"]', "network_libraries",
     "[cabinet]", "'CN-440300' is listed twice"),
    ("hours not a string", 'hours = "24h"', "hours = 24", "hours = 24", "[cabinet]",
     "'hours' must be a non-empty string"),
    ("cabinet unknown key", 'hours = "24h"', 'hour = "24h"', 'hour = "24h"', "[cabinet]",
     "unknown key 'hour' — did you mean 'hours'?"),
    ("server url scheme", 'url = "http://127.0.0.1:8000"', 'url = "ftp://127.0.0.1"',
     'url = "ftp://127.0.0.1"', "[server]", "'url' must be an http:// or https:// URL"),
    ("server url port", 'url = "http://127.0.0.1:8000"', 'url = "http://127.0.0.1:99999"',
     "99999", "[server]", "'url' must be an http:// or https:// URL"),
    ("server timeout", "timeout_s = 2.0", "timeout_s = -1", "timeout_s = -1", "[server]",
     "'timeout_s' must be a positive number of seconds, got -1"),
    ("resolve timeout", "resolve_timeout_s = 1.5", "resolve_timeout_s = 0",
     "resolve_timeout_s = 0", "[server]",
     "'resolve_timeout_s' must be a positive number of seconds, got 0"),
    ("sync interval", "sync_interval_s = 5.0", "sync_interval_s = nan", "sync_interval_s",
     "[server]", "'sync_interval_s' must be a positive number of seconds"),
    ("trusted key too short", f'k2 = "{KEY_2}"', f'k2 = "{KEY_2[:-4]}"', "trusted_keys",
     "[server]", "'trusted_keys.k2' must be base64url (no padding) of a 32-byte"),
    ("trusted key not base64url", f'k1 = "{KEY_1}"', f'k1 = "{KEY_1[:-1]}+"', "trusted_keys",
     "[server]", "'trusted_keys.k1' must be base64url"),
    ("trusted keys missing", f'trusted_keys = {{ k1 = "{KEY_1}", k2 = "{KEY_2}" }}\n', "",
     "[server]", "[server]", "missing key 'trusted_keys'"),
    ("api port", "port = 8080", "port = 80800", "port = 80800", "[api]",
     "'port' must be an integer 0..65535, got 80800"),
    ("api host", 'host = "127.0.0.1"', 'host = ""', 'host = ""', "[api]",
     "'host' must be a non-empty string"),
    ("loan days", "loan_days = 30", "loan_days = 0", "loan_days = 0", "[policy]",
     "'loan_days' must be a positive integer, got 0"),
    ("max loans float", "max_loans = 10", "max_loans = 10.5", "max_loans = 10.5", "[policy]",
     "'max_loans' must be a positive integer, got 10.5"),
    ("policy typo", "loan_days = 30", "loan_day = 30", "loan_day = 30", "[policy]",
     "unknown key 'loan_day' — did you mean 'loan_days'?"),
    ("prompts not ascending", "door_prompt_s = [30, 60]", "door_prompt_s = [60, 30]",
     "door_prompt_s", "[policy]", "'door_prompt_s' must be in ascending order"),
    ("prompt after the alarm", "door_prompt_s = [30, 60]", "door_prompt_s = [30, 120]",
     "door_prompt_s", "[policy]", "every 'door_prompt_s' must come before 'door_alarm_s' (120 s)"),
    ("prompts not numbers", "door_prompt_s = [30, 60]", 'door_prompt_s = [30, "1m"]',
     "door_prompt_s", "[policy]", "'door_prompt_s' must be a list of positive seconds"),
    ("qr ttl", "qr_max_ttl_s = 60", "qr_max_ttl_s = 90", "qr_max_ttl_s = 90", "[policy]",
     "'qr_max_ttl_s' must be at most 60"),
    ("offline allowance", "offline_allowance = 2", "offline_allowance = 11",
     "offline_allowance = 11", "[policy]", "'offline_allowance' (11) must not exceed 'max_loans' (10)"),
    ("clock skew a string", "clock_skew_s = 120", 'clock_skew_s = "2m"', "clock_skew_s",
     "[policy]", "'clock_skew_s' must be a number of seconds ≥ 0"),
    ("retries negative", "inventory_retries = 2", "inventory_retries = -1",
     "inventory_retries = -1", "[policy]", "'inventory_retries' must be an integer ≥ 0"),
    ("policy not a table", "[policy]\n", "[policy_]\n", "[policy_]", "top level",
     "unknown table 'policy_' — did you mean 'policy'?"),
    ("door size", 'size = "medium"', 'size = "huge"', 'size = "huge"', "door 2",
     "'size' must be \"small\", \"medium\" or \"large\", got 'huge'"),
    ("door size missing", 'size = "medium"\n', "", ("[[doors]]", 2), "door 2",
     "missing key 'size'"),
    ("door capacity", "capacity = 12", "capacity = 0", "capacity = 0", "door 3",
     "'capacity' must be a positive integer, got 0"),
    ("door accessible", "accessible = true", 'accessible = "yes"', 'accessible = "yes"',
     "door 1", "'accessible' must be true or false"),
    ("door unknown key", "capacity = 25", "capacity = 25\ncolour = \"red\"", "colour", "door 2",
     "unknown key 'colour'"),
    ("hardware: unknown board", "board = 1\nlock = 2", "board = 9\nlock = 2", "board = 9",
     "door 2", "unknown board 9"),
    ("hardware: lock out of range", "lock = 3", "lock = 300", "lock = 300", "door 3",
     "'lock' must be 1..255, got 300"),
    ("hardware: lock used twice", "lock = 3", "lock = 2", ("lock = 2", 2), "door 3",
     "lock 2 of board 1 already drives door 2"),
    ("hardware: duplicate door", "number = 3", "number = 2", ("number = 2", 2), "door 2",
     "duplicate door number"),
    ("hardware: unknown family", 'family = "lendbox"', 'family = "lendbxo"',
     'family = "lendbxo"', "bus 'rs485-1'", "unknown family 'lendbxo'"),
    ("hardware: board on unknown bus", 'bus = "rs485-1"', 'bus = "rs485-2"', 'bus = "rs485-2"',
     "board 1", "unknown bus 'rs485-2'"),
    ("hardware: board address", "address = 1", "address = 0", "address = 0", "board 0",
     "address must be 1..247"),
    ("hardware: family not a name", 'family = "lendbox"', "family = []", "family = []",
     "bus 'rs485-1'", "'family' must be the name of a device family"),
    ("hardware: door reader not a name", "antenna = 2", "antenna = 2\nreader = [1]",
     "reader = [1]", "door 2", "'reader' must be the name of a [[readers]] entry"),
    ("hardware: bus key typo", "family = \"lendbox\"", "family = \"lendbox\"\nbaudrte = 9600",
     "baudrte", "bus 'rs485-1'", "unknown key 'baudrte' — did you mean 'baudrate'?"),
    ("hardware: card reader key typo", "[[buses]]", "[card_reader]\nreadr = \"\"\n\n[[buses]]",
     "readr", "[card_reader]", "unknown key 'readr' — did you mean 'reader'?"),
    ("hardware: pcsc socket relative", "[[buses]]",
     "[card_reader]\npcsc_socket = \"run/pcscd.comm\"\n\n[[buses]]", "pcsc_socket",
     "[card_reader]", "'pcsc_socket' must be an absolute path"),
    ("hardware: camera decoder", "[[buses]]",
     "[camera]\nsource = 0\ndecoder = \"tesseract\"\n\n[[buses]]", "decoder",
     "[camera]", "unknown decoder 'tesseract'"),
]


@pytest.mark.parametrize(("old", "new", "needle", "where", "message"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_kind_of_problem_is_named_at_its_line(tmp_path: Path, old: str, new: str,
                                                    needle: str | tuple[str, int], where: str,
                                                    message: str) -> None:
    text = edit(VALID, old, new)
    path = write(tmp_path, text)
    problems = check_config(path)
    assert len(problems) == 1, "\n".join(map(str, problems))
    problem = problems[0]
    assert message in problem.message
    assert problem.where == where
    needle, nth = needle if isinstance(needle, tuple) else (needle, 1)
    assert problem.line == line_of(text, needle, nth), str(problem)
    assert problem.file == str(path)
    assert str(problem) == f"{path}:{problem.line}: {where}: {problem.message}"
    with pytest.raises(ConfigProblems) as caught:
        load_config(path)
    assert caught.value.problems == (problem,)


def test_the_hardware_of_a_second_doors_entry_is_blamed_on_its_own_lines(tmp_path: Path) -> None:
    """A duplicate door number is the *second* entry's fault; a later door's lock its own."""
    text = edit(VALID, "number = 3", "number = 1")
    problems = check_config(write(tmp_path, text))
    assert [(p.line, p.where) for p in problems] == [(line_of(text, "number = 1", 2), "door 1")]


def test_every_bad_door_of_the_hardware_is_reported_at_once(tmp_path: Path) -> None:
    """drivers.hardware.parse_spec stops at its first error; the checker sets that door aside
    and looks again, so a technician sees every bad door in one run."""
    text = edit(edit(VALID, "antenna = 1", "antenna = 0"), "board = 1\nlock = 3",
                "board = 7\nlock = 3")
    text = edit(text, "number = 2", 'number = "2"')
    problems = check_config(write(tmp_path, text))
    assert [(p.line, p.where, p.message) for p in problems] == [
        (line_of(text, "antenna = 0"), "door 1", "'antenna' must be 1..255, got 0"),
        (line_of(text, 'number = "2"'), "doors[2]", "'number' must be an integer, got '2'"),
        (line_of(text, "board = 7"), "door 3", "unknown board 7 (defined: 1)"),
    ]


def test_a_typo_is_one_problem_not_also_a_missing_key(tmp_path: Path) -> None:
    text = edit(VALID, 'size = "medium"', 'sise = "medium"')
    text = edit(text, "[[buses]]\nname =", "[[buses]]\nnmae =")
    problems = check_config(write(tmp_path, text))
    assert [(p.line, p.message) for p in problems] == [
        (line_of(text, "nmae"), "unknown key 'nmae' — did you mean 'name'?"),
        (line_of(text, "sise"), "unknown key 'sise' — did you mean 'size'?"),
    ]


def test_five_problems_are_all_reported_in_line_order(tmp_path: Path) -> None:
    text = VALID
    for old, new in [('language = "zh"', 'language = "de"'), ("port = 8080", "port = -1"),
                     ("loan_days = 30", "loan_dayz = 30"), ("capacity = 40", "capacity = 0"),
                     ("lock = 3", "lock = 1")]:
        text = edit(text, old, new)
    path = write(tmp_path, text)
    problems = check_config(path)
    assert [(p.line, p.where) for p in problems] == [
        (line_of(text, 'language = "de"'), "[cabinet]"),
        (line_of(text, "port = -1"), "[api]"),
        (line_of(text, "loan_dayz"), "[policy]"),
        (line_of(text, "capacity = 0"), "door 1"),
        (line_of(text, "lock = 1", 2), "door 3"),  # lock 1 already drives door 1
    ]
    with pytest.raises(ConfigProblems) as caught:
        load_config(path)
    assert isinstance(caught.value, ValueError)
    report = str(caught.value)
    assert report.startswith("5 problems in the kiosk config:")
    assert all(str(p) in report for p in problems)


def test_a_cross_check_that_fails_on_a_default_blames_the_written_key(tmp_path: Path) -> None:
    text = MINIMAL + "\n[policy]\nmax_loans = 1\ndoor_alarm_s = 45\n"
    problems = check_config(write(tmp_path, text))
    assert [(p.line, p.message) for p in problems] == [
        (line_of(text, "max_loans"), "'offline_allowance' (2) must not exceed 'max_loans' (1)"),
        (line_of(text, "door_alarm_s"),
         "every 'door_prompt_s' must come before 'door_alarm_s' (45 s), got [30, 60]"),
    ]


def test_a_misspelt_table_is_one_problem_not_also_a_missing_one(tmp_path: Path) -> None:
    text = MINIMAL.replace("[cabinet]", "[cabinett]").replace("[[doors]]", "[[door]]")
    text = text.replace("[[buses]]", "[[bus]]")
    problems = check_config(write(tmp_path, text))
    assert [(p.line, p.message) for p in problems] == [
        (line_of(text, "[cabinett]"), "unknown table 'cabinett' — did you mean 'cabinet'?"),
        (line_of(text, "[[bus]]"), "unknown table 'bus' — did you mean 'buses'?"),
        (line_of(text, "[[door]]"), "unknown table 'door' — did you mean 'doors'?"),
    ]


def test_a_file_without_doors(tmp_path: Path) -> None:
    text = MINIMAL[:MINIMAL.index("[[doors]]")]
    problems = check_config(write(tmp_path, text))
    assert [(p.line, p.where) for p in problems] == [(None, "[[doors]]")]
    assert "at least one door" in problems[0].message


def test_a_missing_cabinet_table(tmp_path: Path) -> None:
    text = MINIMAL.replace('[cabinet]\nid = "mini-1"\nbranch = "南山图书馆"\nown_library = "CN-440305"\n',
                           "")
    problems = check_config(write(tmp_path, text))
    assert [(p.line, p.where) for p in problems] == [(None, "[cabinet]")]


def test_a_section_that_is_not_a_table(tmp_path: Path) -> None:
    text = "api = 8080\n" + MINIMAL
    problems = check_config(write(tmp_path, text))
    assert [(p.line, p.where, p.message) for p in problems] == [
        (1, "[api]", "[api] must be a table, got 8080")]


def test_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "test-0001").write_text("not a folder")
    problems = check_config(write(tmp_path, VALID))
    assert [(p.line, p.where) for p in problems] == [(line_of(VALID, "data_dir"), "[cabinet]")]
    assert "is a file, not a folder" in problems[0].message


# --------------------------------------------------------------------------------------------
# the file itself
# --------------------------------------------------------------------------------------------


def test_a_toml_syntax_error_is_one_problem_at_its_line(tmp_path: Path) -> None:
    text = edit(VALID, "loan_days = 30", "loan_days = 30 days")
    problems = check_config(write(tmp_path, text))
    assert len(problems) == 1
    assert problems[0].line == line_of(text, "30 days") and problems[0].where == "TOML"
    assert problems[0].message.startswith("not valid TOML: ")
    assert "(column" in problems[0].message


def test_a_toml_error_at_the_end_of_the_file(tmp_path: Path) -> None:
    problems = check_config(write(tmp_path, "[cabinet]\nid = \n"))
    assert [(p.line, p.where) for p in problems] == [(2, "TOML")]


def test_a_missing_file_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert check_config(path) == [Problem(None, "file", "no such file", str(path))]
    assert str(check_config(path)[0]) == f"{path}: file: no such file"
    with pytest.raises(ConfigProblems, match="no such file"):
        load_config(path)


def test_a_folder_is_not_a_config(tmp_path: Path) -> None:
    problems = check_config(tmp_path)
    assert len(problems) == 1 and problems[0].message.startswith("cannot read")


def test_text_that_is_not_utf8_is_one_problem_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "gbk.toml"
    path.write_bytes(VALID.encode("utf-8").replace("福田区图书馆".encode(), "福田区图书馆".encode("gbk")))
    problems = check_config(path)
    assert [(p.line, p.where) for p in problems] == [(line_of(VALID, "branch"), "file")]


# --------------------------------------------------------------------------------------------
# the line locator through odd but valid TOML
# --------------------------------------------------------------------------------------------


def test_lines_through_multiline_strings_subtables_dotted_and_quoted_keys(tmp_path: Path) -> None:
    text = edit(VALID, 'location = "深圳北站 2F 候车室"',
                'location = """深圳北站\n[policy]\nloan_days = 0 # not a key: inside a string\n"""')
    text = edit(text, f'trusted_keys = {{ k1 = "{KEY_1}", k2 = "{KEY_2}" }}',
                f'\n[server.trusted_keys]\n"k1" = "{KEY_1}"\nk2 = \'{KEY_2[:-2]}\'')
    text = edit(text, "max_loans = 10", "'max_loans' = 10")
    text = edit(text, "loan_days = 30", "loan_days = 0")
    text = edit(text, "[api]\nhost", "[api]\napi_extra.x = 1\nhost")
    text = edit(text, "door_prompt_s = [30, 60]", "door_prompt_s = [\n  30, # first\n  130,\n]")
    path = write(tmp_path, text)
    problems = check_config(path)
    assert [(p.line, p.where) for p in problems] == [
        (line_of(text, f"k2 = '{KEY_2[:-2]}'"), "[server]"),
        (line_of(text, "api_extra.x"), "[api]"),
        (line_of(text, "loan_days = 0", 2), "[policy]"),
        (line_of(text, "door_prompt_s = ["), "[policy]"),
    ], "\n".join(map(str, problems))


def test_lines_inside_an_inline_array_of_doors(tmp_path: Path) -> None:
    text = (
        'doors = [\n  { number = 1, board = 1, lock = 1, antenna = 1, size = "small", capacity = 5 },\n'
        '  { number = 2, board = 1, lock = 2, antenna = 2, size = "tiny", capacity = 5 },\n]\n'
    ) + MINIMAL[:MINIMAL.index("[[doors]]")]
    problems = check_config(write(tmp_path, text))
    assert [(p.line, p.where) for p in problems] == [(line_of(text, '"tiny"'), "door 2")]


# --------------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------------


def test_cli_check_config_of_a_valid_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kiosk", "check-config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "6 doors" in out and "server https://" in out
    assert "sz-futian-0007" in out


def test_cli_says_stand_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kiosk", "check-config", str(write(tmp_path, MINIMAL))]) == 0
    out = capsys.readouterr().out
    assert "cabinet mini-1" in out and "1 doors" in out and "stand-alone" in out


def test_cli_lists_every_problem_and_exits_1(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    text = edit(edit(VALID, "loan_days = 30", "loan_day = 30"), "port = 8080", "port = 0.5")
    path = write(tmp_path, text)
    assert main(["kiosk", "check-config", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{path}:{line_of(text, 'port = 0.5')}: [api]: 'port' must be an integer 0..65535, "
        "got 0.5",
        f"{path}:{line_of(text, 'loan_day =')}: [policy]: unknown key 'loan_day' — did you mean "
        "'loan_days'?",
        "2 problems: the cabinet will not start with this file",
    ]


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = edit(VALID, 'size = "large"', 'size = "big"')
    path = write(tmp_path, text)
    assert main(["kiosk", "check-config", "--json", str(path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["problems"] == [{"line": line_of(text, '"big"'), "where": "door 1",
                                   "message": "'size' must be \"small\", \"medium\" or \"large\", "
                                   "got 'big'"}]
    assert main(["kiosk", "check-config", str(EXAMPLE), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["summary"]["doors"] == 6
    assert report["summary"]["branch"] == "福田区图书馆"


def test_cli_kiosk_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["kiosk"])
    assert exited.value.code == 2


def test_the_console_script_checks_a_file(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "lendbox"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lendbox.cli"]
    bad = write(tmp_path, edit(VALID, "qr_max_ttl_s = 60", "qr_max_ttl_s = 600"))
    proc = subprocess.run([*command, "kiosk", "check-config", str(bad)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert f"{bad}:{line_of(bad.read_text(), 'qr_max_ttl_s')}: [policy]: 'qr_max_ttl_s'" in proc.stdout
    proc = subprocess.run([*command, "kiosk", "check-config", "kiosk/cabinets/example.toml"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout


# --------------------------------------------------------------------------------------------
# properties: whatever the file holds, a list of problems (or none), never a crash
# --------------------------------------------------------------------------------------------


def _check_never_crashes(path: Path, data: bytes) -> list[Problem]:
    path.write_bytes(data)
    problems = check_config(path)
    assert isinstance(problems, list)
    assert all(isinstance(p, Problem) for p in problems)
    line_count = max(1, data.count(b"\n") + 1)
    assert all(p.line is None or 1 <= p.line <= line_count for p in problems), problems
    if not problems:
        assert isinstance(load_config(path), KioskConfig)
    else:
        with pytest.raises(ConfigProblems):
            load_config(path)
    return problems


@given(text=st.text())
def test_arbitrary_text_never_crashes_check_config(tmp_path_factory: pytest.TempPathFactory,
                                                   text: str) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-text.toml"
    _check_never_crashes(path, text.encode("utf-8", "surrogatepass"))


@given(data=st.binary())
def test_arbitrary_bytes_never_crash_check_config(tmp_path_factory: pytest.TempPathFactory,
                                                  data: bytes) -> None:
    _check_never_crashes(tmp_path_factory.getbasetemp() / "fuzz-bytes.toml", data)


_VALUES = ["0", "-1", "1", "3", "70000", "1.5", "nan", "inf", "true", '""', '"x"', '"large"',
           '"CN-440300"', "[]", "[1, 2]", "[60, 30]", '["CN-440300"]', "{}", "{ a = 1 }",
           f'"{KEY_1}"', '"ftp://x"', "1979-05-27T07:32:00Z"]


@st.composite
def _mutated_valid(draw: st.DrawFn) -> str:
    """VALID with lines dropped, duplicated, moved or their values replaced: mostly valid
    TOML that is wrong in every way the checker knows (and some it does not)."""
    lines = VALID.splitlines()
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "value", "move", "key"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "move":
            lines.insert(draw(st.integers(0, len(lines))), lines.pop(i))
        elif "=" in lines[i] and not lines[i].startswith("#"):
            key, _, value = lines[i].partition("=")
            if op == "value":
                lines[i] = f"{key}= {draw(st.sampled_from(_VALUES))}"
            else:
                lines[i] = f"{draw(st.from_regex(r'[a-z_]{1,12}', fullmatch=True))} ={value}"
        if not lines:
            lines = [""]
    return "\n".join(lines) + "\n"


@given(text=_mutated_valid())
def test_mutated_configs_never_crash_and_lines_stay_in_the_file(
        tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    problems = _check_never_crashes(tmp_path_factory.getbasetemp() / "fuzz-mutated.toml",
                                    text.encode("utf-8"))
    lines = text.splitlines()
    for problem in problems:  # a problem about a key is on the line that writes that key
        if problem.line is None or not re.match(r"(unknown key )?'\w+'", problem.message):
            continue
        keys = re.findall(r"'(\w+)'", problem.message)  # x must not exceed y: either line
        assert any(k in lines[problem.line - 1] for k in keys), str(problem)
