"""The technician's password, session cookie and guessing brake (kiosk.tech_auth)."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.config import ConfigProblems, load_config
from kiosk.tech_auth import (
    BadHash,
    LoginThrottle,
    SessionSigner,
    TechConfigError,
    hash_password,
    load_or_create_session_key,
    parse_hash,
    replace_technician_section,
    set_technician_hash,
    verify_password,
)

FAST = {"n": 2 ** 8, "r": 4, "p": 1}  # the real cost is 2**14 × 8: too slow for 100 examples
passwords = st.text(min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(passwords, passwords)
def test_any_password_round_trips_and_any_other_fails(password: str, other: str) -> None:
    stored = hash_password(password, **FAST)
    assert verify_password(stored, password)
    if other != password:
        assert not verify_password(stored, other)


def test_the_salt_makes_two_hashes_of_one_password_differ() -> None:
    a, b = hash_password("same password"), hash_password("same password")
    assert a != b
    assert verify_password(a, "same password") and verify_password(b, "same password")
    assert parse_hash(a).n == 2 ** 14  # the default cost is the real one


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=120))
def test_a_malformed_stored_hash_never_matches_and_never_crashes(stored: str) -> None:
    assert verify_password(stored, stored) is False


@pytest.mark.parametrize("stored", [
    "", "plain", "scrypt$n=3,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",  # n not a power of 2
    "scrypt$n=1073741824,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",  # would eat the memory
    "scrypt$n=16384,r=8,p=1$$aGFzaGhhc2hoYXNoaGFzaA",
])
def test_parse_hash_names_a_bad_hash(stored: str) -> None:
    with pytest.raises(BadHash):
        parse_hash(stored)


def test_an_empty_password_is_refused() -> None:
    with pytest.raises(ValueError):
        hash_password("")


def test_session_tokens_expire_and_cannot_be_forged(tmp_path: Path) -> None:
    now = [1_000_000.0]
    key = load_or_create_session_key(tmp_path / "k")
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600
    assert load_or_create_session_key(tmp_path / "k") == key  # kept across restarts
    signer = SessionSigner(key, ttl_s=900, clock=lambda: now[0])
    token = signer.issue()
    assert signer.valid(token)
    expiry, nonce, mac = token.split(".")
    assert not signer.valid(f"{int(expiry) + 3600}.{nonce}.{mac}")  # a longer life: bad MAC
    assert not SessionSigner(os.urandom(32), clock=lambda: now[0]).valid(token)  # other cabinet
    for junk in ("", "x", "..", "1.2.3", token + "x", "é" * 10, None):
        assert not signer.valid(junk)
    now[0] += 901
    assert not signer.valid(token)


def test_the_throttle_locks_after_repeated_failures_and_doubles() -> None:
    now = [0.0]
    throttle = LoginThrottle(max_failures=3, lockout_s=60, clock=lambda: now[0])
    for _ in range(2):
        throttle.failed()
    assert throttle.wait_s() == 0
    throttle.failed()
    assert throttle.wait_s() == 60
    now[0] += 61
    assert throttle.wait_s() == 0
    for _ in range(3):
        throttle.failed()
    assert throttle.wait_s() == 120
    throttle.succeeded()
    assert throttle.wait_s() == 0


CONFIG = """# a cabinet
[cabinet]
id = "c-1"  # keep this comment

[technician]
password_hash = "old"

[[doors]]
number = 1
"""


def test_the_section_is_replaced_and_the_rest_of_the_file_kept() -> None:
    stored = hash_password("a new password", **FAST)
    out = replace_technician_section(CONFIG, stored)
    assert "# a cabinet\n[cabinet]\nid = \"c-1\"  # keep this comment\n" in out
    assert "old" not in out
    data = tomllib.loads(out)
    assert data["technician"] == {"password_hash": stored}
    assert data["doors"] == [{"number": 1}]
    again = replace_technician_section(out, stored)
    assert again.count("[technician]") == 1


def test_dotted_technician_keys_are_refused_rather_than_broken() -> None:
    with pytest.raises(TechConfigError):
        replace_technician_section('technician.password_hash = "x"\n', "h")
    with pytest.raises(TechConfigError):
        replace_technician_section("not = [toml", "h")


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(f"""[cabinet]
id = "c-1"
branch = "b"
data_dir = "data"
own_library = "CN-1"
network_libraries = ["CN-1"]

[[buses]]
name = "b1"
url = "socket://127.0.0.1:9"

[[boards]]
address = 1
bus = "b1"

[[doors]]
number = 1
board = 1
lock = 1
antenna = 1
size = "small"
capacity = 5
{extra}""", encoding="utf-8")
    return path


def test_the_config_loads_the_hash_and_rejects_a_bad_one(tmp_path: Path) -> None:
    path = _config(tmp_path)
    assert load_config(path).technician is None
    set_technician_hash(path, "long enough pw")
    tech = load_config(path).technician
    assert tech is not None and verify_password(tech.password_hash, "long enough pw")
    bad = _config(tmp_path, '\n[technician]\npassword_hash = "letmein"\n')
    with pytest.raises(ConfigProblems) as exc:
        load_config(bad)
    assert any("password_hash" in p.message and p.line == 25 for p in exc.value.problems)
    typo = _config(tmp_path, '\n[technician]\npasword_hash = "x"\n')
    with pytest.raises(ConfigProblems) as exc:
        load_config(typo)
    assert any("did you mean 'password_hash'" in p.message for p in exc.value.problems)


def test_the_command_sets_the_password_and_refuses_a_short_one(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = _config(tmp_path)
    before = path.read_text()

    def run(stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lendbox.cli", "kiosk",
                               "technician-password", "--config", str(path)], input=stdin,
                              capture_output=True, text=True, timeout=60, check=False)

    short = run("short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr
    assert path.read_text() == before
    done = run("a long enough one\n")
    assert done.returncode == 0, done.stderr
    assert path.read_text().startswith(before)  # the rest of the file is untouched
    tech = load_config(path).technician
    assert tech is not None and verify_password(tech.password_hash, "a long enough one")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120) | st.from_regex(r"[0-9]{1,12}\.[A-Za-z0-9_-]{0,20}\.[A-Za-z0-9_-]{0,50}",
                                             fullmatch=True))
def test_no_made_up_session_token_is_accepted(token: str) -> None:
    signer = SessionSigner(b"k" * 32, clock=lambda: 0.0)
    assert signer.valid(token) is False
