"""One TOML file per cabinet: who it is, where its server is, its lending policy, its doors and
its hardware (docs/kiosk-contracts.md, "Kiosk config"; the hardware tables of
docs/contracts.md).

Why it is checked so thoroughly, and all at once: a cabinet stands in a railway station at
night. A typo found when the first reader borrows (or, worse, a silently ignored ``loan_day``)
is a cabinet that lends on the wrong terms or not at all. So ``load_config`` refuses a file with
any problem — a bad config never half-starts the cabinet — and names *every* problem with its
line, so a technician fixes the file in one go instead of one error per restart.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from drivers.errors import ConfigError
from drivers.hardware import HardwareSpec, parse_spec

__all__ = [
    "ApiConfig",
    "CabinetInfo",
    "ConfigProblems",
    "DoorInfo",
    "KioskConfig",
    "Policy",
    "Problem",
    "ServerConfig",
    "TechnicianConfig",
    "check_config",
    "load_config",
]

DOOR_SIZES = ("small", "medium", "large")
LANGUAGES = ("zh", "en")
#: A QR token of the e-reader card lives at most this long (syncproto.qrtoken: ttl_s 1..60).
QR_TTL_LIMIT_S = 60

# ---------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CabinetInfo:
    """``[cabinet]``. ``data_dir`` is already resolved against the config file's folder."""

    id: str
    branch: str
    location: str = ""
    language: str = "zh"
    data_dir: Path
    own_library: str
    network_libraries: tuple[str, ...]
    hours: str = "24h"
    help_line: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """``[server]``; absent = a stand-alone cabinet. ``trusted_keys``: key id → base64url
    Ed25519 public key (verifies grants and QR tokens offline)."""

    url: str
    timeout_s: float = 2.0
    sync_interval_s: float = 5.0
    #: how long a reader's identification waits for the server before the cabinet decides
    #: offline (the door should open in under a second; a slow link may need longer)
    resolve_timeout_s: float = 0.8
    trusted_keys: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiConfig:
    """``[api]``: where the screen's HTTP API listens (port 0 = any free port, for tests)."""

    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """``[policy]``: the lending terms and the timings of a session."""

    loan_days: int = 30
    max_loans: int = 10
    offline_allowance: int = 2
    offline_exposure_cap: int = 20
    door_prompt_s: tuple[float, ...] = (30.0, 60.0)
    door_alarm_s: float = 120.0
    session_idle_s: float = 60.0
    credential_ttl_s: float = 300.0
    qr_max_ttl_s: int = 60
    clock_skew_s: float = 120.0
    inventory_retries: int = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class DoorInfo:
    """The kiosk's side of a ``[[doors]]`` entry (its board, lock and antenna are in
    ``KioskConfig.hardware``)."""

    number: int
    size: str
    capacity: int
    accessible: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TechnicianConfig:
    """``[technician]``: the technician pages' login (``kiosk.tech_auth``). Absent: the
    technician pages say how to set a password and show nothing else."""

    password_hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KioskConfig:
    cabinet: CabinetInfo
    server: ServerConfig | None
    api: ApiConfig
    policy: Policy
    doors: dict[int, DoorInfo]
    hardware: HardwareSpec
    path: Path
    data_dir: Path
    technician: TechnicianConfig | None = None

    @property
    def stand_alone(self) -> bool:
        """No ``[server]``: the cabinet lends on its own policy and never syncs."""
        return self.server is None


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config file. ``line`` is 1-based, None when no line is to blame
    (a missing file, a missing table)."""

    line: int | None
    where: str
    message: str
    file: str = ""

    def __str__(self) -> str:
        head = self.file
        if self.line is not None:
            head = f"{head}:{self.line}" if head else str(self.line)
        parts = [p for p in (head, self.where) if p]
        return ": ".join([*parts, self.message])


class ConfigProblems(ValueError):
    """The config has problems; ``.problems`` lists every one, and so does ``str()``."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the kiosk config:"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


def load_config(path: str | Path) -> KioskConfig:
    """Read and check a cabinet's config file.

    Raises:
        ConfigProblems: anything is wrong; it lists every problem found, each with its line.
    """
    config, problems = _check(Path(path))
    if problems or config is None:
        raise ConfigProblems(problems)
    return config


def check_config(path: str | Path) -> list[Problem]:
    """Every problem of the config file at ``path`` (an empty list when it is valid).

    Never raises for anything in the file: that is what ``lendbox kiosk check-config`` runs on
    whatever a technician wrote.
    """
    return _check(Path(path))[1]


# ---------------------------------------------------------------------------------------------
# Line locator: tomllib gives values, not lines, so the text is scanned once more
# ---------------------------------------------------------------------------------------------

Key = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


