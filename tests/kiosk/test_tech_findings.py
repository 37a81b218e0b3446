"""A technician can read every diagnostic finding in Chinese or English.

``drivers.diag`` gives each finding a ``code`` and ``params`` beside its English message
(which ``lendbox diag`` keeps printing); the technician pages render ``tech.finding.<code>``
from the catalogue. The static tests read drivers/diag.py itself, so a finding added there
without a code, or a code without both sentences, fails here rather than showing English on
a Chinese page. The live test runs a real self-test on the simulator and checks that the
catalogue's English is the driver's English, word for word.
"""

from __future__ import annotations

import ast
import html
import re
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import diag
from drivers.diag import Finding, Severity, inventory_report, run_selftest
from drivers.hardware import Hardware
from firmware_protocol.const import PartKind, PartStatus
from kiosk.messages import CATALOGUE
from kiosk.screens import Prefs
from kiosk.screens_tech import _findings, finding_html
from kiosk.tech_subjects import subject_html
from simulator import Simulator
from tests.drivers.conftest import TWO_BOARDS, start_sim

ROOT = Path(__file__).resolve().parents[2]
DIAG = ROOT / "drivers/diag.py"
CJK = re.compile(r"[\u4e00-\u9fff]")


def _add_calls() -> Iterator[ast.Call]:
    tree = ast.parse(DIAG.read_text(encoding="utf-8"), filename=str(DIAG))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add"):
            yield node


def _is_findings(call: ast.Call) -> bool:
    assert isinstance(call.func, ast.Attribute)
    return isinstance(call.func.value, ast.Name) and call.func.value.id == "out"


def _is_pass_through(call: ast.Call) -> bool:
    """The self-test re-adds test_unlock's findings: their code and params go along."""
    kw = {k.arg: ast.unparse(k.value) for k in call.keywords}
    return kw.get("code") == "f.code" and kw.get("params") == "f.params"


def _call_codes() -> list[tuple[int, str, frozenset[str]]]:
    """(line, code, param names) of every ``out.add(...)`` with a literal code."""
    rows = []
    for call in _add_calls():
        if not _is_findings(call) or _is_pass_through(call):
            continue
        kw = {k.arg: k.value for k in call.keywords}
        code, params = kw.get("code"), kw.get("params")
        if not (isinstance(code, ast.Constant) and isinstance(code.value, str)
                and isinstance(params, ast.Dict)):
            continue
        names = frozenset(k.value for k in params.keys
                          if isinstance(k, ast.Constant) and isinstance(k.value, str))
        rows.append((call.lineno, code.value, names))
    return rows


CALLS = _call_codes()
CODES: dict[str, frozenset[str]] = {code: names for _, code, names in CALLS}


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _conversions(template: str) -> set[str]:
    return {conv for _, name, _, conv in string.Formatter().parse(template)
            if name is not None and conv}


# ---------------------------------------------------------------- static: diag.py ↔ catalogue


def test_every_finding_in_diag_passes_a_literal_code_and_params() -> None:
    missing = []
    pass_through = 0
    for call in _add_calls():
        if not _is_findings(call):
            # a set's add, not a finding: one argument and nothing else
            assert len(call.args) == 1 and not call.keywords, ast.unparse(call)
            continue
        if _is_pass_through(call):
            pass_through += 1
            continue
        kw = {k.arg: k.value for k in call.keywords}
        code, params = kw.get("code"), kw.get("params")
        ok = (isinstance(code, ast.Constant) and isinstance(code.value, str)
              and re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", code.value) is not None
              and isinstance(params, ast.Dict)
              and all(isinstance(k, ast.Constant) and isinstance(k.value, str)
                      for k in params.keys))
        if not ok:
            missing.append(f"drivers/diag.py:{call.lineno}: {ast.unparse(call)[:90]}")
    assert missing == []
    assert pass_through == 1
    assert len(CALLS) >= 45 and len(CODES) >= 40  # the parser did find the findings


def test_a_code_always_carries_the_same_params() -> None:
    seen: dict[str, tuple[int, frozenset[str]]] = {}
    clashes = []
    for line, code, names in CALLS:
        first = seen.setdefault(code, (line, names))
        if first[1] != names:
            clashes.append(f"{code}: line {first[0]} {sorted(first[1])}, "
                           f"line {line} {sorted(names)}")
    assert clashes == []


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_has_both_sentences_with_its_params(code: str) -> None:
    key = "tech.finding." + code
    assert key in CATALOGUE, f"{key} missing from kiosk/messages_tech.py"
    zh, en = CATALOGUE[key]
    assert _placeholders(zh) == set(CODES[code]), ("zh", zh)
    assert _placeholders(en) == set(CODES[code]), ("en", en)
    assert not _conversions(zh) and not _conversions(en)


