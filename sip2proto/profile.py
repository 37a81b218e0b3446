"""Per-ILS profiles: every way a real SIP2 peer departs from the spec, as one named switch.

Strict on send, lenient on receive: ``encode`` always writes spec-shaped frames in the
profile's encoding, terminator and checksum mode; ``decode``/``Parser`` accept the departures the
profile names, and nothing else. See docs/sip2.md for the table and how to write a profile.
"""

from __future__ import annotations

import codecs
import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import ProfileError

__all__ = ["Profile", "PROFILES", "load_profile", "profile_from_dict"]

ChecksumMode = Literal["on", "off", "lenient"]
_CHECKSUM_MODES = ("on", "off", "lenient")
_TERMINATORS = {"cr": b"\r", "crlf": b"\r\n"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """How one ILS (or one ILS account) speaks SIP2.

    Attributes:
        name: label shown in logs and the probe.
        encoding: Python codec name of the text on the wire ("utf-8", "gb18030", "cp850" …).
        terminator: what ``encode`` appends and ``Parser`` splits on: b"\\r" or b"\\r\\n".
        lenient_terminator: on receive, any of CR, LF, CRLF ends a frame (and an empty frame
            between them is skipped); off, exactly ``terminator`` does, and a stray CR/LF inside
            a frame is a FramingError.
        checksum: "on" sends AY/AZ and requires a correct AZ on receive; "off" sends none and
            ignores (strips without checking) any received; "lenient" sends AY/AZ, accepts a frame
            with no AZ, and still rejects a wrong AZ (a wrong checksum means corruption, the
            case the 96/97 resend exists for).
        field_delimiter: one ASCII character ending each variable field.
        institution_prefix_items: item ids (AB) travel as ``<AO><item_prefix_separator><id>``:
            ``encode`` prefixes the message's AO, ``decode`` removes that exact prefix.
        item_prefix_separator: see above ("." as dp2Capo's ``CN-00000-1-ZG.B001``).
        blank_dates_ok: an 18-space fixed date field is accepted on receive (decoded as None by
            ``parse_date``) and may be sent; otherwise it is a FieldError / EncodeError.
        lenient_date_zone: any 4-character zone in a received date is accepted (read as local
            time); otherwise only "    " (local) and "   Z" (UTC) are.
        strip_trailing_spaces: trailing spaces of received AA/AB/AO values are removed.
        replace_undecodable: bytes invalid in ``encoding`` become U+FFFD instead of a FieldError.
        max_frame: the longest frame (bytes) the Parser buffers before reporting FramingError.
    """

    name: str
    encoding: str = "utf-8"
    terminator: bytes = b"\r"
    lenient_terminator: bool = False
    checksum: ChecksumMode = "on"
    field_delimiter: str = "|"
    institution_prefix_items: bool = False
    item_prefix_separator: str = "."
    blank_dates_ok: bool = False
    lenient_date_zone: bool = False
    strip_trailing_spaces: bool = False
    replace_undecodable: bool = False
    max_frame: int = 65536

    def __post_init__(self) -> None:
        try:
            codecs.lookup(self.encoding)
        except LookupError as exc:
            raise ProfileError(f"profile {self.name!r}: unknown encoding {self.encoding!r}",
                               key="encoding") from exc
        if "a".encode(self.encoding) != b"a" or "|\r\n".encode(self.encoding) != b"|\r\n":
            raise ProfileError(f"profile {self.name!r}: encoding {self.encoding!r} is not "
                               "ASCII-compatible", key="encoding")
        if self.terminator not in _TERMINATORS.values():
            raise ProfileError(f"profile {self.name!r}: terminator must be b'\\r' or b'\\r\\n'",
                               key="terminator")
        if self.checksum not in _CHECKSUM_MODES:
            raise ProfileError(f"profile {self.name!r}: checksum must be one of {_CHECKSUM_MODES}",
                               key="checksum")
        d = self.field_delimiter
        if len(d) != 1 or not d.isascii() or d.isalnum() or d in "\r\n ":
            raise ProfileError(f"profile {self.name!r}: field_delimiter must be one ASCII "
                               "punctuation character", key="field_delimiter")
        s = self.item_prefix_separator
        if not s or not s.isascii() or d in s or "\r" in s or "\n" in s:
            raise ProfileError(f"profile {self.name!r}: bad item_prefix_separator",
                               key="item_prefix_separator")
        if self.max_frame < 64:
            raise ProfileError(f"profile {self.name!r}: max_frame too small", key="max_frame")

    @property
    def sends_checksum(self) -> bool:
        """Whether ``encode`` appends AY/AZ."""
        return self.checksum != "off"


# Sources are /work/shared/reference/sip2-notes.md (what real servers do); see docs/sip2.md.
PROFILES: dict[str, Profile] = {
    # The 2.00 spec read strictly: the baseline every tolerance is measured against.
    "generic": Profile(name="generic"),
    # Koha: per-account encoding (utf8 usual) and terminator (CRLF unless "CR"); checks AZ
    # only when present; real self-checks send blank nb due dates.
    "koha": Profile(name="koha", terminator=b"\r\n", lenient_terminator=True, checksum="lenient",
                    blank_dates_ok=True, strip_trailing_spaces=True),
    # Evergreen SIPServer: CRLF clients, byte checksum (after changing back), blank dates.
    "evergreen": Profile(name="evergreen", lenient_terminator=True, checksum="lenient",
                         blank_dates_ok=True, strip_trailing_spaces=True),
    # FOLIO edge-sip2: IBM850 charset by default, CR message delimiter, error detection on,
    # 18-space nb due date supported since SIP2-95.
    "folio": Profile(name="folio", encoding="cp850", blank_dates_ok=True),
    # Chinese UTF-8 deployment (dp2Capo strict mode): owner-qualified item ids, UTF-8.
    "cn-utf8": Profile(name="cn-utf8", lenient_terminator=True, institution_prefix_items=True,
                       blank_dates_ok=True, strip_trailing_spaces=True, lenient_date_zone=True),
    # Chinese GB18030 deployment (Interlib-style): plain item ids.
    "cn-gb18030": Profile(name="cn-gb18030", encoding="gb18030", lenient_terminator=True,
                          blank_dates_ok=True, strip_trailing_spaces=True, lenient_date_zone=True),
    # pysip2 0.1.0 (PyPI ACS) as measured: byte checksum, CR framing, must be told UTF-8,
    # and its strict validation rejects an 18-space nb due date.
    "pysip2": Profile(name="pysip2", blank_dates_ok=False),
}

_FIELDS = {f.name: f for f in dataclasses.fields(Profile)}


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\")\s*=", re.MULTILINE)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def profile_from_dict(data: dict[str, Any], *, source: str = "<dict>", text: str = "") -> Profile:
    """Build a Profile from TOML-shaped data.

    Keys are the Profile attribute names, plus ``base`` (a name in PROFILES whose values are
    the defaults). ``terminator`` is "cr" or "crlf".

    Raises:
        ProfileError: an unknown key (named, with its line when ``text`` is given), a value of
            the wrong type, or an invalid combination.
    """
    values: dict[str, Any] = {}
    base = data.get("base")
    if base is not None:
        if not isinstance(base, str) or base not in PROFILES:
            raise ProfileError(f"{source}: base must be one of {sorted(PROFILES)}", key="base",
                               line=_line_of(text, "base"))
        values = {f: getattr(PROFILES[base], f) for f in _FIELDS}
    for key, value in data.items():
        if key == "base":
            continue
        line = _line_of(text, key)
        where = f"{source}:{line}" if line else source
        if key not in _FIELDS:
            raise ProfileError(f"{where}: unknown profile key {key!r} (known: base, "
                               f"{', '.join(_FIELDS)})", key=key, line=line)
        if key == "terminator":
            if not isinstance(value, str) or value.lower() not in _TERMINATORS:
                raise ProfileError(f"{where}: terminator must be \"cr\" or \"crlf\"", key=key,
                                   line=line)
            value = _TERMINATORS[value.lower()]
        else:
            default = _FIELDS[key].default
            expected = type(default) if default is not dataclasses.MISSING else str
            if type(value) is not expected:
                raise ProfileError(f"{where}: {key} must be {expected.__name__}", key=key, line=line)
        values[key] = value
    if "name" not in values:
        raise ProfileError(f"{source}: profile needs a name", key="name")
    try:
        return Profile(**values)
    except ProfileError as exc:
        line = _line_of(text, exc.key) if exc.key else None
        raise ProfileError(f"{source}{f':{line}' if line else ''}: {exc}", key=exc.key,
                           line=line) from exc


def load_profile(path: str | Path) -> Profile:
    """Read a profile from a TOML file (see docs/sip2.md for the keys).

    Raises:
        ProfileError: unreadable TOML, an unknown key (named with its line) or a bad value.
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{p}: {exc}") from exc
    return profile_from_dict(data, source=str(p), text=text)