class _Locator:
    """Maps TOML paths to the line where they are written.

    Paths are tuples of keys, with the index of an array-of-tables entry after its name:
    ``("policy", "loan_days")``, ``("doors", 2, "size")`` for the 3rd ``[[doors]]``. A header
    maps to its own line, a key to the line of ``key =`` (the first line of a multi-line array
    or string), keys of a one-line inline table to that line. Only run on text tomllib
    accepted; still, it never raises: what it cannot follow is simply not located.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[Key, int] = {}
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._arrays: dict[Key, int] = {}
        try:
            self._document()
        except (IndexError, ValueError):  # malformed beyond what it follows: keep what it has
            pass

    def line(self, path: Key) -> int | None:
        """The line of ``path``, else of its nearest written parent, else None."""
        for end in range(len(path), 0, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return None

    # -- scanning -------------------------------------------------------------------------

    def _line_of(self, pos: int) -> int:
        lo, hi = 0, len(self._line_starts)
        while hi - lo > 1:  # bisect on line starts
            mid = (lo + hi) // 2
            if self._line_starts[mid] <= pos:
                lo = mid
            else:
                hi = mid
        return lo + 1

    def _peek(self, n: int = 1) -> str:
        return self.text[self.pos:self.pos + n]

    def _skip_blank(self, newlines: bool) -> None:
        """Skip spaces (and newlines and comments when ``newlines``)."""
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch in " \t" or (newlines and ch in "\r\n"):
                self.pos += 1
            elif newlines and ch == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def _record(self, path: Key, pos: int) -> None:
        self.lines.setdefault(path, self._line_of(pos))

    def _document(self) -> None:
        current: Key = ()
        while True:
            self._skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return
            start = self.pos
            if self._peek() == "[":
                is_array = self._peek(2) == "[["
                self.pos += 2 if is_array else 1
                current = self._header(self._key(), is_array)
                for end in range(1, len(current)):  # [[doors]] also locates "doors"
                    self._record(current[:end], start)
                self.lines[current] = self._line_of(start)  # [a] after [a.b] is a's line
                self._skip_blank(newlines=False)
                self.pos += 2 if is_array else 1  # the closing ] or ]]
            else:
                parts = self._key()
                for end in range(1, len(parts) + 1):  # dotted keys define their parents
                    self._record(current + parts[:end], start)
                self._skip_blank(newlines=False)
                if self._peek() != "=":
                    raise ValueError("expected =")
                self.pos += 1
                self._value(current + parts)
            self._skip_to_line_end()
            if self.pos == start:  # never loop on text it does not understand
                self.pos += 1

    def _skip_to_line_end(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end + 1

    def _header(self, parts: Key, is_array: bool) -> Key:
        """Resolve ``[a.b]`` / ``[[a.b]]``: parents that are arrays of tables mean their last
        entry; a new ``[[…]]`` entry gets the next index."""
        resolved: Key = ()
        for i, part in enumerate(parts):
            resolved += (part,)
            last = i == len(parts) - 1
            if last and is_array:
                index = self._arrays.get(resolved, -1) + 1
                self._arrays[resolved] = index
                resolved += (index,)
            elif resolved in self._arrays:
                resolved += (self._arrays[resolved],)
        return resolved

    def _key(self) -> Key:
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            ch = self._peek()
            if ch in ('"', "'"):
                parts.append(self._string())
            else:
                match = _BARE_KEY.match(self.text, self.pos)
                if match is None:
                    raise ValueError("expected a key")
                parts.append(match.group())
                self.pos = match.end()
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self.pos += 1

    def _string(self) -> str:
        """Consume a string of any of the four kinds; return its (roughly unescaped) value."""
        text = self.text
        quote = text[self.pos]
        if text.startswith(quote * 3, self.pos):
            end = text.find(quote * 3, self.pos + 3)
            while quote == '"' and end > 0 and _escaped(text, end):
                end = text.find(quote * 3, end + 1)
            if end < 0:
                raise ValueError("unterminated string")
            value = text[self.pos + 3:end]
            self.pos = end + 3
            while self._peek() == quote:  # up to two quotes may end the content
                self.pos += 1
            return value
        out: list[str] = []
        i = self.pos + 1
        while True:
            ch = text[i]  # IndexError on an unterminated string ends the scan
            if ch == quote:
                self.pos = i + 1
                return "".join(out)
            if ch == "\\" and quote == '"':
                nxt = text[i + 1]
                out.append(_ESCAPES.get(nxt, "\\" + nxt))
                i += 2
                continue
            if ch == "\n":
                raise ValueError("newline in a one-line string")
            out.append(ch)
            i += 1

    def _value(self, path: Key) -> None:
        self._skip_blank(newlines=False)
        ch = self._peek()
        if ch in ('"', "'"):
            self._string()
        elif ch == "[":
            self.pos += 1
            index = 0
            while True:
                self._skip_blank(newlines=True)
                if self._peek() in ("]", ""):
                    self.pos += 1
                    return
                before = self.pos
                self._value(path + (index,))
                index += 1
                self._skip_blank(newlines=True)
                if self._peek() == ",":
                    self.pos += 1
                elif self.pos == before:
                    raise ValueError("stuck in an array")
        elif ch == "{":
            self.pos += 1
            while True:
                self._skip_blank(newlines=False)
                if self._peek() in ("}", ""):
                    self.pos += 1
                    return
                start = self.pos
                parts = self._key()
                for end in range(1, len(parts) + 1):
                    self._record(path + parts[:end], start)
                self._skip_blank(newlines=False)
                if self._peek() != "=":
                    raise ValueError("expected = in an inline table")
                self.pos += 1
                self._value(path + parts)
                self._skip_blank(newlines=False)
                if self._peek() == ",":
                    self.pos += 1
        else:  # number, bool, date-time (which may hold a space): up to a delimiter
            match = re.compile(r"[^,\]}\n#]*").match(self.text, self.pos)
            assert match is not None  # the pattern matches the empty string
            self.pos = match.end()


def _escaped(text: str, pos: int) -> bool:
    """Whether the character at ``pos`` is escaped by an odd number of backslashes."""
    count = 0
    while pos - count - 1 >= 0 and text[pos - count - 1] == "\\":
        count += 1
    return count % 2 == 1


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------

_TOP_LEVEL = ("cabinet", "server", "api", "policy", "doors", "buses", "boards", "readers",
              "card_reader", "camera", "technician")
_CABINET_KEYS = ("id", "branch", "location", "language", "data_dir", "own_library",
                 "network_libraries", "hours", "help_line")
_SERVER_KEYS = ("url", "timeout_s", "sync_interval_s", "resolve_timeout_s", "trusted_keys")
_API_KEYS = ("host", "port")
_TECHNICIAN_KEYS = ("password_hash",)
# name → (default, smallest allowed): counts and days are integers
_POLICY_INTS: dict[str, tuple[int, int]] = {
    "loan_days": (30, 1),
    "max_loans": (10, 1),
    "offline_allowance": (2, 0),  # 0 = nothing is lent while offline: a valid policy
    "offline_exposure_cap": (20, 0),
    "qr_max_ttl_s": (60, 1),
    "inventory_retries": (2, 0),
}
# name → (default, zero allowed): durations in seconds may be fractional
_POLICY_SECONDS: dict[str, tuple[float, bool]] = {
    "door_alarm_s": (120.0, False),
    "session_idle_s": (60.0, False),
    "credential_ttl_s": (300.0, False),
    "clock_skew_s": (120.0, True),
}
_POLICY_KEYS = (*_POLICY_INTS, "door_prompt_s", *_POLICY_SECONDS)
_DOOR_HW_KEYS = ("number", "board", "lock", "antenna", "reader")
_DOOR_KIOSK_KEYS = ("size", "capacity", "accessible")
# keys of the hardware tables: parse_spec ignores unknown ones, so a typo there would be silent
_HW_KEYS = {
    "buses": ("name", "url", "baudrate", "family", "kind", "parity"),
    "boards": ("address", "bus", "options"),
    "readers": ("name", "bus", "address", "options"),
    "card_reader": ("reader", "pcsc_socket"),
    "camera": ("source", "decoder", "isbn_decoder"),
}

# ISIL (ISO 15511): a prefix (country code or other), "-", up to 11 characters; ≤ 16 in all
_ISIL = re.compile(r"[A-Za-z]{1,4}-[A-Za-z0-9:/-]{1,11}")
# cabinet ids travel in HTTP headers, log lines and file names
_CABINET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class _Checker:
    """Collects problems while reading a parsed config; ``line`` of a TOML path comes from
    the locator."""

    def __init__(self, path: Path, raw: dict[str, Any], locator: _Locator) -> None:
        self.path = path
        self.raw = raw
        self.loc = locator
        self.problems: list[Problem] = []
        # keys an unknown key was taken for ("did you mean 'size'?"): their absence is the
        # same typo, so it is not reported a second time as a missing key
        self.suggested: set[Key] = set()

    def add(self, at: Key | None, where: str, message: str) -> None:
        line = self.loc.line(at) if at else None
        self.problems.append(Problem(line, where, message, str(self.path)))

    # -- value helpers: each returns the value, or None after adding a problem --------------

    def table(self, name: str) -> dict[str, Any] | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.add((name,), f"[{name}]", f"[{name}] must be a table, got {_show(value)}")
            return None
        return value

    def unknown_keys(self, table: Mapping[str, Any], allowed: Iterable[str], at: Key,
                     where: str) -> None:
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                self.add(at + (key,), where, f"unknown key {key!r}{_did_you_mean(key, allowed)}")
                self.suggested.update(at + (close,) for close in _close(key, allowed))

    def missing(self, key: str, at: Key, where: str, hint: str = "") -> None:
        if at + (key,) not in self.suggested:
            self.add(at, where, f"missing key {key!r}{hint}")

    def string(self, table: Mapping[str, Any], key: str, at: Key, where: str, *,
               default: str | None = None, empty_ok: bool = False) -> str | None:
        if key not in table:
            if default is None:
                self.missing(key, at, where)
            return default
        value = table[key]
        if not isinstance(value, str) or (not empty_ok and not value.strip()):
            kind = "a string" if empty_ok else "a non-empty string"
            self.add(at + (key,), where, f"{key!r} must be {kind}, got {_show(value)}")
            return None
        return value

    def integer(self, table: Mapping[str, Any], key: str, at: Key, where: str, *,
                default: int | None, minimum: int, maximum: int | None = None) -> int | None:
        if key not in table:
            if default is None:
                self.missing(key, at, where)
            return default
        value = table[key]
        if maximum is not None:
            wanted = f"an integer {minimum}..{maximum}"
        else:
            wanted = {0: "an integer ≥ 0", 1: "a positive integer"}.get(
                minimum, f"an integer ≥ {minimum}")
        if (isinstance(value, bool) or not isinstance(value, int) or value < minimum
                or (maximum is not None and value > maximum)):
            self.add(at + (key,), where, f"{key!r} must be {wanted}, got {_show(value)}")
            return None
        return value

    def seconds(self, table: Mapping[str, Any], key: str, at: Key, where: str, *,
                default: float, zero_ok: bool = False) -> float | None:
        if key not in table:
            return default
        value = _as_seconds(table[key], zero_ok)
        if value is None:
            wanted = "a number of seconds ≥ 0" if zero_ok else "a positive number of seconds"
            self.add(at + (key,), where, f"{key!r} must be {wanted}, got {_show(table[key])}")
        return value

    # -- the sections ---------------------------------------------------------------------

    def top_level(self) -> None:
        for key, value in self.raw.items():
            if key not in _TOP_LEVEL:
                kind = "table" if isinstance(value, (dict, list)) else "key"
                self.add((key,), "top level",
                         f"unknown {kind} {key!r}{_did_you_mean(key, _TOP_LEVEL)}")
                self.suggested.update((close,) for close in _close(key, _TOP_LEVEL))

    def cabinet(self) -> CabinetInfo | None:
        at: Key = ("cabinet",)
        where = "[cabinet]"
        table = self.table("cabinet")
        if table is None:
            if "cabinet" not in self.raw and ("cabinet",) not in self.suggested:
                self.add(None, where, "missing table [cabinet] (the cabinet's id, branch, "
                         "library)")
            return None
        self.unknown_keys(table, _CABINET_KEYS, at, where)
        cabinet_id = self.string(table, "id", at, where)
        if cabinet_id is not None and not _CABINET_ID.fullmatch(cabinet_id):
            self.add(at + ("id",), where, f"'id' must be 1-64 letters, digits, '.', '_' or '-' "
                     f"(it names the cabinet in requests and files), got {cabinet_id!r}")
            cabinet_id = None
        branch = self.string(table, "branch", at, where)
        location = self.string(table, "location", at, where, default="", empty_ok=True)
        language = self.string(table, "language", at, where, default="zh")
        if language is not None and language not in LANGUAGES:
            self.add(at + ("language",), where,
                     f"'language' must be \"zh\" or \"en\", got {language!r}")
            language = None
        data_dir = self._data_dir(table, cabinet_id, at, where)
        own = self.string(table, "own_library", at, where)
        if own is not None and not _is_isil(own):
            self.add(at + ("own_library",), where, f"'own_library' must be an ISIL such as "
                     f"\"CN-440300\", got {own!r}")
            own = None
        network = self._network_libraries(table, own, at, where)
        hours = self.string(table, "hours", at, where, default="24h")
        help_line = self.string(table, "help_line", at, where, default="", empty_ok=True)
        if (cabinet_id is None or branch is None or location is None or language is None
                or data_dir is None or own is None or network is None or hours is None
                or help_line is None):
            return None
        return CabinetInfo(id=cabinet_id, branch=branch, location=location, language=language,
                           data_dir=data_dir, own_library=own, network_libraries=network,
                           hours=hours, help_line=help_line)

    def _data_dir(self, table: Mapping[str, Any], cabinet_id: str | None, at: Key,
                  where: str) -> Path | None:
        if "data_dir" in table:
            written = self.string(table, "data_dir", at, where)
        else:
            written = f"var/{cabinet_id}" if cabinet_id else None  # id already reported
        if written is None:
            return None
        # relative to the config file, so a cabinet's folder can be moved as a whole
        data_dir = self.path.resolve().parent / written
        if data_dir.exists() and not data_dir.is_dir():
            self.add(at + ("data_dir",), where,
                     f"'data_dir' {written!r} is a file, not a folder ({data_dir})")
            return None
        return data_dir

    def _network_libraries(self, table: Mapping[str, Any], own: str | None, at: Key,
                           where: str) -> tuple[str, ...] | None:
        key = "network_libraries"
        if key not in table:
            return (own,) if own else None  # default: only the cabinet's own library
        value = table[key]
        if not isinstance(value, list) or not value:
            self.add(at + (key,), where, f"{key!r} must be a non-empty list of ISILs (通借通还: "
                     f"the libraries whose books this cabinet accepts), got {_show(value)}")
            return None
        good = True
        seen: set[str] = set()
        for i, isil in enumerate(value):
            if not isinstance(isil, str) or not _is_isil(isil):
                self.add(at + (key, i), where, f"{key!r}: {_show(isil)} is not an ISIL such as "
                         "\"CN-440300\"")
                good = False
            elif isil in seen:
                self.add(at + (key, i), where, f"{key!r}: {isil!r} is listed twice")
                good = False
            if isinstance(isil, str):
                seen.add(isil)
        if own is not None and good and own not in value:
            self.add(at + (key,), where, f"{key!r} must include own_library {own!r} (a cabinet "
                     "always accepts its own library's books)")
            good = False
        return tuple(value) if good else None

    def server(self) -> tuple[bool, ServerConfig | None]:
        """(valid, config); a missing [server] is valid: a stand-alone cabinet."""
        at: Key = ("server",)
        where = "[server]"
        if "server" not in self.raw:
            return True, None
        table = self.table("server")
        if table is None:
            return False, None
        self.unknown_keys(table, _SERVER_KEYS, at, where)
        url = self.string(table, "url", at, where)
        if url is not None and not _http_url(url):
            self.add(at + ("url",), where, f"'url' must be an http:// or https:// URL with a "
                     f"host, got {url!r}")
            url = None
        timeout = self.seconds(table, "timeout_s", at, where, default=2.0)
        interval = self.seconds(table, "sync_interval_s", at, where, default=5.0)
        resolve = self.seconds(table, "resolve_timeout_s", at, where, default=0.8)
        keys = self._trusted_keys(table, at, where)
        if url is None or timeout is None or interval is None or resolve is None or keys is None:
            return False, None
        return True, ServerConfig(url=url, timeout_s=timeout, sync_interval_s=interval,
                                  resolve_timeout_s=resolve, trusted_keys=MappingProxyType(keys))

    def _trusted_keys(self, table: Mapping[str, Any], at: Key,
                      where: str) -> dict[str, str] | None:
        key = "trusted_keys"
        if key not in table:
            # without a key no grant or QR token can be verified: every reader would be refused
            self.missing(key, at, where, " (key id → base64url Ed25519 public key of the "
                         "server, e.g. trusted_keys = { k1 = \"…\" })")
            return None
        value = table[key]
        if not isinstance(value, dict) or not value:
            self.add(at + (key,), where, f"'trusted_keys' must be a non-empty table of key id → "
                     f"base64url Ed25519 public key, got {_show(value)}")
            return None
        keys: dict[str, str] = {}
        for key_id, text in value.items():
            if not key_id.strip():
                self.add(at + (key, key_id), where, "'trusted_keys': a key id must not be empty")
            elif not _is_public_key(text):
                self.add(at + (key, key_id), where, f"'trusted_keys.{key_id}' must be base64url "
                         f"(no padding) of a 32-byte Ed25519 public key, got {_show(text)}")
            else:
                keys[key_id] = text
        return keys if len(keys) == len(value) else None

    def api(self) -> ApiConfig | None:
        at: Key = ("api",)
        where = "[api]"
        if "api" not in self.raw:
            return ApiConfig()
        table = self.table("api")
        if table is None:
            return None
        self.unknown_keys(table, _API_KEYS, at, where)
        host = self.string(table, "host", at, where, default="127.0.0.1")
        port = self.integer(table, "port", at, where, default=8080, minimum=0, maximum=65535)
        if host is None or port is None:
            return None
        return ApiConfig(host=host, port=port)

    def technician(self) -> tuple[bool, TechnicianConfig | None]:
        """(ok, the section or None when absent)."""
        from .tech_auth import BadHash, parse_hash

        at: Key = ("technician",)
        where = "[technician]"
        if "technician" not in self.raw:
            return True, None
        table = self.table("technician")
        if table is None:
            return False, None
        self.unknown_keys(table, _TECHNICIAN_KEYS, at, where)
        stored = self.string(table, "password_hash", at, where)
        if stored is None:
            return False, None
        try:
            parse_hash(stored)
        except BadHash as exc:
            self.add(at + ("password_hash",), where,
                     f"'password_hash' {exc} (run `lendbox kiosk technician-password "
                     f"--config FILE`)")
            return False, None
        return True, TechnicianConfig(password_hash=stored.strip())

    def policy(self) -> Policy | None:
        at: Key = ("policy",)
        where = "[policy]"
        if "policy" not in self.raw:
            return Policy()
        table = self.table("policy")
        if table is None:
            return None
        self.unknown_keys(table, _POLICY_KEYS, at, where)
        values: dict[str, Any] = {}
        for name, (int_default, minimum) in _POLICY_INTS.items():
            values[name] = self.integer(table, name, at, where, default=int_default,
                                        minimum=minimum)
        for name, (s_default, zero_ok) in _POLICY_SECONDS.items():
            values[name] = self.seconds(table, name, at, where, default=s_default,
                                        zero_ok=zero_ok)
        values["door_prompt_s"] = self._door_prompts(table, at, where)

        # the cross checks, each only when both of its values are themselves valid
        ttl = values["qr_max_ttl_s"]
        if ttl is not None and ttl > QR_TTL_LIMIT_S:
            self.add(at + ("qr_max_ttl_s",), where, f"'qr_max_ttl_s' must be at most "
                     f"{QR_TTL_LIMIT_S} (a longer-lived QR code could be photographed and "
                     f"replayed), got {ttl}")
            values["qr_max_ttl_s"] = None
        allowance, max_loans = values["offline_allowance"], values["max_loans"]
        if allowance is not None and max_loans is not None and allowance > max_loans:
            self.add(at + _written(table, "offline_allowance", "max_loans"), where,
                     f"'offline_allowance' ({allowance}) must not exceed 'max_loans' "
                     f"({max_loans})")
            values["offline_allowance"] = None
        prompts, alarm = values["door_prompt_s"], values["door_alarm_s"]
        if prompts is not None and alarm is not None and any(p >= alarm for p in prompts):
            self.add(at + _written(table, "door_prompt_s", "door_alarm_s"), where,
                     f"every 'door_prompt_s' must come before 'door_alarm_s' ({_num(alarm)} s), "
                     f"got {[_num(p) for p in prompts]}")
            values["door_prompt_s"] = None
        if any(v is None for v in values.values()):
            return None
        return Policy(**values)

    def _door_prompts(self, table: Mapping[str, Any], at: Key,
                      where: str) -> tuple[float, ...] | None:
        key = "door_prompt_s"
        if key not in table:
            return Policy().door_prompt_s
        value = table[key]
        wanted = "a list of positive seconds in ascending order, e.g. [30, 60]"
        if not isinstance(value, list):
            self.add(at + (key,), where, f"{key!r} must be {wanted}, got {_show(value)}")
            return None
        prompts = [_as_seconds(v, zero_ok=False) for v in value]
        clean = [p for p in prompts if p is not None]
        if len(clean) != len(prompts):
            self.add(at + (key,), where, f"{key!r} must be {wanted}, got {_show(value)}")
            return None
        if any(b <= a for a, b in zip(clean, clean[1:], strict=False)):
            self.add(at + (key,), where, f"{key!r} must be in ascending order (each prompt "
                     f"later than the one before), got {[_num(p) for p in clean]}")
            return None
        return tuple(clean)

    def doors(self) -> dict[int, DoorInfo] | None:
        """The kiosk keys of every ``[[doors]]`` entry; the hardware keys are parse_spec's."""
        value = self.raw.get("doors")
        if value is None or value == []:
            if ("doors",) in self.suggested:  # [[door]]: reported with a suggestion
                return None
            self.add(None, "[[doors]]", "no [[doors]] defined: a cabinet needs at least one door")
            return None
        if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
            return None  # parse_spec reports it, with the same words as `lendbox diag`
        doors: dict[int, DoorInfo] = {}
        good = True
        for index, entry in enumerate(value):
            at: Key = ("doors", index)
            number = entry.get("number")
            valid_number = isinstance(number, int) and not isinstance(number, bool)
            where = _door_where(entry, index)
            self.unknown_keys(entry, (*_DOOR_HW_KEYS, *_DOOR_KIOSK_KEYS), at, where)
            size = entry.get("size")
            if "size" not in entry:
                # which door a returned book may go to depends on it: never guessed
                self.missing("size", at, where, " (\"small\", \"medium\" or \"large\")")
                size = None
            elif size not in DOOR_SIZES:
                self.add(at + ("size",), where, f"'size' must be \"small\", \"medium\" or "
                         f"\"large\", got {_show(size)}")
                size = None
            capacity = self.integer(entry, "capacity", at, where, default=None, minimum=1)
            accessible = entry.get("accessible", False)
            if not isinstance(accessible, bool):
                self.add(at + ("accessible",), where, f"'accessible' must be true or false "
                         f"(reachable from a wheelchair, ≤ 1.2 m), got {_show(accessible)}")
                accessible = None
            if size is None or capacity is None or accessible is None or not valid_number:
                good = False
                continue
            assert isinstance(number, int)
            doors[number] = DoorInfo(number=number, size=size, capacity=capacity,
                                     accessible=accessible)
        return doors if good else None

    def hardware_keys(self) -> tuple[dict[str, Any], set[int]]:
        """Report unknown keys of the hardware tables, and values parse_spec would crash on
        rather than reject. Returns the raw config with them (and whatever this checker
        already reported) removed, for parse_spec, and the indexes of doors to set aside."""
        work: dict[str, Any] = dict(self.raw)
        doors_aside: set[int] = set()
        doors = work.get("doors")
        for index, entry in enumerate(doors if isinstance(doors, list) else []):
            reader = entry.get("reader") if isinstance(entry, dict) else None
            if reader is not None and not isinstance(reader, str):
                # parse_spec looks it up in a dict: a list would raise TypeError
                self.add(("doors", index, "reader"), _door_where(entry, index), "'reader' must "
                         f"be the name of a [[readers]] entry, got {_show(reader)}")
                doors_aside.add(index)
        for name in ("buses", "boards", "readers"):
            entries = work.get(name)
            if not isinstance(entries, list):
                continue
            work[name] = entries = [dict(e) if isinstance(e, dict) else e for e in entries]
            kind = {"buses": "bus", "boards": "board", "readers": "reader"}[name]
            ident = "address" if name == "boards" else "name"
            for index, entry in enumerate(entries):
                if not isinstance(entry, dict):
                    continue
                label = entry.get(ident)
                if name == "boards" and isinstance(label, int) and not isinstance(label, bool):
                    where = f"board {label}"
                elif name != "boards" and isinstance(label, str) and label:
                    where = f"{kind} {label!r}"
                else:
                    where = f"{name}[{index + 1}]"
                self.unknown_keys(entry, _HW_KEYS[name], (name, index), where)
                family = entry.get("family")
                if name == "buses" and family is not None and not isinstance(family, str):
                    self.add((name, index, "family"), where, "'family' must be the name of a "
                             f"device family (docs/families.md), got {_show(family)}")
                    del entry["family"]  # the default: parse_spec checks the rest of the bus
        for name in ("card_reader", "camera"):
            table = work.get(name)
            if isinstance(table, dict):
                self.unknown_keys(table, _HW_KEYS[name], (name,), f"[{name}]")
                # parse_spec would stop at them: already reported here, with a suggestion
                work[name] = {k: v for k, v in table.items() if k in _HW_KEYS[name]}
        if not isinstance(work.get("cabinet", {}), dict):
            work["cabinet"] = {}  # reported by cabinet()
        return work, doors_aside

    def hardware(self, work: dict[str, Any], doors_aside: set[int]) -> HardwareSpec | None:
        """parse_spec stops at its first error. A door or a peripheral section it names is
        set aside and the rest checked again, so every bad door is reported at once; other
        entries are referred to by doors, and setting them aside would only report phantom
        problems, so the check stops there."""
        doors = work.get("doors")
        door_rows: list[int] = []  # the original index of each door still in `work`
        if isinstance(doors, list):
            door_rows = [i for i in range(len(doors)) if i not in doors_aside]
            work["doors"] = [doors[i] for i in door_rows]
        found = bool(doors_aside)
        for _ in range(len(door_rows) + 3):
            try:
                spec = parse_spec(work)
            except ConfigError as exc:
                found = True
                set_aside = self._hardware_problem(str(exc), work, door_rows)
                if set_aside is None:
                    return None
                if set_aside == "doors":
                    continue
                work.pop(set_aside, None)
                continue
            except Exception as exc:  # noqa: BLE001 - a checker must report, never crash
                self.add(None, "hardware", f"cannot be checked: {type(exc).__name__}: {exc}")
                return None
            return None if found else spec
        return None

    def _hardware_problem(self, message: str, work: dict[str, Any],
                          door_rows: list[int]) -> str | None:
        """Report one ConfigError of parse_spec at its line. Returns what to set aside to
        look further: "doors" (the door was removed from ``work``), a section name, or None
        (stop)."""
        match = _HW_WHERE.match(message)
        if match is None:
            missing = re.match(r"no \[\[(\w+)\]\] defined", message)
            if missing and (missing.group(1),) in self.suggested:
                return None  # [[bus]] for [[buses]]: reported with a suggestion
            array = re.match(r"'(\w+)' must be an array of tables", message)
            at: Key | None = (array.group(1),) if array else None
            self.add(at, "hardware", message)
            return None
        where, rest = match.group(1), match.group(2)
        if where in ("[card_reader]", "[camera]"):
            name = where.strip("[]")
            table = work.get(name)
            keys = _key_in(rest, table) if isinstance(table, dict) else ()
            self._add_hardware((name,), keys, where, rest)
            return name
        kind, ident = _parse_where(where)
        name = {"door": "doors", "bus": "buses", "board": "boards", "reader": "readers"}.get(
            kind, kind)
        entries = work.get(name)
        entries = entries if isinstance(entries, list) else []
        index = _entry_index(kind, ident, rest, entries)
        if index is None:
            self.add((name,), where, rest)
            return None
        entry = entries[index]
        row = door_rows[index] if name == "doors" else index
        if kind == "doors":  # "doors[2]" counted what is left after doors set aside
            where = f"doors[{row + 1}]"
        self._add_hardware((name, row), _key_in(rest, entry), where, rest)
        if name != "doors":
            return None
        del entries[index], door_rows[index]
        return "doors"


    def _add_hardware(self, at: Key, keys: Key, where: str, message: str) -> None:
        missing = re.match(r"missing field '(\w+)'", message)
        if missing and at + (missing.group(1),) in self.suggested:
            return  # the typo that hides it was reported with a suggestion
        self.add(at + keys, where, message)


