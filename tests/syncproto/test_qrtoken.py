"""The dynamic QR token of the e-reader card (syncproto.qrtoken), against docs/qr-token.md."""

from __future__ import annotations

import pickle
import re
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, example, given
from hypothesis import strategies as st

from syncproto import SignedGrant
from syncproto.grants import sign_grant, verify_grant
from syncproto.qrtoken import PREFIX, QrClaims, TokenError, issue_token, verify_token
from tests.syncproto.helpers import (
    PRIV1,
    PRIV2,
    PRIV_X,
    PUB1,
    PUB2,
    T0,
    T0_UTC,
    TRUSTED,
    b64,
    ids,
    key_from_seed,
    times,
    unb64,
)

DOC = (Path(__file__).resolve().parents[2] / "docs" / "qr-token.md").read_text(encoding="utf-8")
SEC = timedelta(seconds=1)
NONCE = bytes(range(8))


def _grant(reader_id: str = "0012345678", grant_id: str = "g-000123", key_id: str = "k1",
           private_key: str = PRIV1, issued_at: datetime = T0) -> SignedGrant:
    return sign_grant(grant_id=grant_id, reader_id=reader_id, tier="standard", max_loans=10,
                      offline_allowance=2, issued_at=issued_at,
                      expires_at=issued_at + timedelta(days=7), key_id=key_id,
                      private_key=private_key)


def _token(**over: object) -> str:
    fields: dict[str, object] = dict(reader_id="0012345678", grant_id="g-000123", issued_at=T0,
                                     ttl_s=60, key_id="k1", private_key=PRIV1)
    fields.update(over)
    return issue_token(**fields)  # type: ignore[arg-type]


def _reason(text: object, keys: dict[str, str] = TRUSTED, now: datetime = T0,
            **kw: object) -> str | None:
    try:
        verify_token(text, keys, now, **kw)  # type: ignore[arg-type]
    except TokenError as exc:
        return exc.reason
    return None


def _bytes(token: str) -> bytes:
    assert token.startswith(PREFIX)
    return unb64(token[len(PREFIX):])


def _text(raw: bytes) -> str:
    return PREFIX + b64(raw)


def _field(value: bytes) -> bytes:
    return bytes([len(value) - 1]) + value


def _raw(*, seconds: int, ttl: int, nonce: bytes = NONCE, key_id: bytes = b"k1",
         reader_id: bytes = b"0012345678", grant_id: bytes = b"g-000123", flags: int | None = None,
         grant: bytes = b"", private_key: str = PRIV1) -> str:
    """A token built from the layout in docs/qr-token.md, independently of qrtoken.py."""
    if flags is None:
        flags = 1 if grant else 0
    body = (bytes([flags]) + struct.pack(">I", seconds) + bytes([ttl]) + nonce + _field(key_id)
            + _field(reader_id) + _field(grant_id) + grant)
    key = Ed25519PrivateKey.from_private_bytes(unb64(private_key))
    return _text(body + key.sign(b"lendbox-qr-v1\x00" + body))


def _grant_record(grant: SignedGrant, max_loans: int | None = None) -> bytes:
    def micros(at: datetime) -> int:
        return round((at - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))

    return (_field(grant.tier.encode()) + bytes([grant.max_loans if max_loans is None else max_loans,
                                                 grant.offline_allowance])
            + struct.pack(">qq", micros(grant.issued_at), micros(grant.expires_at))
            + _field(grant.key_id.encode()) + unb64(grant.signature))


# ----------------------------------------------------------------------------- round trip


@given(reader_id=ids(64), grant_id=ids(64), key_id=ids(32), issued=times,
       ttl=st.integers(1, 60), nonce=st.binary(min_size=8, max_size=8), with_grant=st.booleans())
@example(reader_id="读者证" * 21 + "张", grant_id="𠀀" * 64, key_id="密钥" * 16,
         issued=T0, ttl=60, nonce=NONCE, with_grant=True)
