"""Signed grants, canonical JSON, card hashes and log ids (syncproto.grants)."""

from __future__ import annotations

import json
import pickle
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncproto import SignedGrant
from syncproto.grants import (
    GrantError,
    canonical_json,
    card_hash,
    generate_keypair,
    grant_bytes,
    log_id,
    public_key_of,
    sign_grant,
    verify_grant,
)
from tests.syncproto.helpers import CST, PRIV1, PRIV2, PRIV_X, PUB1, PUB2, T0, TRUSTED, ids, times, unb64

DAY = timedelta(days=1)


def _grant(**over: object) -> SignedGrant:
    fields: dict[str, object] = dict(grant_id="g-000123", reader_id="0012345678", tier="standard",
                                     max_loans=10, offline_allowance=2, issued_at=T0,
                                     expires_at=T0 + 7 * DAY, key_id="k1", private_key=PRIV1)
    fields.update(over)
    return sign_grant(**fields)  # type: ignore[arg-type]


def _reason(grant: SignedGrant, keys: dict[str, str] = TRUSTED, now: datetime = T0,
            skew_s: float = 0) -> str | None:
    try:
        verify_grant(grant, keys, now, skew_s)
    except GrantError as exc:
        return exc.reason
    return None


# ----------------------------------------------------------------------------- keys


def test_keypair_is_base64url_of_32_raw_bytes() -> None:
    private, public = generate_keypair()
    for text in (private, public):
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", text)
        assert len(unb64(text)) == 32
    assert public_key_of(private) == public
    assert generate_keypair() != generate_keypair()


@pytest.mark.parametrize("bad", ["", "abc", "A" * 44, "A" * 42 + "=", "not a key at all!!!!"])
def test_bad_private_key_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="private key"):
        _grant(private_key=bad)


# ----------------------------------------------------------------------------- canonical JSON


def test_canonical_json_sorts_keys_strips_space_and_writes_utf8() -> None:
    obj = {"b": [1, True, None], "a": "福田", "c": {"z": 1.5, "y": "x"}}
    assert canonical_json(obj) == '{"a":"福田","b":[1,true,null],"c":{"y":"x","z":1.5}}'.encode()


def test_canonical_json_writes_one_spelling_per_instant() -> None:
    instant = datetime(2025, 6, 1, 0, 30, 0, 5, tzinfo=UTC)
    expected = b'"2025-06-01T00:30:00.000005Z"'
    assert canonical_json(instant) == expected
    assert canonical_json(instant.astimezone(CST)) == expected


def test_canonical_json_refuses_naive_times_and_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"at": datetime(2025, 1, 1)})
    with pytest.raises(ValueError):
        canonical_json(float("nan"))
    with pytest.raises(TypeError):
        canonical_json({"x": object()})


def test_grant_bytes_cover_every_field_but_the_signature() -> None:
    grant = _grant()
    covered = json.loads(grant_bytes(grant))
    assert set(covered) == set(SignedGrant.model_fields) - {"signature"}
    assert covered["issued_at"] == "2025-06-01T00:30:00.000000Z"


# ----------------------------------------------------------------------------- sign / verify


@given(grant_id=ids(64), reader_id=ids(64), tier=ids(32), key_id=ids(32),
       max_loans=st.integers(0, 100), allowance=st.integers(0, 100), issued=times,
       days=st.integers(1, 3650))
def test_sign_verify_round_trip(grant_id: str, reader_id: str, tier: str, key_id: str,
                                max_loans: int, allowance: int, issued: datetime,
                                days: int) -> None:
    grant = sign_grant(grant_id=grant_id, reader_id=reader_id, tier=tier, max_loans=max_loans,
                       offline_allowance=allowance, issued_at=issued,
                       expires_at=issued + days * DAY, key_id=key_id, private_key=PRIV1)
    verify_grant(grant, {key_id: PUB1}, issued)
    # what the cabinet caches and gets over the wire is JSON: it must still verify
    again = SignedGrant.model_validate_json(grant.model_dump_json())
    verify_grant(again, {key_id: PUB1}, issued + DAY / 2)


def test_a_grant_re_serialised_in_another_zone_still_verifies() -> None:
    grant = _grant(issued_at=datetime(2025, 6, 1, 8, 30, 0, 123456, tzinfo=CST))
    data = json.loads(grant.model_dump_json())
    data["issued_at"] = grant.issued_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert _reason(SignedGrant.model_validate(data), now=grant.issued_at) is None


TAMPERED = [
    ("grant_id", "g-000124"),
    ("reader_id", "0012345679"),
    ("tier", "gold"),
    ("max_loans", 11),
    ("offline_allowance", 3),
    ("issued_at", T0 - timedelta(microseconds=1)),
    ("expires_at", T0 + 7 * DAY + timedelta(seconds=1)),
]


@pytest.mark.parametrize(("field", "value"), TAMPERED)
def test_tampering_with_any_field_breaks_the_signature(field: str, value: object) -> None:
    grant = _grant()
    forged = SignedGrant.model_validate({**grant.model_dump(), field: value})
    assert _reason(forged) == "bad_signature"