# "door 3: …", "doors[2]: …", "bus 'rs485-1': …", "board 2: …", "[camera]: …"
_HW_WHERE = re.compile(
    r"((?:door|board) -?\d+|(?:doors|buses|boards|readers)\[\d+\]|(?:bus|reader) '[^']*'"
    r"|\[card_reader\]|\[camera\]): (.*)", re.DOTALL)

# words of parse_spec's messages that name a key without quoting it
_KEY_WORDS = (
    ("duplicate door number", "number"), ("door numbers start", "number"),
    ("duplicate bus name", "name"), ("duplicate reader name", "name"),
    ("duplicate board address", "address"), ("address must be", "address"),
    ("speaks", "bus"), ("lock ", "lock"),
)


def _door_where(entry: Mapping[str, Any], index: int) -> str:
    """"door 3" as parse_spec names a door, "doors[2]" (1-based) when its number is bad."""
    number = entry.get("number")
    if isinstance(number, int) and not isinstance(number, bool):
        return f"door {number}"
    return f"doors[{index + 1}]"


def _parse_where(where: str) -> tuple[str, str | int]:
    """``door 3`` → ("door", 3); ``bus 'x'`` → ("bus", "x"); ``doors[2]`` → ("doors", 2)."""
    if "[" in where:
        name, _, rest = where.partition("[")
        return name, int(rest.rstrip("]"))
    kind, _, ident = where.partition(" ")
    return kind, ident.strip("'") if ident.startswith("'") else int(ident)


