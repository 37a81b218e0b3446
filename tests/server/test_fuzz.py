"""Fuzzing the whole HTTP API: no request, however malformed, gets a 5xx.

Schemathesis generates requests for every operation of the app's OpenAPI document (built
in-process from ``create_app(...).openapi()``: the server serves no /openapi.json on purpose)
and calls the ASGI app in-process — staff routes with an operator's bearer token (so they get
past authentication into validation and the database), the reader's ``/api/readers/me/...``
routes with a reader's token, and the cabinet routes unsigned (401 expected). The signed
cabinet routes take a raw body the schema does not describe, so a second, Hypothesis-only
test signs arbitrary and mutated JSON bodies with a registered cabinet's key.

Bounded: ``EXAMPLES`` generated requests per operation, no example database, so a run is
the same size every time (well under a minute).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.core.result import Ok
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert

from server.app import create_app
from server.db import make_engine, write_tx
from server.migrate import upgrade
from server.schema import branches, cabinets, libraries
from server.settings import Settings
from syncproto import grants, signing
from tests.server.test_security import add_staff, token_for

EXAMPLES = 25
CAB = "fuzz-cab"
CAB_PRIVATE, CAB_PUBLIC = grants.generate_keypair()
LIBRARY, BRANCH = "CN-FUZZ", "fuzz-branch"
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck),
                         phases=[Phase.explicit, Phase.generate, Phase.shrink])


@dataclass
class Target:
    app: FastAPI
    engine: Engine
    staff_token: str
    reader_token: str


def make_target(db_path: Path, extend: Callable[[FastAPI], None] | None = None) -> Target:
    """A migrated SQLite database with a network, a cabinet, an operator and a reader, and
    the real app on it (``extend`` may add routes: the self-test's broken one)."""
    url = f"sqlite:///{db_path}"
    upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    with write_tx(engine) as conn:
        conn.execute(insert(libraries).values(isil=LIBRARY, name="Fuzz Library"))
        conn.execute(insert(branches).values(id=BRANCH, name="Fuzz", library_isil=LIBRARY,
                                             floating=False))
        conn.execute(insert(cabinets).values(id=CAB, branch_id=BRANCH, name=CAB, location="",
                                             public_key=CAB_PUBLIC, registered_at=now,
                                             active=True, applied_through=0,
                                             deny_version_sent=0))
    staff_token = token_for(engine, add_staff(engine, "fuzz-operator", "operator"), now)
    app = create_app(Settings(database_url=url), engine=engine)
    if extend is not None:
        extend(app)
    with TestClient(app) as client:
        r = client.post("/api/readers/register", json={
            "display_name": "Fuzz Reader", "id_number": "11010119800101001X"[:17] + _check(
                "11010119800101001"), "phone": "13900000001"})
        assert r.status_code == 201, r.text
        reader_token = r.json()["token"]
    return Target(app, engine, staff_token, reader_token)


def _check(body: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def fuzz_operations(target: Target) -> list[str]:
    """Run schemathesis over every operation; the 5xx answers found, one (the shrunk
    example) per operation — empty when there is none."""
    schema = schemathesis.openapi.from_dict(target.app.openapi())
    schema.app = target.app
    found: dict[str, str] = {}
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the app's OpenAPI document is invalid: {result!r}"
        operations.append(result.ok())
    assert operations, "the app's OpenAPI document lists no operations"
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        token = (target.reader_token if operation.path.startswith("/api/readers/me")
                 else target.staff_token)
        headers = {"Authorization": f"Bearer {token}"}

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            try:
                response = case.call(headers=headers)
            except Exception as exc:  # the app raised through the ASGI client: a 500
                found[label] = f"{label} raised {exc!r}\n    {case.as_curl_command()}"
                raise AssertionError(repr(exc)) from exc
            if response.status_code >= 500:
                found[label] = (f"{label} → {response.status_code}: {response.text[:300]}"
                                f"\n    {case.as_curl_command()}")
            assert response.status_code < 500

        try:
            run()
        except AssertionError:
            pass  # recorded in `found`; the other operations still get their turn
    return list(found.values())


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    t = make_target(tmp_path_factory.mktemp("fuzz") / "server.db")
    try:
        yield t
    finally:
        t.engine.dispose()


def test_no_generated_request_gets_a_5xx(target: Target) -> None:
    found = fuzz_operations(target)
    assert found == [], "\n".join(found)


# ----------------------------------------------------------------------------- signed bodies

_NOW = "2030-01-01T00:00:00+00:00"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12)
_event = st.fixed_dictionaries({
    "cabinet_id": st.just(CAB), "seq": st.integers(-1, 2**63), "uuid": st.uuids().map(str),
    "kind": st.sampled_from(["loan", "return", "alarm", "restock", "session", "recovery",
                             "rating", "other"]),
    "at": st.just(_NOW), "mono": st.floats(allow_nan=False, allow_infinity=False),
    "boot_id": st.text(min_size=1, max_size=8),
}, optional={"offline": st.booleans(),
             "payload": st.dictionaries(st.sampled_from(
                 ["item_id", "reader_id", "due", "door", "session", "owner_library", "manifest",
                  "score", "comment", "reason"]), json_values, max_size=5)})
sync_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"cabinet_id": st.just(CAB), "sent_at": st.just(_NOW)},
                          optional={"version": json_values,
                                    "events": st.lists(_event, max_size=4),
                                    "deny_version": json_values, "items_version": json_values,
                                    "inventory": json_values}),
)
resolve_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"cabinet_id": st.just(CAB)},
                          optional={"card_hash": json_values, "reader_id": json_values,
                                    "version": json_values}),
)


@FUZZ_SETTINGS
@given(path_body=st.one_of(st.tuples(st.just("/v1/sync"), sync_bodies),
                           st.tuples(st.just("/v1/readers/resolve"), resolve_bodies)))
def test_signed_cabinet_requests_never_get_a_5xx(target: Target,
                                                  path_body: tuple[str, Any]) -> None:
    path, payload = path_body
    body = json.dumps(payload).encode()
    headers = signing.sign_request("POST", path, body, cabinet_id=CAB, private_key=CAB_PRIVATE,
                                   now=datetime.now(UTC))
    headers["Content-Type"] = "application/json"
    with TestClient(target.app, raise_server_exceptions=False) as client:
        response = client.post(path, content=body, headers=headers)
    assert response.status_code in (200, 400, 403, 409, 422), (response.status_code,
                                                                 response.text, payload)
