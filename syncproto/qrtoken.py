"""The dynamic QR code of the electronic reader card (电子读者证).

Why a signed, short-lived token: the reader's phone shows a QR code a cabinet camera reads,
often with no server to ask. The server (through the reader's app) signs who the reader is
and for how long (at most 60 s), so a cabinet can trust it offline, and a screenshot or a
photo of someone's screen is worth a minute at most; the nonce lets the cabinet refuse a
second use within that minute (its ledger keeps used nonces: replay is the cabinet's job).

Why binary in base64url: an Ed25519 signature alone is 64 bytes; JSON around it and an
embedded grant would push the code to a size phone screens and cabinet cameras read badly.
The layout is in docs/qr-token.md; the text is ``LB1.`` + base64url (no padding).

Pure: no I/O, no clock (``now`` is a parameter). The nonce default comes from ``secrets``.
"""

from __future__ import annotations

import base64
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from .grants import _b64d, _b64e, _private_key, _public_key, _verify
from .messages import SignedGrant

__all__ = [
    "MAX_TTL_S",
    "NONCE_BYTES",
    "PREFIX",
    "QrClaims",
    "TOKEN_REASONS",
    "TokenError",
    "issue_token",
    "verify_token",
]

#: The text form's version prefix: a token of another version is refused as malformed.
PREFIX = "LB1."
#: Why :func:`verify_token` refuses a token (``TokenError.reason``).
TOKEN_REASONS = ("malformed", "truncated", "unknown_key", "bad_signature", "expired",
                 "not_yet_valid", "ttl_too_long")
#: The longest lifetime :func:`issue_token` signs.
MAX_TTL_S = 60
#: Random bytes per token: enough that two tokens of a 5-minute window never share one.
NONCE_BYTES = 8

# Domain separation: the same server keys sign grants (canonical JSON, starting "{") and
# tokens; this prefix makes a token's signed bytes mean nothing as a grant and vice versa.
_SIGN_TAG = b"lendbox-qr-v1\x00"
_FLAG_GRANT = 0x01
_SIGNATURE_BYTES = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# (field name, most characters, as in messages.SignedGrant)
_ID_LIMITS = {"key_id": 32, "reader_id": 64, "grant_id": 64, "tier": 32}
# A text field is one length byte (bytes - 1) and 1..256 bytes of UTF-8: 64 characters of
# 4 bytes each still fit, and no length byte value means "empty", which no id may be.
# The longest token: every id at its character limit in 4-byte UTF-8, with a grant.
_MAX_BYTES = (1 + 4 + 1 + NONCE_BYTES                        # flags, issued_at, ttl, nonce
              + 3 * 1 + 4 * (32 + 64 + 64)                   # key_id, reader_id, grant_id
              + 1 + 4 * 32 + 1 + 1 + 8 + 8 + 1 + 4 * 32 + 64  # the grant record
              + _SIGNATURE_BYTES)
# Longest possible text: longer input is refused before decoding anything.
_MAX_TEXT = len(PREFIX) + (4 * _MAX_BYTES + 2) // 3