def test_issue_verify_round_trip(reader_id: str, grant_id: str, key_id: str, issued: datetime,
                                 ttl: int, nonce: bytes, with_grant: bool) -> None:
    grant = _grant(reader_id, grant_id, key_id, issued_at=issued) if with_grant else None
    text = issue_token(reader_id=reader_id, grant_id=grant_id, issued_at=issued, ttl_s=ttl,
                       key_id=key_id, private_key=PRIV1, nonce=nonce, grant=grant)
    assert re.fullmatch(r"LB1\.[A-Za-z0-9_-]+", text)
    whole = issued.replace(microsecond=0)
    claims = verify_token(text, {key_id: PUB1}, issued)
    assert claims == QrClaims(reader_id=reader_id, grant_id=grant_id, issued_at=whole,
                              expires_at=whole + ttl * SEC, nonce=nonce, key_id=key_id,
                              grant=grant)
    if grant is not None:  # the embedded grant is still the server's, signature and all
        assert claims.grant is not None
        verify_grant(claims.grant, {key_id: PUB1}, issued)
        assert claims.grant.model_dump() == grant.model_dump()


def test_issue_matches_the_documented_layout() -> None:
    seconds = int(T0.timestamp())
    assert _token(nonce=NONCE) == _raw(seconds=seconds, ttl=60)
    grant = _grant()
    assert _token(nonce=NONCE, grant=grant) == _raw(seconds=seconds, ttl=60,
                                                    grant=_grant_record(grant))


def test_nonces_are_fresh_by_default() -> None:
    nonces = {verify_token(_token(), TRUSTED, T0).nonce for _ in range(50)}
    assert len(nonces) == 50 and all(len(n) == 8 for n in nonces)


def test_issued_at_is_whole_seconds_rounded_down() -> None:
    claims = verify_token(_token(issued_at=T0 + timedelta(microseconds=999_999)), TRUSTED, T0)
    assert claims.issued_at == T0_UTC and claims.expires_at == T0_UTC + 60 * SEC


# ----------------------------------------------------------------------------- test vectors

SEED = bytes(range(32))
VECTOR_PLAIN = ("LB1.AGg7nwg8AAECAwQFBgcBazEJMDAxMjM0NTY3OAdnLTAwMDEyMzzrOsat1Et6VcEoPFMzDqhx54xn7rGJHBrq"
                "9TRkAXF_FZ6WgvrrQroHWImIREBhP64eo4o89rizEDlpX2e4wQY")
VECTOR_GRANT = ("LB1.AWg7nwg8AAECAwQFBgcBazEJMDAxMjM0NTY3OAdnLTAwMDEyMwdzdGFuZGFyZAoCAAY2d79f0gAABjcEkENy"
                "AAFrMchYVWqc0LySWa8QkMODWjZND9gqRJyYnbZZHXboShfyGsIOFQJ0SWqITLEscBh9lRAEwq76nM7FqewTBb10"
                "3wUZP45zUqo3aGJzEJe6-gme80qI8JCwvfY1ABpnlsGAe8igc7cuD-4W1EJpNawfmgfNEeL6oM0rM6-f8_bh9z8E")


def test_the_documented_test_vectors() -> None:
    private, public = key_from_seed(SEED)
    at = datetime(2025, 6, 1, 0, 30, tzinfo=UTC)
    grant = sign_grant(grant_id="g-000123", reader_id="0012345678", tier="standard",
                       max_loans=10, offline_allowance=2, issued_at=at,
                       expires_at=at + timedelta(days=7), key_id="k1", private_key=private)
    plain = issue_token(reader_id="0012345678", grant_id="g-000123", issued_at=at, ttl_s=60,
                        key_id="k1", private_key=private, nonce=NONCE)
    embedded = issue_token(reader_id="0012345678", grant_id="g-000123", issued_at=at, ttl_s=60,
                           key_id="k1", private_key=private, nonce=NONCE, grant=grant)
    assert (plain, embedded) == (VECTOR_PLAIN, VECTOR_GRANT)
    assert (len(plain), len(embedded)) == (139, 264)
    flat = re.sub(r"\s+", "", DOC)
    for text in (private, public, VECTOR_PLAIN, VECTOR_GRANT, grant.signature):
        assert text in flat, f"{text[:20]}… is not in docs/qr-token.md"
    assert verify_token(embedded, {"k1": public}, at).grant == grant


