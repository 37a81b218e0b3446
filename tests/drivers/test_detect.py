"""`lendbox diag detect` finds each family on its bus with read-only probes — and never
pulses a lock. Real simulator over real sockets (socket:// URLs: the simulator paces at the
bus's configured rate whatever baud rate the probe asks for, so line settings are reported
as not verified)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.detect import FAMILY_ORDER, PROBES, _unsafe, detect, parse_addresses, probe_frames
from drivers.hardware import Hardware
from lendbox.cli import main

from .conftest import ROOT, SMALL, start_sim

MIXED = ROOT / "simulator/cabinets/mixed.toml"


class _Cabinets:
    """mixed.toml and small.toml running, with every coil pulse of the model recorded."""

    def __init__(self) -> None:
        self.sims = {"mixed": start_sim(MIXED), "small": start_sim(SMALL)}
        self.pulses: list[tuple[int, int]] = []
        for sim in self.sims.values():
            real = sim.model.pulse

            def pulse(board: int, lock: int, pulse_s: float, real: Any = real) -> Any:
                self.pulses.append((board, lock))
                return real(board, lock, pulse_s)

            sim.model.pulse = pulse  # type: ignore[method-assign]

    def url(self, cabinet: str, bus: str) -> str:
        return self.sims[cabinet].bus_urls[bus]

    def assert_no_lock_moved(self) -> None:
        assert self.pulses == []
        for sim in self.sims.values():
            doors = sim.state()["doors"]
            assert all(d["latched"] and not d["open"] for d in doors), doors
        mixed = self.sims["mixed"]
        for bus in ("kerong-1", "cn485-1"):
            assert [b.pulse_count for b in mixed.buses[bus].boards] == [0]
        assert mixed.buses["modbus-1"].device.pulses == []

    def stop(self) -> None:
        for sim in self.sims.values():
            sim.stop()


@pytest.fixture(scope="module")
def cabinets() -> Iterator[_Cabinets]:
    c = _Cabinets()
    try:
        yield c
    finally:
        c.stop()


#: (cabinet, bus, family, addresses, line)
BUSES = [
    ("small", "usb-1", "lendbox", [1], "115200 8N1"),
    ("mixed", "cn485-1", "cn485", [2], "9600 8N1"),
    ("mixed", "kerong-1", "kerong", [1], "19200 8N1"),
    ("mixed", "modbus-1", "modbus", [3], "9600 8N1"),
    ("mixed", "feig-1", "feig", [0], "38400 8E1"),
    ("mixed", "rr3036-1", "rr3036", [1, 2], "19200 8N1"),
]


@pytest.mark.parametrize(("cabinet", "bus", "family", "addresses", "line"), BUSES,
                         ids=[b[2] for b in BUSES])
def test_each_family_is_detected(cabinets: _Cabinets, capsys, cabinet: str, bus: str,  # type: ignore[no-untyped-def]
                                 family: str, addresses: list[int], line: str) -> None:
    url = cabinets.url(cabinet, bus)
    code = main(["diag", "detect", "--port", url, "--addresses", "0-3", "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 0 and report["passed"]
    assert [f["family"] for f in report["found"]] == [family]
    found = report["found"][0]
    assert found["addresses"] == addresses and found["line"] == line
    assert found["line_verified"] is False  # socket://: the simulator paces at its own rate
    assert any("not verified" in n for n in report["notes"])
    # progress on stderr: every family before this one was tried, then this one
    tried = [t["family"] for t in report["tried"]]
    assert tried == list(FAMILY_ORDER[: FAMILY_ORDER.index(family) + 1])
    assert f"… {family} at {line}: " in captured.err
    # the snippet is a working hardware config for what was found
    raw = tomllib.loads(report["hardware_config"])
    assert raw["buses"] == [{"name": f"{family}-1", "url": url, "family": family,
                             "baudrate": int(line.split()[0])}]
    with Hardware.from_dict(raw) as hw:
        if PROBES[family].kind == "board":
            assert sorted(hw.boards) == addresses
            for board in hw.boards.values():
                board.states()
        else:
            assert [r.address for r in hw.readers.values()] == addresses  # type: ignore[attr-defined]
            for reader in hw.readers.values():
                reader.inventory(1)
    cabinets.assert_no_lock_moved()


def test_versions_are_reported(cabinets: _Cabinets) -> None:
    lendbox = detect(cabinets.url("small", "usb-1"), families=["lendbox"], addresses=[1])
    assert lendbox.found[0].devices == [{"address": 1, "serial": "LB04T0000001",
                                         "firmware": "1.0.0", "protocol": "1.0", "locks": 4,
                                         "antennas": 4}]
    rr = detect(cabinets.url("mixed", "rr3036-1"), families=["rr3036"], addresses=[1])
    assert rr.found[0].devices[0]["firmware"] == "3.01"
    feig = detect(cabinets.url("mixed", "feig-1"), families=["feig"], addresses=[0])
    assert "STATUS 0x80" in str(feig.found[0].devices[0]["note"])  # the emulator has no [0x65]
    cn = detect(cabinets.url("mixed", "cn485-1"), families=["cn485"], addresses=[2])
    assert cn.found[0].devices[0]["channels"] == 24


def test_detection_never_pulses_a_lock(cabinets: _Cabinets) -> None:
    """Every family's probes on every lock-board bus (and the lendbox bus), every address
    of every board there: no coil is pulsed, no door unlatched."""
    for cabinet, bus, board in (("mixed", "kerong-1", 1), ("mixed", "cn485-1", 2),
                                ("mixed", "modbus-1", 3), ("small", "usb-1", 1)):
        report = detect(cabinets.url(cabinet, bus), addresses=[board, board + 1],
                        every_family=True, timeout_s=0.05)
        assert len(report.found) == 1 and report.found[0].addresses == [board]
        assert report.probes_sent >= 11
        assert {t["family"] for t in report.tried} == set(FAMILY_ORDER)
    cabinets.assert_no_lock_moved()


def test_every_probe_frame_is_read_only_for_every_family() -> None:
    """Fed to every family's device-side decoder, no probe (for any address) reads as an
    unlock, open, coil write or tag write — not even from a byte inside it."""
    frames = probe_frames(FAMILY_ORDER, range(256))
    assert len(frames) > 1000
    assert [f.hex(" ") for f in frames if _unsafe(f)] == []
    # the check itself sees unlocks of every lock family
    from firmware_protocol import cn485, kerong, modbus_rtu

    for unlock in (cn485.encode_request(cn485.Open(board=1, lock=1)),
                   kerong.encode_request(kerong.Unlock(unit=0, lock=1)),
                   modbus_rtu.encode_request(modbus_rtu.WriteSingle(
                       unit=1, function=5, address=0, value=0xFF00))):
        assert _unsafe(b"\x00" + unlock)


def test_nothing_found_and_bad_usage(cabinets: _Cabinets, capsys) -> None:  # type: ignore[no-untyped-def]
    url = cabinets.url("mixed", "kerong-1")
    code = main(["diag", "detect", "--port", url, "--families", "lendbox,feig",
                 "--addresses", "1-2"])
    out = capsys.readouterr().out
    assert code == 1 and "no device answered (tried lendbox 115200 8N1; feig 38400 8E1)" in out
    assert out.splitlines()[-1] == "NOTHING FOUND"
    assert main(["diag", "detect", "--port", "socket://127.0.0.1:1", "--families",
                 "kerong"]) == 1
    assert "cannot open socket://127.0.0.1:1" in capsys.readouterr().out
    assert main(["diag", "detect", "--port", url, "--families", "zigbee"]) == 2
    assert "unknown family zigbee" in capsys.readouterr().err
    assert main(["diag", "detect", "--port", url, "--addresses", "5-1"]) == 2
    assert main(["diag", "devices"]) == 2
    assert "needs --hardware" in capsys.readouterr().err
    assert parse_addresses("0,3,5-7") == [0, 3, 5, 6, 7]


def test_text_report_has_a_config_snippet(cabinets: _Cabinets, capsys) -> None:  # type: ignore[no-untyped-def]
    url = cabinets.url("mixed", "cn485-1")
    code = main(["diag", "detect", "--port", url, "--families", "cn485", "--addresses", "2",
                 "--bus-name", "locks-a"])
    out = capsys.readouterr().out
    assert code == 0 and out.splitlines()[-1] == "FOUND"
    assert (f"port {url}: cn485 board(s) at 9600 8N1 (line settings not verified over "
            "socket://), answering read board 80 BB 00 33") in out
    assert "  address 2: channels 24, status_bytes 3" in out
    assert 'name = "locks-a"' in out and "[[boards]]\naddress = 2\nbus = \"locks-a\"" in out