class TokenError(ValueError):
    """A QR token the cabinet must refuse; ``reason`` is one of :data:`TOKEN_REASONS`.

    A ``ValueError`` for callers that only know "bad input"; the reason is what the screen
    says (an expired code means "refresh the code", a bad signature means "not our card").
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in TOKEN_REASONS:
            raise AssertionError(f"not a token refusal reason: {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.detail))


@dataclass(frozen=True, slots=True, kw_only=True)
class QrClaims:
    """What a verified token says. ``nonce`` is for the cabinet's replay check; ``grant``,
    when the token carries one, is exactly what the server signed, but still to be checked
    with :func:`syncproto.grants.verify_grant` before lending on it (its own key and window).
    ``issued_at`` has whole seconds (the token carries no fraction)."""

    reader_id: str
    grant_id: str
    issued_at: datetime
    expires_at: datetime
    nonce: bytes
    key_id: str
    grant: SignedGrant | None = None


# ----------------------------------------------------------------------------- encoding


def _id_field(name: str, value: str) -> bytes:
    limit = _ID_LIMITS[name]
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise ValueError(f"{name} must be a str of 1..{limit} characters")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{name} is not encodable as UTF-8 (lone surrogate)") from exc
    return bytes([len(raw) - 1]) + raw


def _micros(name: str, value: datetime) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _grant_record(grant: SignedGrant, reader_id: str, grant_id: str) -> bytes:
    if not isinstance(grant, SignedGrant):
        raise ValueError("grant must be a SignedGrant")
    # The record leaves out the grant's ids and takes the token's: they must be the same.
    if grant.reader_id != reader_id or grant.grant_id != grant_id:
        raise ValueError("the embedded grant must be for the token's reader_id and grant_id")
    try:
        signature = _b64d(grant.signature)
    except ValueError as exc:
        raise ValueError(f"grant signature: {exc}") from exc
    if len(signature) != _SIGNATURE_BYTES:
        raise ValueError("grant signature must be 64 bytes")
    return (_id_field("tier", grant.tier)
            + bytes([grant.max_loans, grant.offline_allowance])
            + struct.pack(">qq", _micros("grant issued_at", grant.issued_at),
                          _micros("grant expires_at", grant.expires_at))
            + _id_field("key_id", grant.key_id)
            + signature)


def issue_token(*, reader_id: str, grant_id: str, issued_at: datetime, ttl_s: int, key_id: str,
                private_key: str, nonce: bytes | None = None,
                grant: SignedGrant | None = None) -> str:
    """Sign a QR token for ``reader_id`` valid ``ttl_s`` seconds from ``issued_at``.

    ``issued_at`` is rounded down to the second (the token carries whole seconds, so it
    never lives longer than asked). ``grant``, when given, travels inside the token so an
    offline cabinet can lend on credit to a reader it has never seen; it must be the
    reader's grant ``grant_id``.

    Raises ValueError for ``ttl_s`` outside 1..60, ids outside the model limits, a naive or
    pre-1970 ``issued_at``, a nonce not of :data:`NONCE_BYTES` bytes, or a bad private key.
    """
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 1 <= ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be an int of 1..{MAX_TTL_S} seconds")
    if not isinstance(issued_at, datetime):
        raise ValueError("issued_at must be a datetime")
    seconds = _micros("issued_at", issued_at) // 1_000_000
    if not 0 <= seconds < 2**32:
        raise ValueError("issued_at must be between 1970 and 2106")
    if nonce is None:
        nonce = secrets.token_bytes(NONCE_BYTES)
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
        raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
    key = _private_key(private_key)
    ids = _id_field("key_id", key_id) + _id_field("reader_id", reader_id) + _id_field(
        "grant_id", grant_id)
    record = b"" if grant is None else _grant_record(grant, reader_id, grant_id)
    flags = _FLAG_GRANT if grant is not None else 0
    body = struct.pack(">BIB", flags, seconds, ttl_s) + nonce + ids + record
    signature = key.sign(_SIGN_TAG + body)
    return PREFIX + _b64e(body + signature)


# ----------------------------------------------------------------------------- decoding


class _Short(Exception):
    """The bytes ran out: the token was cut (camera, copy/paste), not forged."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _Short
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def text(self, name: str) -> str:
        raw = self.take(self.take(1)[0] + 1)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TokenError("malformed", f"{name} is not UTF-8") from exc
        if len(value) > _ID_LIMITS[name]:
            raise TokenError("malformed", f"{name} longer than {_ID_LIMITS[name]} characters")
        return value


def _lenient_b64(text: str) -> tuple[bytes, bool]:
    """The bytes of a base64url text, and whether the text is their one canonical spelling.

    A cut text ends mid-group (a dangling character, stray low bits); decoding what is there
    still yields a prefix of the real bytes, so the parser can say ``truncated`` rather than
    the vaguer ``malformed``. ``text`` holds only base64url characters.
    """
    usable = text[: len(text) - (len(text) % 4 == 1)]
    # the stdlib ignores stray low bits when padding is present: exactly the prefix wanted
    raw = base64.urlsafe_b64decode(usable + "=" * (-len(usable) % 4))
    return raw, _b64e(raw) == text


_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _parse(data: bytes) -> tuple[bytes, QrClaims, int]:
    """Split decoded bytes into (signed body, claims, ttl); TokenError for bad structure."""
    reader = _Reader(data)
    try:
        flags, seconds, ttl = struct.unpack(">BIB", reader.take(6))
        if flags & ~_FLAG_GRANT:
            raise TokenError("malformed", f"unknown flags {flags:#04x}")
        if ttl == 0:
            raise TokenError("malformed", "ttl of 0 s")
        nonce = reader.take(NONCE_BYTES)
        key_id = reader.text("key_id")
        reader_id = reader.text("reader_id")
        grant_id = reader.text("grant_id")
        grant = _parse_grant(reader, reader_id, grant_id) if flags & _FLAG_GRANT else None
        rest = len(data) - reader.pos
        if rest < _SIGNATURE_BYTES:
            raise _Short
    except _Short:
        raise TokenError("truncated", f"{len(data)} bytes end inside the token") from None
    if rest > _SIGNATURE_BYTES:
        raise TokenError("malformed", f"{rest - _SIGNATURE_BYTES} bytes after the signature")
    issued_at = _EPOCH + timedelta(seconds=seconds)
    claims = QrClaims(reader_id=reader_id, grant_id=grant_id, issued_at=issued_at,
                      expires_at=issued_at + timedelta(seconds=ttl), nonce=nonce,
                      key_id=key_id, grant=grant)
    return data[:reader.pos], claims, ttl