def _entry_index(kind: str, ident: str | int, rest: str,
                 entries: list[Any]) -> int | None:
    """Which entry parse_spec stopped at: it checks in order, so the first one with that
    number or name, or the second for a "duplicate …" (the first passed)."""
    if kind in ("doors", "buses", "boards", "readers"):  # doors[2]: 1-based position
        assert isinstance(ident, int)
        return ident - 1 if 0 < ident <= len(entries) else None
    key = {"door": "number", "board": "address"}.get(kind, "name")
    matches = [i for i, e in enumerate(entries)
               if isinstance(e, dict) and _same(e.get(key), ident)]
    if not matches:
        return None
    if rest.startswith("duplicate") and len(matches) > 1:
        return matches[1]
    return matches[0]


def _same(value: Any, ident: str | int) -> bool:
    if isinstance(ident, int):
        return isinstance(value, int) and not isinstance(value, bool) and value == ident
    return value == ident


def _key_in(message: str, entry: Mapping[str, Any]) -> Key:
    """The key of ``entry`` a parse_spec message is about, as a 1-tuple (or () for the
    entry itself, e.g. a missing field)."""
    if message.startswith("missing field"):
        return ()
    for quoted in re.findall(r"'(\w+)'", message):
        if quoted in entry:
            return (quoted,)
    unknown = re.match(r"unknown (\w+)", message)
    if unknown and unknown.group(1) in entry:
        return (unknown.group(1),)
    for words, key in _KEY_WORDS:
        if words in message and key in entry:
            return (key,)
    return ()


