"""Spoken prompts: a catalogue sentence (``kiosk.messages``) as a WAV file, in Mandarin or English.

Why espeak-ng and not recorded clips: every prompt is a catalogue sentence with parameters
("door {door} is open", titles, dates), so a fixed set of recordings could not say most of
them, and every new or reworded sentence would need a new recording in two languages.
espeak-ng is a small Debian package, runs offline on the cabinet's own CPU (tens of
milliseconds per sentence), and speaks both languages from the same text the screen shows.
The price is a robotic voice; a library that wants recorded clips for its fixed sentences can
put WAV files into the cache folder under the same names (see :meth:`Speech.path`).

Voices: ``cmn-latn-pinyin`` for Mandarin — espeak-ng's plain ``cmn``/``zh`` voice spells many
characters out as English-read pinyin, while ``cmn-latn-pinyin`` gives Mandarin phonemes —
and ``en`` for English. The text goes to espeak-ng on stdin (never as an argument: a text
starting with ``-`` would be an option) without SSML, and is written with ``-w`` (``--stdout``
puts a placeholder length in the WAV header).

Cache: ``<data_dir>/speech/<sha256(voice, text)>.wav``, written to a temporary file and then
renamed, so a half-written file is never served. The cache keeps at most
:data:`MAX_CACHED` files (the oldest go first): sentences with parameters could otherwise
grow it without end.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["MAX_CACHED", "VOICES", "Speech", "SpeechUnavailable"]

#: Screen language → espeak-ng voice.
VOICES = {"zh": "cmn-latn-pinyin", "en": "en"}
MAX_CACHED = 500
_TIMEOUT_S = 20.0


class SpeechUnavailable(Exception):
    """No speech engine (espeak-ng is not installed) or it failed; the message says which."""


class Speech:
    """Renders and caches spoken sentences in ``cache_dir``.

    ``engine``: the espeak-ng executable (default: found on ``PATH``; None: no speech).
    """

    def __init__(self, cache_dir: Path, engine: str | None = "") -> None:
        self.cache_dir = cache_dir
        self.engine = shutil.which("espeak-ng") if engine == "" else engine

    def path(self, text: str, lang: str) -> Path:
        """Where the sentence's WAV is (or would be) cached."""
        voice = VOICES[lang]
        digest = hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()
        return self.cache_dir / f"{digest}.wav"

    def wav(self, text: str, lang: str) -> Path:
        """The cached WAV of ``text`` spoken in ``lang`` ("zh" or "en"), rendered on first
        use. KeyError for another language; SpeechUnavailable without an engine."""
        target = self.path(text, lang)
        if target.exists():
            return target
        if not self.engine:
            raise SpeechUnavailable("espeak-ng is not installed on this cabinet")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".wav.tmp", dir=self.cache_dir)
        os.close(fd)
        try:
            done = subprocess.run([self.engine, "-v", VOICES[lang], "-w", tmp, "--stdin"],
                                  input=text.encode("utf-8"), capture_output=True,
                                  timeout=_TIMEOUT_S, check=False)
            if done.returncode != 0 or Path(tmp).stat().st_size <= 44:
                raise SpeechUnavailable(f"espeak-ng failed (exit {done.returncode})")
            os.replace(tmp, target)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SpeechUnavailable(f"espeak-ng failed: {type(exc).__name__}") from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        self._prune()
        return target

    def _prune(self) -> None:
        try:
            files = sorted(self.cache_dir.glob("*.wav"), key=lambda p: p.stat().st_mtime)
        except FileNotFoundError:  # another request pruned at the same moment
            return
        for old in files[:max(0, len(files) - MAX_CACHED)]:
            old.unlink(missing_ok=True)
