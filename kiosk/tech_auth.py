"""The technician's login on the kiosk: a salted scrypt password hash in the config, a signed
session cookie, and a brake on guessing.

Why scrypt from the standard library: no new dependency, and it is memory-hard, so a copied
config file does not give the password away to a GPU in an afternoon. The hash string
carries its own parameters (``scrypt$n=…,r=…,p=…$salt$hash``), so a later kiosk can raise
the cost and still check old hashes.

Why a signed cookie and not a server-side session table: the kiosk restarts (updates, power
cuts) and must not need a database for this. The HMAC key lives in the kiosk's data folder
(owner-only), so a cookie from one cabinet is worthless on another, and deleting the key file
logs every technician out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "SESSION_TTL_S",
    "BadHash",
    "LoginThrottle",
    "SessionSigner",
    "TechConfigError",
    "hash_password",
    "load_or_create_session_key",
    "parse_hash",
    "read_new_password",
    "replace_technician_section",
    "set_technician_hash",
    "verify_password",
]

#: scrypt cost: 2**14 × 8 × 128 bytes = 16 MiB and ~50 ms per check on a cabinet's ARM board
DEFAULT_N, DEFAULT_R, DEFAULT_P = 2 ** 14, 8, 1
#: a config file must not be able to make one login check eat the kiosk's memory
MAX_N, MAX_R, MAX_P = 2 ** 17, 8, 2  # at most 256 MiB
MIN_PASSWORD_LENGTH = 8
#: how long a technician stays logged in without logging in again
SESSION_TTL_S = 15 * 60

_HASH = re.compile(r"scrypt\$n=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)")


class BadHash(ValueError):
    """A stored password hash that is not ``scrypt$n=…,r=…,p=…$salt$hash``."""


@dataclass(frozen=True, slots=True)
class _Parsed:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, size: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
                          dklen=size, maxmem=132 * n * r * p + (1 << 20))


def hash_password(password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R,
                  p: int = DEFAULT_P) -> str:
    """The string to store in ``[technician] password_hash`` (a fresh random salt each time).

    Raises ValueError for an empty password or parameters out of range."""
    if not isinstance(password, str) or not password:
        raise ValueError("empty password")
    _check_cost(n, r, p)
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, n, r, p, 32)
    return f"scrypt$n={n},r={r},p={p}${_b64(salt)}${_b64(digest)}"


def _check_cost(n: int, r: int, p: int) -> None:
    if n < 2 or n & (n - 1) or n > MAX_N:
        raise BadHash(f"scrypt n must be a power of two 2..{MAX_N}, got {n}")
    if not 1 <= r <= MAX_R or not 1 <= p <= MAX_P:
        raise BadHash(f"scrypt r must be 1..{MAX_R} and p 1..{MAX_P}, got r={r} p={p}")


def parse_hash(stored: str) -> _Parsed:
    """Check a stored hash's form (the config checker uses this). Raises BadHash."""
    match = _HASH.fullmatch(stored.strip()) if isinstance(stored, str) else None
    if match is None:
        raise BadHash("not a password hash made by `lendbox kiosk technician-password`")
    n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    _check_cost(n, r, p)
    try:
        salt, digest = _unb64(match.group(4)), _unb64(match.group(5))
    except (binascii.Error, ValueError) as exc:
        raise BadHash(f"salt or hash is not base64url: {exc}") from None
    if len(salt) < 8 or len(digest) < 16:
        raise BadHash("salt or hash too short")
    return _Parsed(n, r, p, salt, digest)


def verify_password(stored: str, password: str) -> bool:
    """True when ``password`` is the one ``stored`` was made from (constant-time compare).

    A malformed ``stored`` never matches (the config checker reports it at start-up)."""
    try:
        parsed = parse_hash(stored)
    except BadHash:
        return False
    if not isinstance(password, str):
        return False
    candidate = _scrypt(password, parsed.salt, parsed.n, parsed.r, parsed.p, len(parsed.digest))
    return hmac.compare_digest(candidate, parsed.digest)


# --------------------------------------------------------------------------- sessions