def test_moving_a_signature_to_another_key_id_is_refused() -> None:
    grant = _grant(key_id="k2", private_key=PRIV2)
    moved = SignedGrant.model_validate({**grant.model_dump(), "key_id": "k1"})
    assert _reason(moved, {"k1": PUB1, "k2": PUB2}) == "bad_signature"


@pytest.mark.parametrize("signature", ["A", "AAAA", "!!!!", "A" * 86, "A" * 85 + "B", "A" * 88])
def test_garbage_signatures_are_bad_signatures(signature: str) -> None:
    forged = SignedGrant.model_validate({**_grant().model_dump(), "signature": signature})
    assert _reason(forged) == "bad_signature"


def test_a_naive_time_was_never_signed() -> None:
    data = json.loads(_grant().model_dump_json())
    data["issued_at"] = "2025-06-01T00:30:00"
    assert _reason(SignedGrant.model_validate(data)) == "bad_signature"


def test_unknown_key_and_key_rotation() -> None:
    old, new = _grant(key_id="k1", private_key=PRIV1), _grant(key_id="k2", private_key=PRIV2)
    rotating = {"k1": PUB1, "k2": PUB2}
    assert _reason(old, rotating) is None and _reason(new, rotating) is None
    assert _reason(old, {"k2": PUB2}) == "unknown_key"  # k1 retired
    assert _reason(_grant(key_id="kx", private_key=PRIV_X)) == "unknown_key"
    # a stranger signing under a trusted key's name
    assert _reason(_grant(private_key=PRIV_X)) == "bad_signature"
    # a broken configured key vouches for nothing
    assert _reason(old, {"k1": "not-a-key"}) == "unknown_key"


def test_validity_window_and_skew() -> None:
    grant = _grant()
    start, end = grant.issued_at, grant.expires_at
    tiny = timedelta(microseconds=1)
    assert _reason(grant, now=start) is None
    assert _reason(grant, now=end - tiny) is None
    assert _reason(grant, now=end) == "expired"
    assert _reason(grant, now=start - tiny) == "not_yet_valid"
    assert _reason(grant, now=start - timedelta(seconds=30), skew_s=30) is None
    assert _reason(grant, now=start - timedelta(seconds=31), skew_s=30) == "not_yet_valid"
    assert _reason(grant, now=end + timedelta(seconds=29), skew_s=30) is None
    assert _reason(grant, now=end + timedelta(seconds=30), skew_s=30) == "expired"


def test_sign_grant_refuses_what_no_cabinet_could_use() -> None:
    with pytest.raises(ValueError):
        _grant(expires_at=T0)
    with pytest.raises(ValueError):
        _grant(issued_at=datetime(2025, 6, 1), expires_at=datetime(2025, 6, 2))
    with pytest.raises(ValueError):
        _grant(max_loans=101)
    with pytest.raises(ValueError):
        _grant(reader_id="x" * 65)
    with pytest.raises(ValueError):
        _grant(tier="")


def test_verify_grant_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="now"):
        verify_grant(_grant(), TRUSTED, datetime(2025, 6, 1))


def test_grant_error_is_a_value_error_and_pickles() -> None:
    error = GrantError("expired", "grant g")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, str(copy)) == ("expired", "expired: grant g")
    with pytest.raises(AssertionError):
        GrantError("bogus")


# ----------------------------------------------------------------------------- card hashes

uids = st.binary(min_size=4, max_size=10).map(bytes.hex)  # 4-, 7- and 10-byte UIDs and more


@given(uid=uids, sep=st.sampled_from(["", " ", ":", "-", "  "]), pad=st.sampled_from(["", " ", "\t", "\n "]))
def test_card_hash_is_one_per_card_whatever_the_spelling(uid: str, sep: str, pad: str) -> None:
    spaced = sep.join(uid[i:i + 2] for i in range(0, len(uid), 2))
    expected = card_hash(uid.upper())
    assert card_hash(uid.lower()) == expected
    assert card_hash(pad + spaced.lower() + pad) == expected
    assert card_hash(spaced.upper()) == expected


@given(uid=uids)
def test_card_hash_never_contains_the_card_number(uid: str) -> None:
    digest = card_hash(uid)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert uid.lower() not in digest and uid.upper().lower() not in digest


@given(a=uids, b=uids)
def test_different_cards_hash_differently(a: str, b: str) -> None:
    if a.upper() != b.upper():
        assert card_hash(a) != card_hash(b)


def test_card_hash_details() -> None:
    assert card_hash("０４Ａ１Ｂ２Ｃ３") == card_hash("04a1b2c3")  # full-width, from an IME
    assert card_hash("L0012345") != card_hash("l0012345")  # not hex: case is the barcode's
    assert card_hash("04A1B2C3", pepper="other-v2") != card_hash("04A1B2C3")
    assert card_hash("0012345678") == card_hash(" 0012345678\n")
    for empty in ("", "   ", "\n"):
        with pytest.raises(ValueError):
            card_hash(empty)


def test_log_id_is_short_stable_and_hides_the_reader() -> None:
    assert re.fullmatch(r"[0-9a-f]{12}", log_id("0012345678"))
    assert log_id("0012345678") == log_id("0012345678") != log_id("0012345679")
    assert "0012345678" not in log_id("0012345678")
    assert len(log_id("读者" * 30)) == 12
    assert len(log_id("\ud800")) == 12  # never a crash in a logging path