@pytest.mark.parametrize(("reader_len", "grant_len", "tier_len", "plain", "with_grant"), [
    (10, 8, 8, 139, 264),     # the test vector
    (10, 36, 8, 176, 302),    # a UUID grant id
    (64, 64, 32, 286, 443),   # every id at its ASCII limit
])
def test_documented_lengths(reader_len: int, grant_len: int, tier_len: int, plain: int,
                            with_grant: int) -> None:
    reader_id, grant_id, tier = "R" * reader_len, "G" * grant_len, "T" * tier_len
    grant = sign_grant(grant_id=grant_id, reader_id=reader_id, tier=tier, max_loans=10,
                       offline_allowance=2, issued_at=T0, expires_at=T0 + SEC, key_id="k1",
                       private_key=PRIV1)
    a = _token(reader_id=reader_id, grant_id=grant_id)
    b = _token(reader_id=reader_id, grant_id=grant_id, grant=grant)
    assert (len(a), len(b)) == (plain, with_grant)
    n = 81 + 2 + reader_len + grant_len  # the formula in the docs
    assert len(a) == 4 + -(-4 * n // 3)
    assert len(b) == 4 + -(-4 * (n + 84 + tier_len + 2) // 3)
    assert f"| {plain} |" in DOC and f"| {with_grant} |" in DOC


# ----------------------------------------------------------------------------- tampering

TOKENS = [_token(nonce=NONCE), _token(nonce=NONCE, grant=_grant())]


@given(which=st.sampled_from(TOKENS), data=st.data())
def test_any_single_byte_change_is_rejected(which: str, data: st.DataObject) -> None:
    raw = bytearray(_bytes(which))
    index = data.draw(st.integers(0, len(raw) - 1), label="index")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[index]), label="new byte")
    raw[index] = new
    assert _reason(_text(bytes(raw)), {"k1": PUB1, "k2": PUB2}) is not None


def test_every_byte_position_and_flip_is_rejected() -> None:
    for token in TOKENS:
        raw = _bytes(token)
        for index in range(len(raw)):
            for mask in (0x01, 0x80, 0xFF):
                changed = bytearray(raw)
                changed[index] ^= mask
                assert _reason(_text(bytes(changed))) is not None, (index, mask)


def test_every_truncation_is_rejected_as_truncated() -> None:
    for token in TOKENS:
        raw = _bytes(token)
        for cut in range(len(raw)):
            assert _reason(_text(raw[:cut])) == "truncated", cut
        for cut in range(len(token)):  # as text: mid-group cuts too, and inside "LB1."
            assert _reason(token[:cut]) == "truncated", cut


@given(which=st.sampled_from(TOKENS), cut=st.integers(0, 600))
def test_a_cut_token_is_never_accepted(which: str, cut: int) -> None:
    assume(cut < len(which))
    assert _reason(which[:cut]) in ("truncated", "malformed")


def test_extra_bytes_after_the_signature_are_malformed() -> None:
    assert _reason(_text(_bytes(TOKENS[0]) + b"\x00")) == "malformed"
    assert _reason(_text(_bytes(TOKENS[1]) + b"\x00" * 3)) == "malformed"


@given(garbage=st.one_of(st.text(max_size=300), st.binary(max_size=600).map(_text),
                         st.binary(max_size=300).map(lambda b: PREFIX + b64(b)[:-1])))
def test_garbage_is_only_ever_a_token_error(garbage: str) -> None:
    assert _reason(garbage) in ("malformed", "truncated", "unknown_key", "bad_signature")


