"""Cabinet request signatures (syncproto.signing)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncproto.signing import (
    HEADER_CABINET,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    SignatureError,
    request_cabinet,
    sign_request,
    verify_request,
)
from tests.syncproto.helpers import PRIV1, PRIV_X, PUB1, PUB2, T0

BODY = b'{"version":1,"cabinet_id":"demo-0001","events":[]}'
SEC = timedelta(seconds=1)


class Nonces:
    """A nonce store as the server keeps one: remembers, answers "seen before?"."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.calls = 0

    def __call__(self, nonce: str) -> bool:
        self.calls += 1
        if nonce in self.seen:
            return True
        self.seen.add(nonce)
        return False


def _sign(method: str = "POST", path: str = "/v1/sync", body: bytes = BODY,
          **kw: object) -> dict[str, str]:
    fields: dict[str, object] = dict(cabinet_id="demo-0001", private_key=PRIV1, now=T0)
    fields.update(kw)
    return sign_request(method, path, body, **fields)  # type: ignore[arg-type]


def _reason(headers: object, method: str = "POST", path: str = "/v1/sync", body: object = BODY,
            *, now: datetime = T0, seen: Callable[[str], bool] | None = None,
            public_key: str = PUB1, **kw: object) -> str | None:
    try:
        verify_request(headers, method, path, body, public_key=public_key, now=now,  # type: ignore[arg-type]
                       seen_nonce=seen or Nonces(), **kw)  # type: ignore[arg-type]
    except SignatureError as exc:
        return exc.reason
    return None


methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "post", "Patch"])
paths = st.text(st.characters(min_codepoint=0x20, exclude_characters="\x7f"), max_size=80).map(
    lambda p: "/" + p)
cabinets = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64)


@given(method=methods, path=paths, body=st.binary(max_size=2000), cabinet=cabinets,
       drift=st.integers(-300, 300))
def test_sign_verify_round_trip(method: str, path: str, body: bytes, cabinet: str,
                                drift: int) -> None:
    headers = _sign(method, path, body, cabinet_id=cabinet, now=T0 + drift * SEC)
    assert set(headers) == {HEADER_CABINET, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE}
    assert request_cabinet(headers) == cabinet
    assert verify_request(headers, method.upper(), path, body, public_key=PUB1, now=T0,
                          seen_nonce=Nonces()) == cabinet


@pytest.mark.parametrize("case", [str.lower, str.upper, str.title, lambda s: s])
def test_header_names_are_case_insensitive(case: Callable[[str], str]) -> None:
    headers = {case(k): v for k, v in _sign().items()}
    headers["Content-Type"] = "application/json"
    assert _reason(headers) is None
    assert request_cabinet(headers) == "demo-0001"


def test_a_header_given_twice_is_malformed() -> None:
    headers = _sign()
    headers[HEADER_NONCE.lower()] = "another-nonce-0000000"
    assert _reason(headers) == "malformed"


def test_a_replayed_nonce_is_refused() -> None:
    store = Nonces()
    headers = _sign()
    assert _reason(headers, seen=store) is None
    assert _reason(headers, seen=store) == "replayed"
    assert _reason(_sign(), seen=store) is None  # a new request, a new nonce


def test_the_nonce_store_is_asked_only_for_genuine_requests() -> None:
    store = Nonces()
    assert _reason(_sign(private_key=PRIV_X), seen=store) == "bad_signature"
    assert _reason(_sign(now=T0 - 301 * SEC), seen=store) == "out_of_window"
    assert _reason({}, seen=store) == "missing_header"
    assert store.calls == 0


def test_timestamps_outside_the_window_are_refused() -> None:
    for drift, expected in [(-300, None), (300, None), (-301, "out_of_window"),
                            (301, "out_of_window"), (-86_400, "out_of_window")]:
        assert _reason(_sign(now=T0 + drift * SEC)) == expected, drift
    assert _reason(_sign(now=T0 + 31 * SEC), window_s=30) == "out_of_window"
    assert _reason(_sign(now=T0 + 30 * SEC), window_s=30) is None


@given(body=st.binary(max_size=500), index=st.integers(0, 10_000), new=st.integers(0, 255))
def test_a_changed_body_is_refused(body: bytes, index: int, new: int) -> None:
    headers = _sign(body=body)
    if body:
        changed = bytearray(body)
        changed[index % len(body)] ^= new or 1
        assert _reason(headers, body=bytes(changed)) == "bad_signature"
    assert _reason(headers, body=body + b" ") == "bad_signature"


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/v1/sync"), ("GET", "/v1/sync"), ("POST", "/v1/sync/"), ("POST", "/v1/readers/resolve"),
    ("POST", "/v1/Sync"), ("POST", "/v1/sync?x=1"),
])
def test_a_changed_method_or_path_is_refused(method: str, path: str) -> None:
    assert _reason(_sign(), method, path) == "bad_signature"


