"""The server's security layer over the real app and a real database (SQLite and PostgreSQL).

What is checked, and why it matters:

- **passwords**: any password verifies against its own hash and no other; hashes differ by
  salt; an edited hash string is refused and never raises (a corrupted row must not turn a
  login into a 500 — or into a success);
- **staff sessions**: login, logout and expiry with an injected clock (no sleeping); tokens
  are stored hashed; passwords and tokens never reach the logs or the audit;
- **cabinet requests**: a signed request of a registered cabinet passes; an unknown cabinet,
  a wrong key, a tampered body, a replayed nonce, a timestamp out of the window and an
  inactive cabinet are each a 401 with its reason — and every 401 carries ``server_time``,
  which a cabinet with a drifted clock needs;
- **bad input**: broken JSON, wrong types, control characters, over-long text → 422 with a
  readable message, never a 500 (fuzzed); every error is ``{"error", "detail",
  "server_time"}``.

The helpers at the top are shared with ``test_roles.py``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, Row, func, insert, select, update

from lendbox.cli import main as lendbox_main
from server.app import MAX_BODY_BYTES, create_app
from server.db import write_tx
from server.schema import audit, branches, cabinet_nonces, cabinets, libraries, staff, staff_tokens
from server.security import (
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    cabinet_request,
    hash_password,
    issue_token,
    token_hash,
    verify_password,
)
from server.settings import Settings
from syncproto import signing
from syncproto.grants import generate_keypair

T0 = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
WINDOW_S = 300.0
TTL_S = 8 * 3600.0
LIBRARY = "CN-330100"
BRANCH = "hz-main"
#: Cheap scrypt for accounts the tests only need to exist; the parameters travel in the hash,
#: so verification takes the same code path as with the defaults.
FAST = {"n": 2**4, "r": 8, "p": 1}
ERROR_KEYS = {"error", "detail", "server_time"}


# ----------------------------------------------------------------------------- shared helpers


class Clock:
    """The server's clock, moved by the test (tokens expire, windows pass, without sleeping)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_app(engine: Engine, clock: Clock) -> FastAPI:
    """The real application on the test's database and clock."""
    settings = Settings(database_url=str(engine.url), signature_window_s=WINDOW_S, token_ttl_s=TTL_S)
    return create_app(settings, engine=engine, clock=clock)


def seed_network(engine: Engine) -> None:
    """One library with one branch: what cabinets and branch staff hang on."""
    with write_tx(engine) as conn:
        conn.execute(insert(libraries).values(isil=LIBRARY, name="杭州图书馆"))
        conn.execute(insert(branches).values(id=BRANCH, name="总馆", library_isil=LIBRARY,
                                             floating=False))


def add_staff(engine: Engine, username: str, role: str, password: str = "correct horse battery",
              *, disabled: bool = False) -> int:
    """A staff account straight in the database (cheap hash); returns its id."""
    with write_tx(engine) as conn:
        return int(conn.execute(insert(staff).values(
            username=username, password_hash=hash_password(password, **FAST), role=role,
            branch_id=BRANCH if role == "branch_staff" else None, created_at=T0,
            disabled=disabled).returning(staff.c.id)).scalar_one())