def _check(path: Path) -> tuple[KioskConfig | None, list[Problem]]:
    file = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, [Problem(None, "file", "no such file", file)]
    except OSError as exc:
        return None, [Problem(None, "file", f"cannot read: {exc.strerror or exc}", file)]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        return None, [Problem(line, "file", "not UTF-8 text (save the file as UTF-8)", file)]
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, message = _toml_error(str(exc), text)
        return None, [Problem(line, "TOML", f"not valid TOML: {message}", file)]

    checker = _Checker(path, raw, _Locator(text))
    checker.top_level()
    cabinet = checker.cabinet()
    server_ok, server = checker.server()
    api = checker.api()
    policy = checker.policy()
    technician_ok, technician = checker.technician()
    doors = checker.doors()
    hardware = checker.hardware(*checker.hardware_keys())
    problems = sorted(checker.problems, key=lambda p: (p.line is None, p.line or 0))
    if (problems or cabinet is None or not server_ok or api is None or policy is None
            or doors is None or hardware is None or not technician_ok):
        return None, problems
    return KioskConfig(cabinet=cabinet, server=server, api=api, policy=policy, doors=doors,
                       hardware=hardware, path=path, data_dir=cabinet.data_dir,
                       technician=technician), []


_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _toml_error(message: str, text: str) -> tuple[int, str]:
    """tomllib (3.11) puts the position only in its message: "… (at line 3, column 5)" or
    "… (at end of document)"."""
    match = _TOML_AT.search(message)
    if match:
        return int(match.group(1)), f"{message[:match.start()]} (column {match.group(2)})"
    end = message.rfind(" (at end of document)")
    lines = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    return lines, (message[:end] + " (at the end of the file)") if end >= 0 else message


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------


def _written(table: Mapping[str, Any], *keys: str) -> Key:
    """The first of ``keys`` the file writes (a cross check may fail on a default): the line
    to blame."""
    return next(((k,) for k in keys if k in table), ())


def _close(key: str, allowed: Sequence[str]) -> list[str]:
    return difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)


def _did_you_mean(key: str, allowed: Sequence[str]) -> str:
    close = _close(key, allowed)
    return f" — did you mean {close[0]!r}?" if close else f" (known: {', '.join(allowed)})"


def _as_seconds(value: Any, zero_ok: bool) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
        return None
    return number


def _num(value: float) -> int | float:
    """30.0 → 30 in messages: the file said 30."""
    return int(value) if value.is_integer() else value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _is_isil(text: str) -> bool:
    return len(text) <= 16 and _ISIL.fullmatch(text) is not None


def _is_public_key(text: Any) -> bool:
    """base64url of 32 bytes, as syncproto.grants.generate_keypair writes it (no padding)."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text):
        return False
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 32
