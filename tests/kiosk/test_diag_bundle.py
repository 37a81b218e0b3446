"""The diagnostics bundle (kiosk.diag_bundle) of a real kiosk runtime on the simulator.

What a technician (and the library's data-protection officer) notices: the zip carries the
config without any secret, the devices and their counters, events and logs with reader ids
and card numbers replaced by hashes, and a ledger check that is clean on a healthy cabinet
and names the damage on a tampered one — also from ``lendbox kiosk bundle`` on a stopped
cabinet.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.config import KioskConfig, load_config
from kiosk.diag_bundle import (
    REDACTED,
    build_bundle,
    build_offline_bundle,
    install_log_ring,
    ledger_integrity,
    redact_config,
    scrub_text,
    summary,
)
from kiosk.ledger import NewEvent
from kiosk.runtime import KioskRuntime
from kiosk.tech_auth import set_technician_hash
from lendbox.kiosk_kit import write_kiosk_config
from simulator import Simulator
from syncproto.grants import log_id

SMALL = Path(__file__).resolve().parents[2] / "simulator" / "cabinets" / "small.toml"
READER = "R20240001"
CARD = "04A1B2C3D4E5F6"
PASSWORD = "a technician password"


def _public_key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def cabinet(tmp_path: Path) -> Iterator[tuple[Any, KioskRuntime, str]]:
    sim = Simulator.from_file(SMALL, control_port=None).start()
    runtime: KioskRuntime | None = None
    try:
        trusted = _public_key()
        cfg = write_kiosk_config(tmp_path / "kiosk.toml", sim, data_dir=tmp_path / "data",
                                 server_url="http://127.0.0.1:9", trusted_keys={"k1": trusted})
        set_technician_hash(cfg, PASSWORD)
        runtime = KioskRuntime(load_config(cfg), sync=False).start()
        yield sim, runtime, trusted
    finally:
        if runtime is not None:
            runtime.stop()
        sim.stop()


def _files(data: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        return {n: z.read(n).decode("utf-8") for n in z.namelist()}


def _reader_events(runtime: KioskRuntime) -> None:
    assert runtime.ledger is not None
    runtime.ledger.append([
        NewEvent("session", {"session": "s1", "outcome": "ok", "reader_id": READER}),
        NewEvent("alarm", {"reason": "door_left_open", "door": 2}),
    ])


def test_the_bundle_has_no_secret_and_hashes_readers_and_cards(
        cabinet: tuple[Any, KioskRuntime, str]) -> None:
    _, runtime, trusted = cabinet
    _reader_events(runtime)
    install_log_ring()
    logging.getLogger("kiosk.test").warning("card %s of reader_id=%s refused", CARD, READER)
    files = _files(build_bundle(runtime))
    everything = "\n".join(files.values())
    stored = runtime.config.technician.password_hash  # type: ignore[union-attr]
    for secret in (stored, stored.split("$")[2], stored.split("$")[3], trusted,
                   runtime.private_key_b64):
        assert secret not in everything
    assert READER not in everything and CARD not in everything
    assert "#" + log_id(READER) in files["events.json"]
    log = files["logs/kiosk.log"]
    assert "#" + log_id(CARD) in log and "#" + log_id(READER) in log
    config = json.loads(files["config.json"])
    assert config["technician"]["password_hash"] == REDACTED
    assert config["server"]["trusted_keys"] == REDACTED
    assert config["server"]["url"] == "http://127.0.0.1:9"  # what is not secret stays
    assert [a["payload"]["reason"] for a in json.loads(files["alarms.json"])] == ["door_left_open"]
    devices = json.loads(files["devices.json"])
    board = devices["boards"][0]
    assert board["info"]["serial"] == "LB04T0000001" and board["counters"]["frames_ok"] > 0
    integrity = json.loads(files["ledger-integrity.json"])
    assert integrity["ok"] and integrity["last_seq"] == runtime.ledger.last_seq()  # type: ignore[union-attr]


def test_summary_is_json_with_devices_counters_verdict_and_integrity(
        cabinet: tuple[Any, KioskRuntime, str]) -> None:
    sim, runtime, _ = cabinet
    head = json.loads(json.dumps(summary(runtime)))
    assert head["cabinet"] == "small-0001"
    assert head["devices"] == {"board 1": "ok"}
    assert head["counters"]["board 1"]["counters"]["uptime_s"] >= 0
    assert head["ledger"]["ok"] is True and head["verdict"]["checked"] == ["devices", "self-test"]
    # healthy parts (a heavily loaded test machine may still add a slow-bus finding)
    assert not [f for f in head["verdict"]["faults"] if "door" in f or "antenna" in f]
    sim.detune_antenna(3)  # a fault the device check sees: the verdict names it
    head = summary(runtime)
    assert head["verdict"]["passed"] is False
    assert any("antenna 3" in f for f in head["verdict"]["findings"]), head["verdict"]


def _tamper(config: KioskConfig) -> None:
    db = sqlite3.connect(config.data_dir / "ledger.db")
    with db:
        db.execute("DELETE FROM events WHERE seq = 2")
    db.close()


def test_a_tampered_ledger_is_reported_by_the_offline_bundle_and_the_command(
        cabinet: tuple[Any, KioskRuntime, str], tmp_path: Path) -> None:
    _, runtime, _ = cabinet
    _reader_events(runtime)
    runtime.ledger.append([NewEvent("alarm", {"reason": "door_left_open", "door": 1})])  # type: ignore[union-attr]
    assert ledger_integrity(runtime.ledger)["ok"]  # type: ignore[arg-type]
    config = runtime.config
    runtime.stop()
    clean = json.loads(_files(build_offline_bundle(config, devices=False))["summary.json"])
    assert clean["verdict"]["passed"] is True
    _tamper(config)
    files = _files(build_offline_bundle(config, devices=False))
    head = json.loads(files["summary.json"])
    assert head["ledger"]["ok"] is False
    assert "events: sequences 2..2 are missing" in head["ledger"]["problems"]
    assert head["verdict"]["passed"] is False
    out = tmp_path / "out.zip"
    log = tmp_path / "kiosk.log"
    log.write_text(f"2026-01-01 WARNING kiosk: reader_id={READER} card {CARD}\n")
    done = subprocess.run([sys.executable, "-m", "lendbox.cli", "kiosk", "bundle", "--config",
                           str(config.path), "-o", str(out), "--log", str(log)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "sequences 2..2 are missing" in done.stdout and "FAULT" in done.stdout
    files = _files(out.read_bytes())
    assert READER not in files["logs/kiosk.log"] and CARD not in files["logs/kiosk.log"]
    assert json.loads(files["devices.json"])["boards"][0]["availability"] == "ok"


def test_the_command_refuses_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "k.toml"
    bad.write_text("[cabinet]\nid = 1\n")
    done = subprocess.run([sys.executable, "-m", "lendbox.cli", "kiosk", "bundle", "--config",
                           str(bad), "-o", str(tmp_path / "o.zip")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and not (tmp_path / "o.zip").exists()
    assert "problem" in done.stdout


def test_redact_config_hides_every_secret_like_key() -> None:
    text = """[server]
