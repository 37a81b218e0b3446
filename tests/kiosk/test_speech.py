"""Spoken prompts (kiosk/speech.py, GET /screen/speech.wav) from a real kiosk process.

What a listener notices: the sentence the screen shows is spoken, in Mandarin or English
(two different recordings), quickly the second time (cached), and a cabinet without
espeak-ng says so instead of failing; a wrong request is a 400, never a 500.
"""

from __future__ import annotations

import io
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kiosk.messages import message
from kiosk.speech import VOICES, Speech, SpeechUnavailable
from lendbox.child import ReadyChild
from lendbox.kiosk_kit import write_kiosk_config
from simulator import Simulator

SMALL = Path(__file__).resolve().parents[2] / "simulator" / "cabinets" / "small.toml"
ESPEAK = shutil.which("espeak-ng")
needs_espeak = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng not installed "
                                  "(./scripts/test installs it)")


def _duration(wav: bytes) -> float:
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE", wav[:16]
    with wave.open(io.BytesIO(wav)) as w:
        return w.getnframes() / w.getframerate()


@pytest.fixture(scope="module")
def kiosks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two stand-alone kiosks on one simulator's config: one with espeak-ng on its PATH,
    one whose PATH has no espeak-ng (a cabinet without a speech engine)."""
    tmp = tmp_path_factory.mktemp("speech")
    sim = Simulator.from_file(SMALL, control_port=None).start()
    started: list[ReadyChild] = []
    try:
        urls = {}
        for name, env in (("espeak", {}), ("silent", {"PATH": str(tmp / "empty-bin")})):
            cfg = write_kiosk_config(tmp / f"{name}.toml", sim, data_dir=tmp / name)
            child = ReadyChild(["kiosk", "run", str(cfg)], "kiosk ready ",
                               log=tmp / f"{name}.log", env=env)
            child.start(30)
            started.append(child)
            urls[name] = child.url.rstrip("/")
        urls["cache"] = str(tmp / "espeak" / "speech")
        yield urls
    finally:
        for child in started:
            child.stop()
        sim.stop()


@needs_espeak
def test_a_prompt_is_spoken_in_both_languages_and_cached(kiosks: dict[str, str]) -> None:
    url = kiosks["espeak"] + "/screen/speech.wav"
    with httpx.Client(timeout=30) as http:
        zh = http.get(url, params={"key": "door.open", "lang": "zh", "door": "3"})
        assert zh.status_code == 200, zh.text
        assert zh.headers["content-type"] == "audio/wav"
        en = http.get(url, params={"key": "door.open", "lang": "en", "door": "3"})
        assert _duration(zh.content) > 0.3 and _duration(en.content) > 0.3
        assert zh.content != en.content
        cache = Path(kiosks["cache"])
        cached = sorted(cache.glob("*.wav"))
        assert len(cached) == 2
        stamps = {p: p.stat().st_mtime_ns for p in cached}
        again = http.get(url, params={"key": "door.open", "lang": "zh", "door": "3"})
        assert again.content == zh.content
        assert {p: p.stat().st_mtime_ns for p in cache.glob("*.wav")} == stamps  # not re-made
        # the parameter is spoken: another door is another recording
        other = http.get(url, params={"key": "door.open", "lang": "zh", "door": "4"})
        assert other.status_code == 200 and other.content != zh.content


def test_bad_requests_are_400_with_a_reason(kiosks: dict[str, str]) -> None:
    url = kiosks["espeak"] + "/screen/speech.wav"
    with httpx.Client(timeout=30) as http:
        unknown = http.get(url, params={"key": "no.such.key", "lang": "zh"})
        assert unknown.status_code == 400
        assert unknown.text == message("services.speech_unknown", "zh")
        assert http.get(url, params={"key": "door.open", "lang": "fr"}).status_code == 400
        assert http.get(url, params={"lang": "en"}).text == message("services.speech_unknown",
                                                                    "en")
        empty = http.get(url, params={"key": "session.ended", "lang": "en"})
        assert (empty.status_code, empty.text) == (400, message("services.speech_empty", "en"))
        long = http.get(url, params={"key": "door.open", "lang": "en", "door": "9" * 500})
        assert (long.status_code, long.text) == (400, message("services.speech_params", "en"))


def test_a_cabinet_without_espeak_says_so(kiosks: dict[str, str]) -> None:
    got = httpx.get(kiosks["silent"] + "/screen/speech.wav",
                    params={"key": "door.open", "lang": "zh", "door": "1"}, timeout=30)
    assert (got.status_code, got.text) == (404, message("services.speech_none", "zh"))


def test_the_voices_are_mandarin_pinyin_and_english(tmp_path: Path) -> None:
    assert VOICES == {"zh": "cmn-latn-pinyin", "en": "en"}
    with pytest.raises(SpeechUnavailable, match="not installed"):
        Speech(tmp_path, engine=None).wav("你好", "zh")
    with pytest.raises(KeyError):
        Speech(tmp_path, engine=None).wav("hello", "fr")