def load_or_create_session_key(path: Path) -> bytes:
    """The cabinet's cookie-signing key (32 random bytes, owner-only file), made on first use."""
    try:
        raw = path.read_bytes()
        if len(raw) >= 32:
            return raw
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    os.replace(tmp, path)
    return key


class SessionSigner:
    """Issues and checks ``<expiry>.<nonce>.<hmac>`` session tokens.

    ``clock``: wall seconds (injectable for tests)."""

    def __init__(self, key: bytes, *, ttl_s: float = SESSION_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise ValueError("session key too short")
        self._key = key
        self.ttl_s = ttl_s
        self._clock = clock

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    def issue(self) -> str:
        body = f"{int(self._clock() + self.ttl_s)}.{secrets.token_urlsafe(12)}"
        return f"{body}.{self._mac(body)}"

    def valid(self, token: str | None) -> bool:
        """True for a token this key signed that has not expired; False for anything else."""
        if not token or len(token) > 200 or not token.isascii():
            return False
        body, _, mac = token.rpartition(".")
        expiry, _, _nonce = body.partition(".")
        if not mac or not expiry.isdigit():
            return False
        if not hmac.compare_digest(self._mac(body), mac):
            return False
        return int(expiry) > self._clock()


class LoginThrottle:
    """Slows password guessing: after ``max_failures`` wrong passwords in a row the login is
    locked for ``lockout_s`` (doubling with each further lockout, up to an hour).

    One counter for the whole kiosk, not per address: the technician page is reached from
    the cabinet's own screen or a laptop on its service port, so the address says nothing."""

    def __init__(self, *, max_failures: int = 5, lockout_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._lockouts = 0
        self._until = 0.0

    def wait_s(self) -> float:
        """Seconds until the next attempt is allowed (0: allowed now)."""
        with self._lock:
            return max(0.0, self._until - self._clock())

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self.max_failures:
                self._until = self._clock() + min(3600.0,
                                                  self.lockout_s * 2 ** self._lockouts)
                self._lockouts += 1
                self._failures = 0

    def succeeded(self) -> None:
        with self._lock:
            self._failures = 0
            self._lockouts = 0
            self._until = 0.0


# --------------------------------------------------------------------------- the config file


class TechConfigError(Exception):
    """The password or the config file cannot be used (the message says why)."""


_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def read_new_password(stream: TextIO) -> str:
    """The new password: asked twice on a terminal, else the first line of ``stream``."""
    if stream.isatty():
        import getpass

        first = getpass.getpass("new technician password: ")
        if getpass.getpass("again: ") != first:
            raise TechConfigError("the two passwords differ")
        password = first
    else:
        password = stream.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise TechConfigError(f"the password must have at least {MIN_PASSWORD_LENGTH} "
                              f"characters")
    return password


def replace_technician_section(text: str, password_hash: str) -> str:
    """``text`` with its ``[technician]`` table (if any) replaced by one holding
    ``password_hash``; every other line stays as it was. Raises TechConfigError when the
    result would not be the same TOML apart from that table."""
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TechConfigError(f"the config is not valid TOML: {exc}") from None
    kept: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        header = _TABLE_HEADER.match(line)
        if header is not None:
            inside = header.group(1) == "technician"
        if not inside:
            kept.append(line)
    out = "".join(kept)
    if out and not out.endswith("\n"):
        out += "\n"
    out += f'\n[technician]\npassword_hash = "{password_hash}"\n'
    try:
        after = tomllib.loads(out)
    except tomllib.TOMLDecodeError as exc:
        raise TechConfigError(f"could not place [technician] in this file: {exc}") from None
    before.pop("technician", None)
    written = after.pop("technician", None)
    if after != before or written != {"password_hash": password_hash}:
        raise TechConfigError("could not place [technician] in this file without changing "
                              "the rest (is 'technician' written as dotted keys?)")
    return out


def set_technician_hash(path: str | os.PathLike[str], password: str) -> None:
    """Write ``password``'s hash into the config at ``path`` (atomically, keeping its mode)."""
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
        mode = target.stat().st_mode & 0o777
    except (OSError, UnicodeDecodeError) as exc:
        raise TechConfigError(f"cannot read {target}: {exc}") from None
    new = replace_technician_section(text, hash_password(password))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TechConfigError(f"cannot write {target}: {exc}") from None