url = "https://lib.example"
trusted_keys = { k1 = "AAAA" }
api_token = "tok"
[technician]
password_hash = "scrypt$..."
[[boards]]
address = 1
options = { private_key = "pk", speed = 3 }
"""
    out = redact_config(text)
    assert out["server"] == {"url": "https://lib.example", "trusted_keys": REDACTED,
                             "api_token": REDACTED}
    assert out["technician"]["password_hash"] == REDACTED
    assert out["boards"][0]["options"] == {"private_key": REDACTED, "speed": 3}
    with pytest.raises(ValueError):
        redact_config("not = [toml")


reader_ids = st.from_regex(r"R[0-9A-Za-z_-]{3,20}", fullmatch=True)
numbers = st.from_regex(r"[0-9]{8,24}", fullmatch=True)
noise = st.text(st.characters(min_codepoint=1, max_codepoint=0xD7FF), max_size=30)


@settings(max_examples=150, deadline=None)
@given(reader_ids, numbers, noise, st.sampled_from(["reader_id=", "reader: ", "patron ",
                                                     "card=", "barcode: "]))
def test_scrub_text_never_lets_a_reader_or_card_number_through(rid: str, number: str,
                                                               text: str, field: str) -> None:
    line = f"{text} {field}{rid} {text} {number} {text}"
    out = scrub_text(line)
    assert f"{field}{rid}" not in out
    assert number not in out
    assert scrub_text(out) == out  # scrubbing twice changes nothing