@pytest.mark.parametrize(("text", "reason"), [
    ("", "truncated"),
    ("LB", "truncated"),
    ("LB1.", "truncated"),
    ("LBX1:r=0012345678;t=1;x=1767225600;s=c2ln", "malformed"),
    ("LB2." + TOKENS[0][4:], "malformed"),
    ("lb1." + TOKENS[0][4:], "malformed"),
    (TOKENS[0].replace("LB1.", "LB1.="), "malformed"),
    (TOKENS[0] + "=", "malformed"),
    (TOKENS[0][:40] + "+" + TOKENS[0][41:], "malformed"),
    (TOKENS[0][:40] + "中" + TOKENS[0][41:], "malformed"),
    ("LB1." + "A" * 5000, "malformed"),
    (b"LB1.AAAA", "malformed"),
    (None, "malformed"),
])
def test_malformed_text(text: object, reason: str) -> None:
    assert _reason(text) == reason


def test_non_canonical_base64_is_malformed() -> None:
    # 139 chars: the last one carries 2 stray bits; set one and the bytes are the same
    token = TOKENS[0]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    assert last & 0b11 == 0
    other = token[:-1] + alphabet[last | 0b01]
    assert _bytes(other) == _bytes(token)
    assert _reason(other) == "malformed"


def test_surrounding_whitespace_is_ignored() -> None:
    assert _reason("  " + TOKENS[0] + "\r\n") is None


def test_structure_errors_in_signed_tokens_are_malformed() -> None:
    s = int(T0.timestamp())
    assert _reason(_raw(seconds=s, ttl=60, reader_id=b"\xff\xfe")) == "malformed"
    assert _reason(_raw(seconds=s, ttl=60, grant_id=b"\xe4\xb8")) == "malformed"  # cut UTF-8
    assert _reason(_raw(seconds=s, ttl=60, key_id=b"k" * 33)) == "malformed"  # > 32 chars
    assert _reason(_raw(seconds=s, ttl=60, reader_id=b"r" * 65)) == "malformed"
    assert _reason(_raw(seconds=s, ttl=0)) == "malformed"
    assert _reason(_raw(seconds=s, ttl=60, flags=0x02)) == "malformed"
    assert _raw(seconds=s, ttl=60, reader_id="读".encode() * 64)  # 192 bytes: fine
    assert _reason(_raw(seconds=s, ttl=60, reader_id="读".encode() * 64)) is None


def test_an_embedded_grant_that_does_not_validate_is_malformed() -> None:
    grant = _grant()
    s = int(T0.timestamp())
    assert _reason(_raw(seconds=s, ttl=60, grant=_grant_record(grant))) is None
    assert _reason(_raw(seconds=s, ttl=60, grant=_grant_record(grant, max_loans=200))) == "malformed"
    # a time no datetime can hold
    record = bytearray(_grant_record(grant))
    record[11:19] = struct.pack(">q", 2**62)
    assert _reason(_raw(seconds=s, ttl=60, grant=bytes(record))) == "malformed"
    # the same bytes, found by a one-byte change of an issued token, are refused unsigned
    raw = bytearray(_bytes(TOKENS[1]))
    offset = len(_bytes(TOKENS[0])) - 64 + 9  # tier field (1 + 8) then max_loans
    assert raw[offset] == 10
    raw[offset] = 200
    assert _reason(_text(bytes(raw))) == "malformed"


# ----------------------------------------------------------------------------- time and ttl


def test_validity_window_respects_the_skew() -> None:
    token = _token()
    start, end = T0_UTC, T0_UTC + 60 * SEC
    tiny = timedelta(microseconds=1)
    assert _reason(token, now=start) is None
    assert _reason(token, now=end - tiny, skew_s=0) is None
    assert _reason(token, now=end, skew_s=0) == "expired"
    assert _reason(token, now=start - tiny, skew_s=0) == "not_yet_valid"
    # the default skew of 120 s on either side
    assert _reason(token, now=start - 120 * SEC) is None
    assert _reason(token, now=start - 120 * SEC - tiny) == "not_yet_valid"
    assert _reason(token, now=end + 120 * SEC - tiny) is None
    assert _reason(token, now=end + 120 * SEC) == "expired"
    assert _reason(token, now=end + 10 * SEC, skew_s=5) == "expired"


