"""The signature on every cabinet → server request.

Why sign requests and not only use TLS: TLS says which server the cabinet talks to, not which
cabinet is talking. Each cabinet has its own Ed25519 key (the server holds the public half),
so a request can only claim the events, grants and readers of the cabinet that signed it,
and a captured request cannot be sent again (nonce) or later (timestamp window).

Four headers (names are case-insensitive, as HTTP says):

- ``X-Lendbox-Cabinet``: the cabinet id (visible ASCII, 1..64 characters);
- ``X-Lendbox-Timestamp``: Unix seconds (decimal) on the cabinet's corrected clock;
- ``X-Lendbox-Nonce``: 16..64 base64url characters, new for every request;
- ``X-Lendbox-Signature``: base64url (no padding) of the Ed25519 signature over these
  lines joined by ``\\n``: ``lendbox-request-v1``, the method (upper case), the path (the
  URL path without query, as ``request.url.path`` gives it in httpx and Starlette), the
  cabinet id, the timestamp, the nonce, the hex SHA-256 of the body.

:func:`verify_request` raises :class:`SignatureError` whose ``reason`` is one of
``missing_header``, ``malformed``, ``out_of_window``, ``bad_signature``, ``replayed``.

Pure: no I/O, no clock (``now`` is a parameter); the nonce store is the caller's callback.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .grants import _b64d, _b64e, _private_key, _public_key, _verify

__all__ = [
    "HEADER_CABINET",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "SIGNATURE_REASONS",
    "SignatureError",
    "request_cabinet",
    "sign_request",
    "verify_request",
]

HEADER_CABINET = "X-Lendbox-Cabinet"
HEADER_TIMESTAMP = "X-Lendbox-Timestamp"
HEADER_NONCE = "X-Lendbox-Nonce"
HEADER_SIGNATURE = "X-Lendbox-Signature"
#: Why :func:`verify_request` refuses a request (``SignatureError.reason``).
SIGNATURE_REASONS = ("missing_header", "malformed", "out_of_window", "bad_signature",
                     "replayed")

_TAG = "lendbox-request-v1"
# HTTP header values are bytes a server may decode as Latin-1: only visible ASCII survives
# every framework unchanged, so that is what a cabinet id may hold.
_CABINET = re.compile(r"[\x21-\x7e]{1,64}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_METHOD = re.compile(r"[A-Za-z]{1,16}")
# Fields are joined by newlines; a control character in the path could shift them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SignatureError(ValueError):
    """A request the server must refuse (401); ``reason`` is one of :data:`SIGNATURE_REASONS`.

    A ``ValueError`` for callers that only know "bad input"; the reason goes back to the
    cabinet, whose operator needs to tell a wrong clock (``out_of_window``) from a wrong key.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in SIGNATURE_REASONS:
            raise AssertionError(f"not a signature refusal reason: {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.detail))


def _aware(now: datetime) -> None:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _message(method: str, path: str, cabinet_id: str, timestamp: str, nonce: str,
             body: bytes) -> bytes:
    lines = (_TAG, method.upper(), path, cabinet_id, timestamp, nonce,
             hashlib.sha256(body).hexdigest())
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def _check_method_path(method: str, path: str) -> str | None:
    """What is wrong with a method and path, or None."""
    if not isinstance(method, str) or _METHOD.fullmatch(method) is None:
        return "method must be ASCII letters"
    if not isinstance(path, str) or not path.startswith("/") or _CONTROL.search(path):
        return "path must start with '/' and hold no control characters"
    return None


def _body(body: bytes | bytearray | memoryview) -> bytes:
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("body must be bytes")
    return bytes(body)


def sign_request(method: str, path: str, body: bytes, *, cabinet_id: str, private_key: str,
                 now: datetime, nonce: str | None = None) -> dict[str, str]:
    """The four ``X-Lendbox-*`` headers that make this request the cabinet's.

    ``now`` is the cabinet clock corrected by its measured offset from the server, since the
    server refuses timestamps outside its window. ``nonce`` defaults to 128 random bits.
    Raises ValueError for a method, path, cabinet id, nonce or key the server could not
    verify.
    """
    _aware(now)
    problem = _check_method_path(method, path)
    if problem:
        raise ValueError(problem)
    if not isinstance(cabinet_id, str) or _CABINET.fullmatch(cabinet_id) is None:
        raise ValueError("cabinet_id must be 1..64 visible ASCII characters")
    if nonce is None:
        nonce = secrets.token_urlsafe(16)
    if not isinstance(nonce, str) or _NONCE.fullmatch(nonce) is None:
        raise ValueError("nonce must be 16..64 base64url characters")
    key = _private_key(private_key)
    seconds = math.floor(now.timestamp())
    if seconds < 0:
        raise ValueError("now must be after 1970")
    timestamp = str(seconds)
    signature = key.sign(_message(method, path, cabinet_id, timestamp, nonce, _body(body)))
    return {HEADER_CABINET: cabinet_id, HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce,
            HEADER_SIGNATURE: _b64e(signature)}


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Our headers by lower-case name; SignatureError when one is there twice.

    Frameworks disagree on case (Starlette lower-cases, a test dict may not); two values
    for one name must not let the verifier and a proxy read different ones.
    """
    wanted = {h.lower() for h in (HEADER_CABINET, HEADER_TIMESTAMP, HEADER_NONCE,
                                  HEADER_SIGNATURE)}
    found: dict[str, str] = {}
    try:
        items = list(headers.items())
    except Exception as exc:  # anything without items() is not headers
        raise SignatureError("malformed", "headers are not a mapping") from exc
    for name, value in items:
        if not isinstance(name, str):
            continue
        low = name.lower()
        if low not in wanted:
            continue
        if low in found:
            raise SignatureError("malformed", f"{name} given twice")
        if not isinstance(value, str):
            raise SignatureError("malformed", f"{name} is not text")
        found[low] = value.strip()
    return found


def _header(found: Mapping[str, str], name: str) -> str:
    value = found.get(name.lower())
    if not value:
        raise SignatureError("missing_header", name)
    return value


def request_cabinet(headers: Mapping[str, str]) -> str:
    """The cabinet id a request claims, before it is verified: to look up its public key.

    Raises SignatureError (``missing_header``, ``malformed``).
    """
    cabinet_id = _header(_lower_headers(headers), HEADER_CABINET)
    if _CABINET.fullmatch(cabinet_id) is None:
        raise SignatureError("malformed", f"{HEADER_CABINET} is not 1..64 visible ASCII")
    return cabinet_id


def verify_request(headers: Mapping[str, str], method: str, path: str, body: bytes, *,
                   public_key: str, now: datetime, window_s: float = 300,
                   seen_nonce: Callable[[str], bool]) -> str:
    """The id of the cabinet that signed this request, or SignatureError saying why not.

    Checks, in this order: the headers are there (``missing_header``) and well-formed
    (``malformed``), the timestamp is within ``window_s`` of ``now`` either way
    (``out_of_window``: usually a cabinet clock that drifted), the signature is
    ``public_key``'s (``bad_signature``), and only then ``seen_nonce(nonce)``: it must
    record the nonce and return True when it had seen it already (``replayed``). Asking it
    last keeps forged requests from filling the nonce store; keeping nonces for
    ``2 * window_s`` is enough, as older timestamps are refused anyway.

    ``public_key`` is the key of the cabinet :func:`request_cabinet` names. A public key
    that is not base64url of 32 bytes, a naive ``now`` or a negative window is the caller's
    bug: plain ValueError.
    """
    _aware(now)
    if window_s < 0:
        raise ValueError("window_s must not be negative")
    key = _public_key(public_key)
    found = _lower_headers(headers)
    cabinet_id = _header(found, HEADER_CABINET)
    timestamp = _header(found, HEADER_TIMESTAMP)
    nonce = _header(found, HEADER_NONCE)
    signature_text = _header(found, HEADER_SIGNATURE)
    if _CABINET.fullmatch(cabinet_id) is None:
        raise SignatureError("malformed", f"{HEADER_CABINET} is not 1..64 visible ASCII")
    if _TIMESTAMP.fullmatch(timestamp) is None:
        raise SignatureError("malformed", f"{HEADER_TIMESTAMP} is not Unix seconds")
    if _NONCE.fullmatch(nonce) is None:
        raise SignatureError("malformed", f"{HEADER_NONCE} is not 16..64 base64url characters")
    try:
        signature = _b64d(signature_text)
    except ValueError as exc:
        raise SignatureError("malformed", f"{HEADER_SIGNATURE}: {exc}") from exc
    if len(signature) != 64:
        raise SignatureError("malformed", f"{HEADER_SIGNATURE} is not 64 bytes")
    problem = _check_method_path(method, path)
    if problem:
        raise SignatureError("malformed", problem)
    try:
        data = _body(body)
    except TypeError as exc:
        raise SignatureError("malformed", str(exc)) from exc

    offset = int(timestamp) - now.timestamp()
    if abs(offset) > window_s:
        raise SignatureError("out_of_window", f"cabinet clock {offset:+.0f} s from ours")
    if not _verify(key, signature, _message(method, path, cabinet_id, timestamp, nonce, data)):
        raise SignatureError("bad_signature", f"cabinet {cabinet_id!r}")
    if seen_nonce(nonce):
        raise SignatureError("replayed", f"nonce of cabinet {cabinet_id!r} seen before")
    return cabinet_id
