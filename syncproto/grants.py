"""Signed credit grants (信用借阅), Ed25519 keys, and the hashes that stand in for card numbers.

Why signatures: a cabinet lends offline on the strength of a grant it may have received long
ago, over a link it does not control. The server signs each grant with Ed25519; a cabinet
holds only public keys (``trusted_keys``), so a stolen cabinet cannot mint grants, and any
edit of a grant in transit or in the cabinet's cache is refused.

Why card hashes: card UIDs and barcodes are long-lived secrets of the reader's card (a copy
of the number is a copy of the card at most cabinets in the field). Cabinets and the server
store and exchange :func:`card_hash` values, and logs show :func:`log_id` of reader ids.

Everything here is pure: no I/O, no clock (``now`` is always a parameter).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from .messages import SignedGrant

__all__ = [
    "CARD_PEPPER",
    "GRANT_REASONS",
    "GrantError",
    "canonical_json",
    "card_hash",
    "generate_keypair",
    "grant_bytes",
    "log_id",
    "public_key_of",
    "sign_grant",
    "verify_grant",
]

#: Why :func:`verify_grant` refuses a grant (``GrantError.reason``).
GRANT_REASONS = ("unknown_key", "bad_signature", "expired", "not_yet_valid")

#: The default pepper of :func:`card_hash`. Changing it changes every stored hash, so a new
#: pepper is a new version suffix, never an edit.
CARD_PEPPER = "lendbox-card-v1"

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_HEX_UID = re.compile(r"[0-9A-Fa-f]+")
# What people and readers put between the bytes of a UID: "04 A1 B2", "04:A1:B2", "04-A1-B2".
_UID_SEPARATORS = re.compile(r"[\s:\-]+")


class GrantError(ValueError):
    """A grant a cabinet must not lend on; ``reason`` is one of :data:`GRANT_REASONS`.

    A ``ValueError`` so that callers that only know "bad input" still catch it; the reason
    is what the screen and the logs show.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in GRANT_REASONS:
            raise AssertionError(f"not a grant refusal reason: {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

    def __reduce__(self) -> tuple[Any, ...]:
        # the default would call GrantError("reason: detail"), which is not a reason
        return (type(self), (self.reason, self.detail))


# ----------------------------------------------------------------------------- keys, base64


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    """Strict base64url without padding; raises ValueError.

    Strict because a signed value must have exactly one text form: a decoder that also takes
    padding, other alphabets or stray low bits lets the same token circulate under several
    spellings, which confuses every "seen before" check keyed on the text.
    """
    if not isinstance(text, str) or _B64URL.fullmatch(text) is None or len(text) % 4 == 1:
        raise ValueError("not base64url without padding")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the pattern forbids it
        raise ValueError("not base64url without padding") from exc
    if _b64e(raw) != text:
        raise ValueError("non-canonical base64url (stray bits in the last character)")
    return raw


def _private_key(text: str) -> Ed25519PrivateKey:
    try:
        raw = _b64d(text)
    except ValueError as exc:
        raise ValueError("private key must be base64url (no padding) of 32 bytes") from exc
    if len(raw) != 32:
        raise ValueError("private key must be base64url (no padding) of 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(raw)


def _public_key(text: str) -> Ed25519PublicKey:
    try:
        raw = _b64d(text)
    except ValueError as exc:
        raise ValueError("public key must be base64url (no padding) of 32 bytes") from exc
    if len(raw) != 32:
        raise ValueError("public key must be base64url (no padding) of 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def _verify(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def generate_keypair() -> tuple[str, str]:
    """A fresh Ed25519 key pair as ``(private, public)``, each base64url of the 32 raw bytes.

    Raw 32-byte keys in base64url fit a TOML line and an HTTP header, and every Ed25519
    library in every language reads them; PEM would add nothing but parsing.
    """
    key = Ed25519PrivateKey.generate()
    return _b64e(key.private_bytes_raw()), _b64e(key.public_key().public_bytes_raw())


def public_key_of(private_key: str) -> str:
    """The public key (base64url) of a private key, for configs and key-rotation tooling.

    Raises ValueError when ``private_key`` is not base64url of 32 bytes.
    """
    return _b64e(_private_key(private_key).public_key().public_bytes_raw())


# ----------------------------------------------------------------------------- canonical JSON


def _utc_text(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: signed times must carry a UTC offset")
    # One spelling per instant: the offset a time was written with is not part of what is
    # signed, so a grant re-serialised in another zone (or with "Z") still verifies.
    u = value.astimezone(UTC)
    return (f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:"
            f"{u.second:02d}.{u.microsecond:06d}Z")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc_text(value)
    raise TypeError(f"{type(value).__name__} is not canonical-JSON serialisable")


def canonical_json(obj: Any) -> bytes:
    """``obj`` as canonical JSON: sorted keys, no whitespace, UTF-8, no NaN/Infinity.

    Datetimes become ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (always six fraction digits), so
    any implementation that follows these rules signs the same bytes. Naive datetimes and
    non-finite floats raise ValueError, other unsupported types TypeError.
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_json_default)
    return text.encode("utf-8")


def grant_bytes(grant: SignedGrant) -> bytes:
    """What a grant's signature covers: the canonical JSON of every field but ``signature``.

    ``key_id`` is inside, so a signature cannot be moved to another key's name.
    """
    return canonical_json(grant.model_dump(exclude={"signature"}))


# ----------------------------------------------------------------------------- grants


def _aware(name: str, value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


def sign_grant(*, grant_id: str, reader_id: str, tier: str, max_loans: int,
               offline_allowance: int, issued_at: datetime, expires_at: datetime, key_id: str,
               private_key: str) -> SignedGrant:
    """Sign a grant with the server key ``key_id``; the server's side of :func:`verify_grant`.

    Raises ValueError (pydantic's ValidationError is one) for fields outside the model's
    limits, naive datetimes, ``expires_at`` not after ``issued_at``, or a bad private key.
    """
    _aware("issued_at", issued_at)
    _aware("expires_at", expires_at)
    if expires_at <= issued_at:
        raise ValueError("expires_at must be after issued_at")
    key = _private_key(private_key)
    # Validate first, then sign what the model holds: a value pydantic coerced ("5" → 5)
    # must be signed as the cabinet will see it.
    draft = SignedGrant(grant_id=grant_id, reader_id=reader_id, tier=tier, max_loans=max_loans,
                        offline_allowance=offline_allowance, issued_at=issued_at,
                        expires_at=expires_at, key_id=key_id, signature="-")
    signature = _b64e(key.sign(grant_bytes(draft)))
    return SignedGrant.model_validate({**draft.model_dump(), "signature": signature})


def verify_grant(grant: SignedGrant, trusted_keys: Mapping[str, str], now: datetime,
                 skew_s: float = 0) -> None:
    """Refuse a grant the cabinet must not lend on; returns None when it is good at ``now``.

    Checks, in this order: the key is trusted (``unknown_key``), the signature is the key's
    over :func:`grant_bytes` (``bad_signature``), then the validity window widened by
    ``skew_s`` on both sides for clocks that disagree (``not_yet_valid``, ``expired``;
    ``expires_at`` itself is already expired). Only a genuine grant gets a time-based
    reason, so those reasons can be shown to the reader.

    Raises :class:`GrantError`; a naive ``now`` or a negative ``skew_s`` is the caller's bug
    and raises a plain ValueError.
    """
    _aware("now", now)
    if skew_s < 0:
        raise ValueError("skew_s must not be negative")
    if not isinstance(grant, SignedGrant):
        raise GrantError("bad_signature", "not a SignedGrant")
    public = trusted_keys.get(grant.key_id)
    if public is None:
        raise GrantError("unknown_key", f"key {grant.key_id!r} is not trusted")
    try:
        key = _public_key(public)
    except ValueError as exc:  # a broken trusted key can vouch for nothing
        raise GrantError("unknown_key", f"trusted key {grant.key_id!r}: {exc}") from exc
    try:
        signature = _b64d(grant.signature)
        message = grant_bytes(grant)
    except ValueError as exc:  # bad base64, a naive time: nothing we sign looks like this
        raise GrantError("bad_signature", str(exc)) from exc
    if len(signature) != 64 or not _verify(key, signature, message):
        raise GrantError("bad_signature", f"grant {grant.grant_id!r}")
    if now.timestamp() + skew_s < grant.issued_at.timestamp():
        raise GrantError("not_yet_valid", f"grant {grant.grant_id!r} starts {grant.issued_at}")
    if now.timestamp() - skew_s >= grant.expires_at.timestamp():
        raise GrantError("expired", f"grant {grant.grant_id!r} ended {grant.expires_at}")


# ----------------------------------------------------------------------------- hashes


def _normalise_card(value: str) -> str:
    # NFKC first: a keyboard-wedge scanner behind a Chinese IME can type full-width digits
    # ("０４Ａ１"), which must hash like the ASCII ones.
    text = unicodedata.normalize("NFKC", value).strip()
    compact = _UID_SEPARATORS.sub("", text)
    if compact and _HEX_UID.fullmatch(compact):
        # A UID (or an all-digit barcode): readers print hex in either case and with or
        # without separators; the number is the same card.
        return compact.upper()
    return text


def card_hash(value: str, pepper: str = CARD_PEPPER) -> str:
    """The stand-in for a card UID or barcode: hex SHA-256 of ``pepper``, NUL, the value.

    The value is normalised first (NFKC, surrounding whitespace stripped; when what is left
    is hex digits with optional spaces, colons or hyphens between them, those separators go
    and it is upper-cased), so ``"04 a1 b2 c3"`` and ``"04A1B2C3"`` are one card. Other
    barcodes keep their case. The pepper keeps the hashes of one deployment from matching
    a precomputed table of card numbers. Raises ValueError for an empty value.
    """
    if not isinstance(value, str):
        raise ValueError("card value must be a str")
    normalised = _normalise_card(value)
    if not normalised:
        raise ValueError("empty card value")
    data = pepper.encode("utf-8", "surrogatepass") + b"\x00" + normalised.encode(
        "utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def log_id(reader_id: str) -> str:
    """What logs show of a reader: 12 hex chars of SHA-256 of the reader id.

    Enough to follow one reader through a day's logs without writing their library number;
    not a secret (reader ids are guessable, so the hash can be brute-forced), only a way to
    keep numbers out of logs that are copied around.
    """
    data = b"lendbox-log-v1\x00" + str(reader_id).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:12]

