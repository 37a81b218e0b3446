"""`lendbox sip2 probe` as a real subprocess: JSON lines on stdout, exit codes.

Against pysip2 (the independent peer) for the normal exchanges and a lost answer (pysip2
drops the connection on a blank nb due date, quirk 12: the probe must report it and resolve
it by item information), and against the scriptable fake ACS for a lost answer whose request
*was* applied.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lendbox.sip2_peer import PeerServer

from .sip2_fake_acs import INSTITUTION, FakeACS

ROOT = Path(__file__).resolve().parents[2]


def probe(*args: str, timeout: float = 30) -> tuple[int, list[dict[str, Any]], str]:
    r = subprocess.run([sys.executable, "-m", "lendbox.cli", "sip2", "probe", *args],
                       capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return r.returncode, lines, r.stderr


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerServer]:
    log = tmp_path_factory.mktemp("peer") / "peer.log"
    with PeerServer(encoding="utf-8", log=log) as server:
        yield server


def _login(host: str, port: int, **extra: str) -> list[str]:
    args = ["--host", host, "--port", str(port), "--user", "lendbox", "--password", "secret",
            "--location", "MAIN", "--institution", "LENDBOX", "--profile", "pysip2"]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", v]
    return args


def test_probe_against_pysip2_prints_one_json_object_per_exchange(peer: PeerServer) -> None:
    code, lines, err = probe(*_login(*peer.address), "--patron", "R0003", "--item", "B0006",
                             "--checkout", "B0002", "--checkin", "B0005")
    assert code == 0, err
    assert [x["exchange"] for x in lines] == ["login", "sc_status", "patron_information",
                                              "item_information", "checkout", "checkin"]
    assert all(x["ok"] for x in lines)
    assert all({"request", "response", "ok"} <= set(x) for x in lines)
    assert lines[0]["request"]["fields"]["login_password"] == "********"
    assert lines[2]["response"]["fields"]["personal_name"] == "欧阳娜娜"
    assert lines[3]["response"]["fixed"]["circulation_status"] == "04"
    assert lines[4]["response"]["fixed"]["ok"] == "1"
    assert lines[4]["request"]["seq"] is not None  # the request as sent, with its AY


def test_probe_refused_checkout_exits_1_with_the_ils_message(peer: PeerServer) -> None:
    code, lines, _ = probe(*_login(*peer.address), "--checkout", "B0007", "--patron", "R0001")
    assert code == 1
    out = lines[-1]
    assert out["exchange"] == "checkout" and out["ok"] is False
    assert out["screen_message"] == ["ITEM CHARGED TO ANOTHER PATRON"]


def test_probe_lost_answer_is_resolved_by_item_information(peer: PeerServer,
                                                           tmp_path: Path) -> None:
    # a profile that sends the 18-space nb due date: pysip2 drops the connection unanswered
    prof = tmp_path / "blank.toml"
    prof.write_text('name = "blank-dates"\nbase = "pysip2"\nblank_dates_ok = true\n')
    args = _login(*peer.address)
    args[args.index("pysip2")] = str(prof)
    code, lines, err = probe(*args, "--checkout", "B0009", "--patron", "R0001")
    assert code == 1, err
    out = lines[-1]
    assert out["exchange"] == "checkout" and out["ok"] is False and out["lost"] is True
    assert out["resolved_by"] == "item_information"
    assert out["outcome"] == "not_applied" and out["charged"] is False
    assert out["resolution"]["fixed"]["circulation_status"] == "03"
    assert "Traceback" not in err


def test_probe_lost_answer_after_the_ils_applied_it(tmp_path: Path) -> None:
    with FakeACS() as acs:
        acs.faults = ["silent_after"]
        code, lines, err = probe("--host", "127.0.0.1", "--port", str(acs.port), "--user", "sc",
                                 "--password", "secret", "--location", "MAIN",
                                 "--institution", INSTITUTION, "--timeout", "0.5",
                                 "--checkout", "X1", "--patron", "P1")
    assert code == 1, err
    out = lines[-1]
    assert out["lost"] is True and out["error"] == "RequestTimeout"
    assert out["resolved_by"] == "item_information+patron_information"
    assert out["outcome"] == "applied"
    assert acs.codes().count("11") == 1


def test_probe_login_refused_and_unreachable(peer: PeerServer) -> None:
    args = _login(*peer.address)
    args[args.index("secret")] = "wrong"
    code, lines, _ = probe(*args)
    assert code == 1 and lines == [lines[0]] and lines[0]["error"] == "LoginRefused"
    with socket.create_server(("127.0.0.1", 0)) as s:
        free = s.getsockname()[1]
    code, lines, _ = probe(*_login("127.0.0.1", free), "--timeout", "1")
    assert code == 1 and lines[0]["ok"] is False and lines[0]["error"] == "ConnectFailed"


@pytest.mark.parametrize("bad", [
    ["--checkout", "B0001"],  # no --patron
    ["--profile", "no-such-profile"],
    ["--encoding", "latin-1"],
    ["--terminator", "lf"],
    ["--timeout", "0"],
    ["--port", "70000"],
])
def test_probe_bad_arguments_exit_2(bad: list[str]) -> None:
    args = _login("127.0.0.1", 1)
    for i in range(0, len(bad), 2):
        flag = bad[i]
        if flag in args:
            args[args.index(flag) + 1] = bad[i + 1]
        else:
            args += bad[i:i + 2]
    code, lines, err = probe(*args)
    assert code == 2 and lines == [] and "error" in err


def test_probe_missing_required_argument_exits_2() -> None:
    code, _, err = probe("--host", "127.0.0.1")
    assert code == 2 and "--port" in err