def token_for(engine: Engine, staff_id: int, now: datetime, ttl_s: float = TTL_S) -> str:
    """A bearer token issued the way login issues it, without paying for a password check."""
    with write_tx(engine) as conn:
        return issue_token(conn, staff_id, now, ttl_s)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: Any, status: int, error: str | None = None) -> dict[str, Any]:
    """The response is the server's JSON error with this status (and code); returns the body."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    if error is not None:
        assert body["error"] == error, body
    assert isinstance(body["detail"], str) and body["detail"]
    server_time = datetime.fromisoformat(body["server_time"])
    assert server_time.tzinfo is not None
    return dict(body)


def signed_request(client: TestClient, path: str, body: bytes, *, cabinet_id: str,
                   private_key: str, now: datetime, nonce: str | None = None,
                   send_body: bytes | None = None, send_path: str | None = None) -> Any:
    """POST ``body`` signed as ``cabinet_id``; ``send_body``/``send_path`` send something
    else than what was signed (tampering)."""
    headers = signing.sign_request("POST", path, body, cabinet_id=cabinet_id,
                                   private_key=private_key, now=now, nonce=nonce)
    headers["Content-Type"] = "application/json"
    return client.post(send_path or path, content=body if send_body is None else send_body,
                       headers=headers)


# ----------------------------------------------------------------------------- passwords

passwords = st.text(max_size=40)


def test_hash_carries_the_contract_parameters_and_verifies() -> None:
    stored = hash_password("correct horse battery")
    name, n, r, p, salt, digest = stored.split("$")
    assert (name, int(n), int(r), int(p)) == ("scrypt", SCRYPT_N, SCRYPT_R, SCRYPT_P)
    assert (n, r, p) == (str(2**14), "8", "1")
    assert len(salt) == 22 and len(digest) == 43  # 16 and 32 bytes, base64url unpadded
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)


@given(passwords, passwords)
@example("a", "a ")
@example("\ud800", "\udc00")  # lone surrogates (JSON allows them) hash without raising
@example("é", "é")  # NFC vs NFD: two different strings, two different passwords
def test_a_password_verifies_against_its_own_hash_and_no_other(one: str, other: str) -> None:
    stored = hash_password(one, **FAST)
    assert verify_password(one, stored)
    assert verify_password(other, stored) == (other == one)


@given(passwords)
def test_hashes_of_one_password_differ_by_salt(password: str) -> None:
    first, second = hash_password(password, **FAST), hash_password(password, **FAST)
    assert first != second
    assert first.split("$")[4] != second.split("$")[4]
    assert verify_password(password, first) and verify_password(password, second)


@given(st.data())
def test_an_edited_hash_string_is_refused_never_raises(data: st.DataObject) -> None:
    stored = hash_password("correct horse battery", **FAST)
    index = data.draw(st.integers(0, len(stored) - 1), label="index")
    replacement = data.draw(st.text(min_size=0, max_size=3), label="replacement")
    edited = stored[:index] + replacement + stored[index + 1:]
    assume(edited != stored)
    assert verify_password("correct horse battery", edited) is False


@given(st.one_of(st.text(max_size=120), st.binary(max_size=40), st.none(), st.integers()))
@example("scrypt$16$8$1$$")
@example("scrypt$1099511627776$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
@example("scrypt$16384$100000$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
@example("scrypt$16384$8$99999$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
@example("scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
@example("scrypt$0$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
@example("scrypt$16$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
@example("scrypt$16$8$1$AAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
def test_anything_that_is_not_a_hash_is_refused(stored: Any) -> None:
    assert verify_password("correct horse battery", stored) is False


def test_non_canonical_spellings_of_a_hash_are_refused() -> None:
    stored = hash_password("pw-0123456789", **FAST)
    name, n, r, p, salt, digest = stored.split("$")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # 43 characters carry 258 bits: setting the 2 unused bits decodes to the same 32 bytes
    sibling = alphabet[alphabet.index(digest[-1]) + 1]
    variants = [f"{name}$0{n}${r}${p}${salt}${digest}", f"{name}${n}${r}${p}${salt}=${digest}",
                f"SCRYPT${n}${r}${p}${salt}${digest}", stored + "$", " " + stored,
                f"{name}${n}${r}${p}${salt}${digest[:-1]}{sibling}"]
    for variant in variants:
        assert verify_password("pw-0123456789", variant) is False, variant


# ----------------------------------------------------------------------------- settings


def test_settings_from_env_reads_and_checks_every_variable() -> None:
    env = {"LENDBOX_DATABASE_URL": "postgresql+psycopg://u@h/db", "LENDBOX_HOST": "0.0.0.0",
           "LENDBOX_PORT": "9000", "LENDBOX_SIGNATURE_WINDOW_S": "120",
           "LENDBOX_TOKEN_TTL_S": "3600"}
    assert Settings.from_env(env) == Settings("postgresql+psycopg://u@h/db", "0.0.0.0", 9000,
                                              120.0, 3600.0)
    assert Settings.from_env({}) == Settings()
    for name, value in [("LENDBOX_PORT", "eighty"), ("LENDBOX_PORT", "70000"),
                        ("LENDBOX_SIGNATURE_WINDOW_S", "-1"), ("LENDBOX_TOKEN_TTL_S", "nan")]:
        with pytest.raises(ValueError, match=name.removeprefix("LENDBOX_").lower() + "|" + name):
            Settings.from_env({name: value})


# ----------------------------------------------------------------------------- staff sessions


@dataclass
class Staffed:
    engine: Engine
    clock: Clock
    app: FastAPI
    client: TestClient


@pytest.fixture
def staffed(engine: Engine) -> Iterator[Staffed]:
    """The app on a migrated database with a network and an operator ``olga``."""
    seed_network(engine)
    add_staff(engine, "olga", "operator")
    clock = Clock()
    app = make_app(engine, clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Staffed(engine, clock, app, client)


def _login(client: TestClient, username: str = "olga",
           password: str = "correct horse battery") -> Any:
    return client.post("/api/auth/login", json={"username": username, "password": password})


def test_login_gives_a_token_that_expires_after_the_ttl(staffed: Staffed) -> None:
    response = _login(staffed.client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["role"] == "operator"
    assert datetime.fromisoformat(body["expires_at"]) == T0 + timedelta(seconds=TTL_S)
    assert response.headers["cache-control"] == "no-store"
    me = staffed.client.get("/api/me", headers=bearer(body["token"]))
    assert me.status_code == 200 and me.json()["username"] == "olga"
    assert "staff.manage" in me.json()["permissions"]

    staffed.clock.advance(TTL_S - 1)
    assert staffed.client.get("/api/me", headers=bearer(body["token"])).status_code == 200
    staffed.clock.advance(1)
    expired = staffed.client.get("/api/me", headers=bearer(body["token"]))
    assert_error(expired, 401, "expired_token")
    assert expired.headers["www-authenticate"] == "Bearer"


def test_tokens_are_stored_only_as_their_hash(staffed: Staffed) -> None:
    token = _login(staffed.client).json()["token"]
    with staffed.engine.connect() as conn:
        stored = [row.token_hash for row in conn.execute(select(staff_tokens))]
    assert stored == [hashlib.sha256(token.encode()).hexdigest()] == [token_hash(token)]


def test_logout_ends_only_that_session_and_is_audited(staffed: Staffed) -> None:
    first, second = _login(staffed.client).json()["token"], _login(staffed.client).json()["token"]
    assert staffed.client.post("/api/auth/logout", headers=bearer(first)).status_code == 204
    assert_error(staffed.client.get("/api/me", headers=bearer(first)), 401, "invalid_token")
    assert_error(staffed.client.post("/api/auth/logout", headers=bearer(first)), 401, "invalid_token")
    assert staffed.client.get("/api/me", headers=bearer(second)).status_code == 200
    with staffed.engine.connect() as conn:
        actions = [(r.actor, r.action) for r in conn.execute(select(audit).order_by(audit.c.id))]
    assert actions == [("olga", "auth.login"), ("olga", "auth.login"), ("olga", "auth.logout")]


def test_wrong_password_and_unknown_user_answer_alike(staffed: Staffed) -> None:
    wrong = assert_error(_login(staffed.client, password="not the password"), 401,
                         "invalid_credentials")
    unknown = assert_error(_login(staffed.client, username="nobody"), 401, "invalid_credentials")
    assert wrong["detail"] == unknown["detail"]
    with staffed.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(staff_tokens)) == 0


def test_a_disabled_account_can_neither_log_in_nor_use_its_token(staffed: Staffed) -> None:
    token = _login(staffed.client).json()["token"]
    with write_tx(staffed.engine) as conn:
        conn.execute(update(staff).where(staff.c.username == "olga").values(disabled=True))
    assert_error(staffed.client.get("/api/me", headers=bearer(token)), 401, "account_disabled")
    assert_error(_login(staffed.client), 401, "account_disabled")
    # the wrong password still says only "wrong": a disabled account is not revealed by it
    assert_error(_login(staffed.client, password="not the password"), 401, "invalid_credentials")


def test_malformed_or_unknown_bearer_headers_are_401(staffed: Staffed) -> None:
    for header in [None, "", "Bearer", "Bearer ", "Basic b2xnYTpwdw==", "Token abc",
                   "Bearer " + "A" * 42, "Bearer " + "A" * 44, "Bearer " + "A" * 42 + "!",
                   "Bearer " + "A" * 43]:  # the last is well-formed but never issued
        headers = {} if header is None else {"Authorization": header}
        response = staffed.client.get("/api/me", headers=headers)
        body = assert_error(response, 401)
        assert body["error"] == ("missing_token" if header is None else "invalid_token"), header
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_token_sent_twice_is_refused(staffed: Staffed) -> None:
    token = _login(staffed.client).json()["token"]
    response = staffed.client.get("/api/me", headers=[("Authorization", f"Bearer {token}"),
                                                      ("Authorization", "Bearer " + "B" * 43)])
    assert_error(response, 401, "invalid_token")


def test_passwords_and_tokens_never_reach_logs_or_audit(staffed: Staffed,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "correct horse battery"
    _login(staffed.client, password="wrong horse battery")
    _login(staffed.client, username="ghost", password="ghost password 123")
    token = _login(staffed.client).json()["token"]
    created = staffed.client.post("/api/staff", headers=bearer(token), json={
        "username": "tom", "password": "technician pw 1", "role": "technician"})
    assert created.status_code == 201, created.text
    staffed.client.post("/api/auth/logout", headers=bearer(token))
    with staffed.engine.connect() as conn:
        audit_text = json.dumps([dict(r._mapping) for r in conn.execute(select(audit))], default=str)
    for needle in (secret, "wrong horse battery", "ghost password 123", "technician pw 1", token,
                   token_hash(token)):
        assert needle not in caplog.text
        assert needle not in audit_text
    assert "failed login" in caplog.text  # the failures are logged, just not their secrets


def test_staff_created_through_the_api_can_log_in_with_their_role(staffed: Staffed) -> None:
    token = _login(staffed.client).json()["token"]
    for body, status, error in [
        ({"username": "tom", "password": "short", "role": "technician"}, 422, "invalid_request"),
        ({"username": "tom", "password": "long enough pw", "role": "janitor"}, 422, None),
        ({"username": "tom", "password": "long enough pw", "role": "technician",
          "branch_id": "nowhere"}, 422, "unknown_branch"),
        ({"username": "olga", "password": "long enough pw", "role": "auditor"}, 409,
         "username_taken"),
    ]:
        assert_error(staffed.client.post("/api/staff", headers=bearer(token), json=body), status,
                     error)
    created = staffed.client.post("/api/staff", headers=bearer(token), json={
        "username": "bea", "password": "long enough pw", "role": "branch_staff",
        "branch_id": BRANCH})
    assert created.status_code == 201, created.text
    login = _login(staffed.client, "bea", "long enough pw")
    assert login.status_code == 200 and login.json()["role"] == "branch_staff"
    with staffed.engine.connect() as conn:
        row = conn.execute(select(audit).where(audit.c.action == "staff.create")).one()
        stored = str(conn.execute(select(staff.c.password_hash)
                                  .where(staff.c.username == "bea")).scalar_one())
    assert (row.actor, row.target, row.detail) == ("olga", "bea", {"role": "branch_staff",
                                                                    "branch_id": BRANCH})
    assert stored.startswith(f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$")


# ----------------------------------------------------------------------------- admin writes


def test_cabinet_registration_checks_key_branch_and_uniqueness(staffed: Staffed) -> None:
    token = _login(staffed.client).json()["token"]
    _, public = generate_keypair()

    def register(**fields: Any) -> Any:
        body = {"id": "cab-1", "branch_id": BRANCH, "name": "东门", "location": "lobby",
                "public_key": public, **fields}
        return staffed.client.post("/api/cabinets", headers=bearer(token), json=body)

    for bad_key in ["", public + "A", public[:-1], public + "=", "A" * 44, "!" * 43,
                    "AAAA", public.replace(public[0], "+"), "A" * 42 + "B"]:
        body = assert_error(register(public_key=bad_key), 422)
        assert "public_key" in body["detail"]
    assert_error(register(branch_id="elsewhere"), 422, "unknown_branch")
    assert_error(register(id="bad id"), 422, "invalid_request")
    created = register()
    assert created.status_code == 201, created.text
    assert created.json()["active"] is True and created.json()["public_key"] == public
    assert_error(register(), 409, "cabinet_exists")
    assert_error(register(id="cab-2"), 409, "public_key_in_use")
    listed = staffed.client.get("/api/cabinets", headers=bearer(token)).json()["cabinets"]
    assert [c["id"] for c in listed] == ["cab-1"]
    entries = staffed.client.get("/api/audit", headers=bearer(token)).json()["entries"]
    assert [(e["actor"], e["action"], e["target"]) for e in entries][0] == (
        "olga", "cabinet.register", "cab-1")


def test_network_setup_is_audited_and_checks_references(staffed: Staffed) -> None:
    token = _login(staffed.client).json()["token"]
    post = staffed.client.post
    assert post("/api/libraries", headers=bearer(token),
                json={"isil": "CN-110000", "name": "首都图书馆"}).status_code == 201
    assert_error(post("/api/libraries", headers=bearer(token),
                      json={"isil": "CN-110000", "name": "again"}), 409, "library_exists")
    assert_error(post("/api/branches", headers=bearer(token),
                      json={"id": "bj", "name": "x", "library_isil": "CN-999"}), 422,
                 "unknown_library")
    assert_error(post("/api/branches", headers=bearer(token),
                      json={"id": "bj", "name": "x", "library_isil": "CN-110000",
                            "parent_id": "nope"}), 422, "unknown_branch")
    created = post("/api/branches", headers=bearer(token), json={
        "id": "bj-east", "name": "东城分馆", "library_isil": "CN-110000", "parent_id": BRANCH,
        "floating": True})
    assert created.status_code == 201, created.text
    assert_error(post("/api/branches", headers=bearer(token), json={
        "id": "bj-east", "name": "again", "library_isil": "CN-110000"}), 409, "branch_exists")
    page = staffed.client.get("/api/audit", headers=bearer(token), params={"limit": 2}).json()
    assert [e["action"] for e in page["entries"]] == ["branch.create", "library.create"]
    rest = staffed.client.get("/api/audit", headers=bearer(token),
                              params={"before": page["next_before"]}).json()
    assert [e["action"] for e in rest["entries"]] == ["auth.login"]
    assert all(e["actor"] == "olga" for e in page["entries"] + rest["entries"])


# ----------------------------------------------------------------------------- bad input


_JSON = {"Content-Type": "application/json"}
BAD_LOGIN_BODIES: list[tuple[bytes, dict[str, str], int, str, str]] = [
    (b'{"username": "olga", "password": ', _JSON, 422, "invalid_json", "not valid JSON"),
    (b"\xff\xfe{}", _JSON, 422, "invalid_json", "not valid JSON"),  # not even UTF-8
    (b'{"username": "olga", "password": "x"}', {}, 422, "invalid_json", "Content-Type"),
    (b'{"username": "olga", "password": "x"}', {"Content-Type": "text/plain"}, 422,
     "invalid_json", "Content-Type"),
    (b"[]", _JSON, 422, "invalid_request", "body"),
    (b'{"username": 42, "password": "x"}', _JSON, 422, "invalid_request", "body.username"),
    (b'{"username": "olga", "password": ["x"]}', _JSON, 422, "invalid_request", "body.password"),
    (b'{"username": "olga"}', _JSON, 422, "invalid_request", "body.password: Field required"),
    (b'{"username": "olga", "password": "x", "admin": true}', _JSON, 422, "invalid_request",
     "body.admin"),
    (b'{"username": "ol\\u0000ga", "password": "x"}', _JSON, 422, "invalid_request",
     "body.username"),
]


def test_bad_json_and_wrong_types_are_422_with_a_clear_message(staffed: Staffed) -> None:
    for content, headers, status, error, words in BAD_LOGIN_BODIES:
        response = staffed.client.post("/api/auth/login", content=content, headers=headers)
        body = assert_error(response, status, error)
        assert words in body["detail"], (content, body)
    wrong_type = staffed.client.post("/api/auth/login", json={"username": "olga", "password": 1})
    assert "body.password: Input should be a valid string" in wrong_type.json()["detail"]


def test_text_that_a_database_would_refuse_is_422_not_500(staffed: Staffed) -> None:
    token = _login(staffed.client).json()["token"]
    for name in ["nul\x00byte", "tab\tname", "x" * 201, "", "\ud800 lone surrogate"]:
        body = json.dumps({"isil": "CN-1", "name": name})  # ensure_ascii: \u escapes
        response = staffed.client.post("/api/libraries", headers={
            **bearer(token), "Content-Type": "application/json"}, content=body.encode())
        assert_error(response, 422, "invalid_request")
    for params in [{"limit": "abc"}, {"limit": 0}, {"limit": 10**6}, {"before": 2**70},
                   {"before": -1}]:
        assert_error(staffed.client.get("/api/audit", headers=bearer(token), params=params), 422)


def test_unknown_paths_and_methods_are_json_errors(staffed: Staffed) -> None:
    assert_error(staffed.client.get("/api/nothing-here"), 404, "not_found")
    wrong_method = staffed.client.get("/api/auth/login")
    assert_error(wrong_method, 405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "POST"


def test_a_body_over_the_limit_is_a_json_413(staffed: Staffed) -> None:
    big = b"[" + b"0," * (MAX_BODY_BYTES // 2) + b"0]"
    declared = staffed.client.post("/api/auth/login", content=big,
                                   headers={"Content-Type": "application/json"})
    assert_error(declared, 413, "content_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    streamed = staffed.client.post("/api/auth/login", content=chunks(),
                                   headers={"Content-Type": "application/json"})
    assert_error(streamed, 413, "content_too_large")


def test_an_unexpected_exception_is_a_generic_logged_500(staffed: Staffed,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("internal detail that must not leak")

    staffed.app.add_api_route("/test/broken", broken, methods=["GET"])
    with caplog.at_level(logging.ERROR, logger="server.app"):
        response = staffed.client.get("/test/broken", headers={"Authorization": "Bearer secret-x"})
    body = assert_error(response, 500, "internal_error")
    assert "internal detail" not in body["detail"]
    assert "internal detail that must not leak" in caplog.text  # the traceback is logged …
    assert "secret-x" not in caplog.text  # … without the request's headers


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12)
_field_names = st.sampled_from(["id", "username", "password", "role", "branch_id", "name",
                                "location", "public_key", "isil", "library_isil", "parent_id",
                                "floating"])
_bodies = st.one_of(_json_values, st.dictionaries(_field_names, _json_values, max_size=6))


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/api/auth/login", "/api/staff", "/api/cabinets", "/api/libraries",
                             "/api/branches", "/api/auth/logout"]),
       body=_bodies)
def test_no_request_body_makes_a_500(staffed: Staffed, path: str, body: Any) -> None:
    with staffed.engine.connect() as conn:
        olga = int(conn.execute(select(staff.c.id).where(staff.c.username == "olga")).scalar_one())
    token = token_for(staffed.engine, olga, staffed.clock.now)
    # json.dumps writes NaN/Infinity, which Python's parser (Starlette's) accepts: sent too
    response = staffed.client.post(path, content=json.dumps(body).encode(), headers={
        **bearer(token), "Content-Type": "application/json"})
    assert response.status_code < 500, (path, body, response.text)
    if response.status_code >= 400:
        assert_error(response, response.status_code)


# ----------------------------------------------------------------------------- cabinet requests

PROBE = "/test/cabinet-probe"
_nonces = itertools.count()


@dataclass
class Cabinets:
    engine: Engine
    clock: Clock
    client: TestClient
    cabinet_id: str
    private_key: str

    def send(self, body: bytes = b'{"hello": "server"}', *, path: str = PROBE,
             **kwargs: Any) -> Any:
        kwargs.setdefault("cabinet_id", self.cabinet_id)
        kwargs.setdefault("private_key", self.private_key)
        kwargs.setdefault("now", self.clock.now)
        return signed_request(self.client, path, body, **kwargs)


def add_probe(app: FastAPI) -> None:
    """A route behind ``cabinet_request`` that echoes what it verified (and re-reads the body)."""

    async def probe(cabinet: Annotated[Row[Any], Depends(cabinet_request)],
                    request: Request) -> dict[str, Any]:
        return {"cabinet": cabinet.id, "body": (await request.body()).decode()}

    app.add_api_route(PROBE, probe, methods=["POST"])


@pytest.fixture
def cabs(engine: Engine) -> Iterator[Cabinets]:
    """Cabinet ``cab-1`` registered through the API by an operator, and a probe route."""
    seed_network(engine)
    operator = add_staff(engine, "olga", "operator")
    clock = Clock()
    app = make_app(engine, clock)
    add_probe(app)
    private, public = generate_keypair()
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/api/cabinets", headers=bearer(token_for(engine, operator, T0)),
                               json={"id": "cab-1", "branch_id": BRANCH, "public_key": public})
        assert response.status_code == 201, response.text
        yield Cabinets(engine, clock, client, "cab-1", private)


def test_a_signed_request_from_a_registered_cabinet_passes(cabs: Cabinets) -> None:
    response = cabs.send(b'{"events": []}')
    assert response.status_code == 200, response.text
    assert response.json() == {"cabinet": "cab-1", "body": '{"events": []}'}
    cabs.clock.advance(WINDOW_S)  # the cabinet's timestamp is at the edge of the window
    assert cabs.send(now=T0).status_code == 200


def test_an_unknown_cabinet_is_401(cabs: Cabinets) -> None:
    private, _ = generate_keypair()
    body = assert_error(cabs.send(cabinet_id="cab-9", private_key=private), 401, "unknown_cabinet")
    assert "cab-9" in body["detail"]


def test_a_signature_with_another_key_is_401(cabs: Cabinets) -> None:
    other, _ = generate_keypair()
    assert_error(cabs.send(private_key=other), 401, "bad_signature")


def test_a_tampered_body_is_401(cabs: Cabinets) -> None:
    assert_error(cabs.send(b'{"events": []}', send_body=b'{"events": [1]}'), 401, "bad_signature")


def test_a_request_signed_for_another_path_is_401(cabs: Cabinets) -> None:
    assert_error(cabs.send(path="/v1/sync", send_path=PROBE), 401, "bad_signature")


def test_a_replayed_nonce_is_401(cabs: Cabinets) -> None:
    nonce = "replay-nonce-0000000001"
    assert cabs.send(nonce=nonce).status_code == 200
    assert_error(cabs.send(nonce=nonce), 401, "replayed")
    # even signed anew over another body, the nonce is spent
    assert_error(cabs.send(b"{}", nonce=nonce), 401, "replayed")
    assert cabs.send(nonce="fresh-nonce-000000000001").status_code == 200


def test_a_timestamp_outside_the_window_is_401_and_tells_the_offset(cabs: Cabinets) -> None:
    for offset_s in (-WINDOW_S - 1, WINDOW_S + 1, -86400.0):
        body = assert_error(cabs.send(now=T0 + timedelta(seconds=offset_s)), 401, "out_of_window")
        # the cabinet corrects its clock from server_time
        assert datetime.fromisoformat(body["server_time"]) == T0


def test_an_inactive_cabinet_is_401(cabs: Cabinets) -> None:
    with write_tx(cabs.engine) as conn:
        conn.execute(update(cabinets).where(cabinets.c.id == "cab-1").values(active=False))
    assert_error(cabs.send(), 401, "inactive_cabinet")


def test_a_missing_signature_header_is_401(cabs: Cabinets) -> None:
    body = b"{}"
    for drop in (signing.HEADER_CABINET, signing.HEADER_TIMESTAMP, signing.HEADER_NONCE,
                 signing.HEADER_SIGNATURE):
        headers = signing.sign_request("POST", PROBE, body, cabinet_id="cab-1",
                                       private_key=cabs.private_key, now=T0)
        del headers[drop]
        response = cabs.client.post(PROBE, content=body, headers=headers)
        assert drop in assert_error(response, 401, "missing_header")["detail"]


def test_malformed_signature_headers_are_401_not_500(cabs: Cabinets) -> None:
    body = b"{}"
    good = signing.sign_request("POST", PROBE, body, cabinet_id="cab-1",
                                private_key=cabs.private_key, now=T0)
    for name, value in [(signing.HEADER_TIMESTAMP, "soon"), (signing.HEADER_TIMESTAMP, "9" * 40),
                        (signing.HEADER_NONCE, "short"), (signing.HEADER_SIGNATURE, "!!"),
                        (signing.HEADER_SIGNATURE, "AAAA"), (signing.HEADER_CABINET, "a b")]:
        response = cabs.client.post(PROBE, content=body, headers={**good, name: value})
        assert_error(response, 401, "malformed")
    twice = list(good.items()) + [(signing.HEADER_NONCE, "another-nonce-00000000")]
    assert_error(cabs.client.post(PROBE, content=body, headers=twice), 401, "malformed")


def test_old_nonces_are_pruned_beyond_twice_the_window(cabs: Cabinets) -> None:
    for i in range(3):
        assert cabs.send(nonce=f"early-nonce-{i:011d}").status_code == 200
    cabs.clock.advance(2 * WINDOW_S + 1)
    assert cabs.send(now=cabs.clock.now, nonce="late-nonce-000000000001").status_code == 200
    with cabs.engine.connect() as conn:
        kept = conn.scalars(select(cabinet_nonces.c.nonce)).all()
    assert kept == ["late-nonce-000000000001"]


def test_forged_requests_store_no_nonces(cabs: Cabinets) -> None:
    other, _ = generate_keypair()
    for i in range(5):
        cabs.send(private_key=other, nonce=f"forged-nonce-{i:010d}")
    cabs.send(now=T0 - timedelta(hours=1))
    with cabs.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(cabinet_nonces)) == 0


# ----------------------------------------------------------------------------- CLI


def _server_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lendbox.cli", "server", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, check=False,
                          cwd=Path(__file__).resolve().parents[2])


def test_create_admin_refuses_short_passwords_and_taken_names(
        sqlite_db_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def run(*args: str, stdin: str) -> int:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        return lendbox_main(["server", *args])

    assert run("init", "--db", sqlite_db_url, stdin="") == 0
    assert run("create-admin", "ada", "--db", sqlite_db_url, "--password-stdin",
               stdin="123456789\n") == 1
    assert "at least 10 characters" in capsys.readouterr().err
    assert run("create-admin", "ada", "--db", sqlite_db_url, "--password-stdin",
               stdin="a fine password\n") == 0
    assert run("create-admin", "ada", "--db", sqlite_db_url, "--password-stdin",
               stdin="another password\n") == 1
    assert "exists already" in capsys.readouterr().err
    assert run("create-admin", "not:allowed", "--db", sqlite_db_url, "--password-stdin",
               stdin="a fine password\n") == 1
    from server.db import make_engine

    engine = make_engine(sqlite_db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(staff)).one()
            entry = conn.execute(select(audit)).one()
    finally:
        engine.dispose()
    assert (row.username, row.role) == ("ada", "operator")
    assert verify_password("a fine password", row.password_hash)
    assert (entry.actor, entry.action, entry.target) == ("cli:create-admin", "staff.create", "ada")


def test_run_serves_until_sigterm(sqlite_db_url: str) -> None:
    assert _server_cli("init", "--db", sqlite_db_url).returncode == 0
    assert _server_cli("create-admin", "ada", "--db", sqlite_db_url, "--password-stdin",
                       stdin="a fine password\n").returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "lendbox.cli", "server", "run", "--db",
                             sqlite_db_url, "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"server ready (http://127\.0\.0\.1:\d+)\n", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        import httpx

        reply = httpx.post(match.group(1) + "/api/auth/login", timeout=10,
                           json={"username": "ada", "password": "a fine password"})
        assert reply.status_code == 200 and reply.json()["role"] == "operator"
        missing = httpx.get(match.group(1) + "/nowhere", timeout=10)
        assert_error(missing, 404, "not_found")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_refuses_a_database_that_is_not_migrated(sqlite_db_url: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert lendbox_main(["server", "run", "--db", sqlite_db_url, "--port", "0"]) == 1
    assert "lendbox server init" in capsys.readouterr().err


def test_a_hash_with_its_tail_cut_off_is_refused() -> None:
    """scrypt's shorter output is a prefix of the longer one: a truncated digest must not
    verify (hypothesis found it once, when the cut fell on a whole byte)."""
    stored = hash_password("correct horse battery", **FAST)
    for cut in range(1, 12):
        assert verify_password("correct horse battery", stored[:-cut]) is False


# ----------------------------------------------------------------------------- health


def test_health_says_the_server_and_its_database_answer(engine: Engine, tmp_path: Path) -> None:
    """What a technician or a monitor sees: up with the protocol version and the server's
    clock; a 503 in the server's error shape once the database is gone (no sync could
    succeed then), never a 500."""
    from syncproto.messages import PROTOCOL_VERSION

    with TestClient(make_app(engine, Clock())) as client:
        body = client.get("/v1/health").json()
    assert (body["status"], body["database"], body["version"]) == ("ok", "ok", PROTOCOL_VERSION)
    assert datetime.fromisoformat(body["server_time"]) == T0
    gone = tmp_path / "gone"
    gone.mkdir()
    from server.db import make_engine

    lost = make_engine(f"sqlite:///{gone / 'server.db'}")
    gone.rmdir()  # the database's folder vanished: connecting fails
    try:
        with TestClient(make_app(lost, Clock()), raise_server_exceptions=False) as client:
            assert_error(client.get("/v1/health"), 503, "database_unavailable")
    finally:
        lost.dispose()