def test_no_catalogue_finding_lacks_its_code() -> None:
    orphans = {k for k in CATALOGUE if k.startswith("tech.finding.")} - {
        "tech.finding." + c for c in CODES}
    assert orphans == set()


def test_every_part_and_status_word_has_both_languages() -> None:
    for kind in PartKind:
        assert f"tech.part.{kind.name.lower()}" in CATALOGUE
    for status in PartStatus:
        if status is not PartStatus.OK:
            zh, en = CATALOGUE[f"tech.part_status.{status.name.lower()}"]
            assert en == status.name.lower().replace("_", " ") and CJK.search(zh)


# ---------------------------------------------------------------- rendering each code

#: A sample of each param a finding carries (the words of our own: every value, below).
SAMPLES: dict[str, object] = {
    "url": "/dev/ttyUSB0", "error": "timed out after 50 ms", "reason": "no PC/SC reader",
    "ms": 16, "device": "ttyUSB0", "lock": 2, "family": "kerong", "uid": "E004015012345678",
    "item_id": "31234000123", "seen": 2, "rounds": 3, "expected": 5, "times": 2,
    "permille": 450, "dbm": -40, "timeout_ms": 50, "percent": "12", "sw": "6A81",
    "seconds": "10", "frames": 40,
}
WORDS: dict[str, list[str]] = {
    "status": [s.name.lower().replace("_", " ") for s in PartStatus if s is not PartStatus.OK],
    "part": [k.name.lower().replace("_", " ") for k in PartKind],
}
#: identifiers and the driver's raw text: they stay as they are on a Chinese page
VERBATIM = ("/dev/ttyUSB0", "ttyUSB0", "kerong", "E004015012345678", "31234000123", "6A81")
#: technical abbreviations a Chinese technician reads as they are
ABBREVIATIONS = {"USB", "RS", "RFID", "QR", "ISBN", "SW", "GET", "DATA", "dBm"}


def _param_sets(code: str) -> Iterator[dict[str, object]]:
    names = CODES[code]
    assert names <= set(SAMPLES) | set(WORDS), f"add a sample for {names - set(SAMPLES)}"
    base = {n: SAMPLES[n] for n in names if n in SAMPLES}
    words = [n for n in names if n in WORDS]
    if not words:
        yield base
        return
    for n in words:
        for value in WORDS[n]:
            yield base | {w: WORDS[w][0] for w in words} | {n: value}


