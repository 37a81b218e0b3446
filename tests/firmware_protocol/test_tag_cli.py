"""`lendbox tag decode|encode`, through lendbox.cli.main and once through the real console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lendbox.cli import main

DDM_VECTOR = "11010131313232333334340000000000000000513e4445373035000000000000"
LENDBOX = Path(sys.executable).with_name("lendbox")


def test_decode_part3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tag", "decode", "--hex", DDM_VECTOR]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"primary_item_id": "11223344", "owner_library": "DE-705", "set_info": [1, 1],
                   "type_of_usage": 1, "standard": "28560-3", "other": {"version": 1}}


def test_encode_then_decode_part2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tag", "encode", "--item-id", "3090012345", "--isil", "CN-110000-1",
                 "--set", "2/3", "--usage", "0x10",
                 "--element", "shelf_location=I247.5/123"]) == 0
    hex_memory = capsys.readouterr().out.strip()
    assert main(["tag", "decode", "--hex", hex_memory, "--dsfid", "06"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"primary_item_id": "3090012345", "owner_library": "CN-110000-1",
                   "set_info": [2, 3], "type_of_usage": 16, "standard": "28560-2",
                   "other": {"shelf_location": "I247.5/123"}}


def test_undecodable_memory_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tag", "decode", "--hex", "00" * 32]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: BlankTag") and err.count("\n") == 1


def test_bad_crc_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    bad = DDM_VECTOR[:38] + "52" + DDM_VECTOR[40:]
    assert main(["tag", "decode", "--hex", bad]) == 1
    assert "TagCrcError" in capsys.readouterr().err


def test_bad_hex_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tag", "decode", "--hex", "0xZZ"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_encode_json_part3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tag", "encode", "--item-id", "11223344", "--isil", "DE-705", "--usage", "1",
                 "--standard", "28560-3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"dsfid": "3e", "memory": DDM_VECTOR}


def test_encode_unfit_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tag", "encode", "--item-id", "X" * 17, "--standard", "28560-3"]) == 2
    assert capsys.readouterr().err.startswith("error:")


@pytest.mark.skipif(not LENDBOX.exists() and shutil.which("lendbox") is None,
                    reason="the lendbox console script is not installed in this environment")
def test_console_script_subprocess() -> None:
    exe = str(LENDBOX) if LENDBOX.exists() else str(shutil.which("lendbox"))
    ok = subprocess.run([exe, "tag", "decode", "--hex", DDM_VECTOR],
                        capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["owner_library"] == "DE-705"
    bad = subprocess.run([exe, "tag", "decode", "--hex", "nothex"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