def test_the_method_is_compared_in_upper_case() -> None:
    assert _reason(_sign("post"), "POST") is None
    assert _reason(_sign("POST"), "post") is None


@pytest.mark.parametrize(("header", "value"), [
    (HEADER_CABINET, "demo-0002"),
    (HEADER_TIMESTAMP, None),  # one second later: inside the window, but not what was signed
    (HEADER_NONCE, "AAAAAAAAAAAAAAAAAAAAAA"),
])
def test_changed_headers_are_refused(header: str, value: str | None) -> None:
    headers = _sign()
    headers[header] = value if value is not None else str(int(headers[header]) + 1)
    assert _reason(headers) == "bad_signature"


def test_wrong_keys_are_refused() -> None:
    assert _reason(_sign(), public_key=PUB2) == "bad_signature"
    assert _reason(_sign(private_key=PRIV_X)) == "bad_signature"


@pytest.mark.parametrize("missing", [HEADER_CABINET, HEADER_TIMESTAMP, HEADER_NONCE,
                                     HEADER_SIGNATURE])
def test_missing_headers(missing: str) -> None:
    headers = _sign()
    del headers[missing]
    assert _reason(headers) == "missing_header"
    headers[missing] = ""
    assert _reason(headers) == "missing_header"


@pytest.mark.parametrize(("header", "value"), [
    (HEADER_CABINET, "demo 0001"), (HEADER_CABINET, "福田-0001"), (HEADER_CABINET, "x" * 65),
    (HEADER_TIMESTAMP, "-5"), (HEADER_TIMESTAMP, "1.5"), (HEADER_TIMESTAMP, "1e9"),
    (HEADER_TIMESTAMP, "9" * 13), (HEADER_NONCE, "short"), (HEADER_NONCE, "a" * 65),
    (HEADER_NONCE, "has spaces in it too"), (HEADER_SIGNATURE, "AAAA"),
    (HEADER_SIGNATURE, "!" * 86), (HEADER_SIGNATURE, "A" * 85 + "B"),
])
def test_malformed_headers(header: str, value: str) -> None:
    headers = _sign()
    headers[header] = value
    assert _reason(headers) == "malformed"


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PO ST", "/v1/sync", BODY), ("", "/v1/sync", BODY), ("POST", "v1/sync", BODY),
    ("POST", "/v1/sync\nx", BODY), ("POST", "/v1/sync", "text, not bytes"),
])
def test_a_malformed_request_line_or_body(method: str, path: str, body: object) -> None:
    assert _reason(_sign(), method, path, body) == "malformed"


def test_headers_that_are_not_a_mapping_are_malformed() -> None:
    assert _reason(None) == "malformed"
    assert _reason({HEADER_CABINET: b"demo-0001"}) == "malformed"


@given(headers=st.dictionaries(st.sampled_from([HEADER_CABINET, HEADER_TIMESTAMP, HEADER_NONCE,
                                                HEADER_SIGNATURE, "x-other"]), st.text(max_size=100)))
def test_arbitrary_headers_only_ever_raise_signature_error(headers: dict[str, str]) -> None:
    assert _reason(headers) in ("missing_header", "malformed", "out_of_window", "bad_signature")


def test_sign_request_refuses_what_could_not_be_verified() -> None:
    for kw in [{"cabinet_id": "福田"}, {"cabinet_id": ""}, {"nonce": "short"},
               {"private_key": "nope"}, {"now": datetime(2025, 6, 1)}]:
        with pytest.raises(ValueError):
            _sign(**kw)
    with pytest.raises(ValueError):
        _sign(path="no-slash")
    with pytest.raises(ValueError):
        _sign(method="GET /")
    with pytest.raises(TypeError):
        _sign(body="text")  # type: ignore[arg-type]


def test_an_explicit_nonce_is_used() -> None:
    assert _sign(nonce="n" * 16)[HEADER_NONCE] == "n" * 16


def test_verify_request_refuses_caller_bugs_plainly() -> None:
    with pytest.raises(ValueError):
        verify_request(_sign(), "POST", "/v1/sync", BODY, public_key="broken", now=T0,
                       seen_nonce=Nonces())
    with pytest.raises(ValueError):
        verify_request(_sign(), "POST", "/v1/sync", BODY, public_key=PUB1,
                       now=datetime(2025, 6, 1), seen_nonce=Nonces())


def test_request_cabinet_errors() -> None:
    with pytest.raises(SignatureError) as info:
        request_cabinet({})
    assert info.value.reason == "missing_header"
    with pytest.raises(SignatureError) as info:
        request_cabinet({"x-lendbox-cabinet": "a b"})
    assert info.value.reason == "malformed"


def test_signature_error_is_a_value_error_and_pickles() -> None:
    error = SignatureError("replayed", "nonce")
    assert isinstance(error, ValueError)
    assert pickle.loads(pickle.dumps(error)).reason == "replayed"