def _plain(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_finding_reads_in_chinese(code: str) -> None:
    for params in _param_sets(code):
        markup = finding_html(code, params, "zh")
        assert markup is not None
        text = _plain(markup)
        assert "{" not in text and "}" not in text, text
        assert CJK.search(text), text
        rest = re.sub(r"<span lang=en>.*?</span>", "", markup)  # the driver's raw text
        rest = re.sub(r"echo .*latency_timer", "", _plain(rest))  # a command to type
        for value in VERBATIM:
            rest = rest.replace(value, "")
        english = set(re.findall(r"[A-Za-z]+", rest)) - ABBREVIATIONS
        assert not english, (english, text)


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_finding_reads_in_english(code: str) -> None:
    for params in _param_sets(code):
        markup = finding_html(code, params, "en")
        assert markup is not None
        text = _plain(markup)
        assert "{" not in text and "}" not in text and not CJK.search(text), text
        assert "<span" not in markup  # the whole sentence is English already


@given(st.text(max_size=40))
def test_raw_driver_text_is_escaped_and_marked_english(error: str) -> None:
    assert finding_html("inventory_failed", {"error": error}, "zh") == (
        f"盘点失败：<span lang=en>{html.escape(error)}</span>")
    assert finding_html("inventory_failed", {"error": error}, "en") == (
        f"inventory failed: {html.escape(error)}")


def test_a_code_without_a_sentence_or_a_param_falls_back_visibly() -> None:
    assert finding_html("", {}, "zh") is None
    assert finding_html("no_such_code", {}, "zh") is None
    assert finding_html("lock_coil", {"status": "open circuit"}, "zh") == (
        "锁线圈断路——请检查 {lock} 号锁的接线")
    # a status word the catalogue does not know yet stays English, marked so
    assert finding_html("door_sensor", {"status": "melted"}, "zh") == (
        "门磁<span lang=en>melted</span>——请检查门磁接线")


# ---------------------------------------------------------------- subjects

SUBJECTS = [
    ("door 7", "7号门"),
    ("door 3, door 4", "3号门、4号门"),
    ("board 1", "控制板 1"),
    ("board 2 on rs485-1", "控制板 2（rs485-1）"),
    ("board 2 lock 3", "控制板 2 的 3 号锁"),
    ("board 2 sensor 3", "控制板 2 的 3 号门磁"),
    ("bus rs485-1", "总线 rs485-1"),
    ("reader feig-1 on rs485-2", "RFID 读写器 feig-1（rs485-2）"),
    ("antenna 3 (door 5)", "天线 3（5号门）"),
    ("antenna 1 (door 1, door 2)", "天线 1（1号门、2号门）"),
    ("antenna 2 of board 1", "控制板 1 的天线 2"),
    ("card reader", "读卡器"),
    ("camera", "摄像头"),
]


@pytest.mark.parametrize(("subject", "zh"), SUBJECTS)
def test_each_subject_form_reads_in_both_languages(subject: str, zh: str) -> None:
    assert subject_html(subject, "zh") == zh
    assert subject_html(subject, "en") == subject


@pytest.mark.parametrize("subject", ["gizmo 1", "door", "door 2 lock", "board x", ""])
def test_an_unknown_subject_form_is_left_to_the_english_fallback(subject: str) -> None:
    assert subject_html(subject, "zh") is None


def test_the_findings_list_keeps_the_english_subject_and_names_the_code() -> None:
    known = Finding(subject="door 2", message="lock pulsed, door sensor never changed — check "
                    "lock 2 wiring", code="sensor_never_changed", params={"lock": 2})
    odd = Finding(subject="gizmo 1", message="odd <noise>", severity=Severity.WARNING)
    zh = _findings(Prefs(lang="zh"), [known, odd], list_id="x")
    assert ('<li class=fault data-subject="door 2" data-code="sensor_never_changed">' in zh)
    assert "<strong>2号门</strong>：已拉动锁舌，门磁始终未变化——请检查 2 号锁的接线</li>" in zh
    assert ('<strong><span lang=en>gizmo 1</span></strong>：'
            '<span lang=en>odd &lt;noise&gt;</span>') in zh
    en = _findings(Prefs(lang="en"), [known], list_id="x")
    assert "<strong>door 2</strong>: lock pulsed, door sensor never changed — check lock 2 " \
           "wiring</li>" in en


# ---------------------------------------------------------------- live: the simulator

#: Codes whose English in the catalogue words a count differently from the driver (which
#: says "1 inventory" / "3 inventories"; the catalogue has one sentence for both).
PLURAL_REWORDED = {"item_missing", "item_missing_or_undecodable", "tags_missing"}


@pytest.fixture
def faulty() -> Iterator[tuple[Simulator, Hardware]]:
    sim = start_sim(TWO_BOARDS)
    hw = Hardware.from_dict(sim.hardware_config(), backoff_s=(0.05, 0.2))
    try:
        yield sim, hw
    finally:
        hw.close()
        sim.stop()


def test_real_findings_read_in_both_languages(faulty: tuple[Simulator, Hardware]) -> None:
    sim, hw = faulty
    sim.break_lock_wiring(5)
    sim.break_door_sensor(3)
    sim.detune_antenna(4, 450)
    sim.set_antenna_noise(2, -40)
    sim.force_door(6)
    sim.corrupt_tag_memory(sim.door_items(1)[0].item_id)
    for _ in range(2):
        sim.power_cut(1)
        sim.power_restore(1)
    findings = list(run_selftest(hw, link_probes=3).findings)
    findings += diag.test_unlock(hw, 5, watch_s=0.3).findings  # coil cut: jammed
    findings += diag.test_unlock(hw, 3, watch_s=0.3).findings  # sensor cut: blames the lock
    findings += diag.test_unlock(hw, 3, watch_s=0.3, sensor_broken=True).findings
    findings += inventory_report(hw, 1, expect=["no-such-item"], expect_count=99).findings
    codes = {f.code for f in findings}
    assert {"lock_coil", "door_sensor", "antenna_detuned", "antenna_noisy", "forced_open",
            "tag_undecodable", "power_lost", "lock_jammed", "sensor_never_changed",
            "sensor_did_not_follow", "item_missing_or_undecodable", "tags_missing"} <= codes, \
        findings
    for f in findings:
        assert f.code in CODES, f
        assert subject_html(f.subject, "en") == html.escape(f.subject), f
        assert CJK.search(subject_html(f.subject, "zh") or ""), f
        zh = finding_html(f.code, f.params, "zh")
        assert zh is not None and CJK.search(zh) and "{" not in zh, f
        if f.code not in PLURAL_REWORDED:
            assert finding_html(f.code, f.params, "en") == html.escape(f.message), f