@given(issued=times, ttl=st.integers(1, 60), offset=st.floats(-1000, 1000), skew=st.floats(0, 300))
def test_time_reasons_match_the_window(issued: datetime, ttl: int, offset: float,
                                       skew: float) -> None:
    token = _token(issued_at=issued, ttl_s=ttl)
    start = issued.replace(microsecond=0)
    now = start + timedelta(seconds=offset)
    expected = ("not_yet_valid" if now.timestamp() + skew < start.timestamp()
                else "expired" if now.timestamp() - skew >= start.timestamp() + ttl else None)
    assert _reason(token, now=now, skew_s=skew) == expected


@pytest.mark.parametrize("ttl", [0, 61, 3600, -1, True, 1.5])
def test_issue_refuses_a_ttl_outside_1_to_60(ttl: object) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        _token(ttl_s=ttl)


def test_verify_refuses_a_long_ttl_even_when_signed() -> None:
    s = int(T0.timestamp())
    for ttl in (61, 255):
        assert _reason(_raw(seconds=s, ttl=ttl)) == "ttl_too_long"
    assert _reason(_raw(seconds=s, ttl=60)) is None
    assert _reason(_token(ttl_s=45), max_ttl_s=30) == "ttl_too_long"
    assert _reason(_token(ttl_s=30), max_ttl_s=30) is None
    # a forger cannot get past the signature to the ttl check
    assert _reason(_raw(seconds=s, ttl=255, private_key=PRIV_X)) == "bad_signature"


# ----------------------------------------------------------------------------- keys


def test_unknown_key_and_rotation() -> None:
    old = _token(key_id="k1", private_key=PRIV1)
    new = _token(key_id="k2", private_key=PRIV2)
    rotating = {"k1": PUB1, "k2": PUB2}
    assert _reason(old, rotating) is None and _reason(new, rotating) is None
    assert _reason(old, {"k2": PUB2}) == "unknown_key"  # k1 removed after the rotation
    assert _reason(new, TRUSTED) == "unknown_key"
    assert _reason(_token(private_key=PRIV_X)) == "bad_signature"  # a stranger claiming k1
    assert _reason(old, {"k1": PUB2}) == "bad_signature"
    assert _reason(old, {"k1": "broken"}) == "unknown_key"


def test_issue_refuses_what_verify_could_not_read() -> None:
    bad: list[dict[str, object]] = [
        {"reader_id": ""}, {"reader_id": "r" * 65}, {"grant_id": ""}, {"grant_id": "g" * 65},
        {"key_id": ""}, {"key_id": "k" * 33}, {"reader_id": "\ud800"},
        {"issued_at": datetime(2025, 6, 1)}, {"issued_at": datetime(1969, 12, 31, tzinfo=UTC)},
        {"issued_at": datetime(2106, 3, 1, tzinfo=UTC)}, {"nonce": b"short"},
        {"nonce": bytes(9)}, {"private_key": "nope"},
        {"grant": _grant(reader_id="someone-else")}, {"grant": _grant(grant_id="g-other")},
    ]
    for over in bad:
        with pytest.raises(ValueError):
            _token(**over)


def test_verify_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="now"):
        verify_token(TOKENS[0], TRUSTED, datetime(2025, 6, 1))


def test_token_error_is_a_value_error_and_pickles() -> None:
    error = TokenError("truncated", "3 bytes")
    assert isinstance(error, ValueError)
    assert pickle.loads(pickle.dumps(error)).reason == "truncated"


def test_the_longest_possible_token_is_accepted() -> None:
    astral = "\U00020000"  # 4 bytes of UTF-8: every id at its limit in bytes
    grant = sign_grant(grant_id=astral * 64, reader_id=astral * 64, tier=astral * 32,
                       max_loans=100, offline_allowance=100, issued_at=T0, expires_at=T0 + SEC,
                       key_id=astral * 32, private_key=PRIV2)
    token = _token(reader_id=astral * 64, grant_id=astral * 64, key_id=astral * 32, grant=grant)
    assert len(token) == 1419  # as docs/qr-token.md says
    assert verify_token(token, {astral * 32: PUB1}, T0).grant == grant
    assert _reason(token + "A") == "malformed"  # longer than any token