def _parse_grant(reader: _Reader, reader_id: str, grant_id: str) -> SignedGrant:
    tier = reader.text("tier")
    max_loans, offline_allowance = reader.take(2)
    issued_us, expires_us = struct.unpack(">qq", reader.take(16))
    key_id = reader.text("key_id")
    signature = reader.take(_SIGNATURE_BYTES)
    try:
        issued_at = _EPOCH + timedelta(microseconds=issued_us)
        expires_at = _EPOCH + timedelta(microseconds=expires_us)
    except OverflowError as exc:
        raise TokenError("malformed", "grant time out of range") from exc
    try:
        return SignedGrant(grant_id=grant_id, reader_id=reader_id, tier=tier,
                           max_loans=max_loans, offline_allowance=offline_allowance,
                           issued_at=issued_at, expires_at=expires_at, key_id=key_id,
                           signature=_b64e(signature))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise TokenError("malformed", f"embedded grant: {problems}") from None


def verify_token(text: str, trusted_keys: Mapping[str, str], now: datetime, *,
                 skew_s: float = 120.0, max_ttl_s: int = MAX_TTL_S) -> QrClaims:
    """The claims of a QR token, or :class:`TokenError` saying why the cabinet refuses it.

    Checks, in this order: the text and its structure (``malformed``; ``truncated`` when it
    ends early, as a half-read or half-pasted code does), the key (``unknown_key``: not in
    ``trusted_keys``, which holds the current and the previous server keys during a
    rotation), the signature (``bad_signature``), the lifetime (``ttl_too_long`` above
    ``max_ttl_s``), then the clock: valid from ``issued_at - skew_s`` until before
    ``expires_at + skew_s`` (``not_yet_valid``, ``expired``); the skew absorbs a phone and a
    cabinet that disagree on the time. Only genuine tokens get the last three reasons.

    The nonce is not checked here: the cabinet's ledger must refuse a nonce seen before,
    keeping each until ``expires_at + skew_s``. A naive ``now`` or a negative ``skew_s`` is
    the caller's bug: plain ValueError.
    """
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    if skew_s < 0:
        raise ValueError("skew_s must not be negative")
    if not isinstance(text, str):
        raise TokenError("malformed", "not text")
    text = text.strip()
    if len(text) > _MAX_TEXT:
        raise TokenError("malformed", f"{len(text)} characters, longer than any token")
    if not text.startswith(PREFIX):
        if PREFIX.startswith(text):
            raise TokenError("truncated", "ends inside the prefix")
        raise TokenError("malformed", f"does not start with {PREFIX!r}")
    payload = text[len(PREFIX):]
    if not _B64_ALPHABET.issuperset(payload):
        raise TokenError("malformed", "not base64url after the prefix")
    data, canonical = _lenient_b64(payload)
    body, claims, ttl = _parse(data)
    if not canonical:  # complete bytes, but spelt in a second way
        raise TokenError("malformed", "non-canonical base64url")

    public = trusted_keys.get(claims.key_id)
    if public is None:
        raise TokenError("unknown_key", f"key {claims.key_id!r} is not trusted")
    try:
        key = _public_key(public)
    except ValueError as exc:
        raise TokenError("unknown_key", f"trusted key {claims.key_id!r}: {exc}") from exc
    if not _verify(key, data[len(body):], _SIGN_TAG + body):
        raise TokenError("bad_signature")

    if ttl > max_ttl_s:
        raise TokenError("ttl_too_long", f"{ttl} s > {max_ttl_s} s")
    at = now.timestamp()
    if at + skew_s < claims.issued_at.timestamp():
        raise TokenError("not_yet_valid", f"issued {claims.issued_at}")
    if at - skew_s >= claims.expires_at.timestamp():
        raise TokenError("expired", f"expired {claims.expires_at}")
    return claims
