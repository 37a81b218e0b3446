"""The role matrix: every route × every caller answers exactly as ``PERMISSIONS`` says.

Why table-driven over the app's own routes: a permission check forgotten on a new route is
the kind of mistake no feature test notices (the operator who writes the feature is allowed
anyway). Here every route the app serves must have a decision in :data:`ROUTE_DECISIONS`
— a public route, any logged-in staff, one permission, or a signed cabinet — or the test
fails; then each route is called by anonymous, by an expired token, by every role and by
a signed cabinet, on SQLite and on PostgreSQL, and each answer must be allowed, 401 or 403
exactly as the decision and ``PERMISSIONS`` say. The decision the route *declares* (its
dependencies) is checked against the table as well, so the table cannot drift from the code.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from server.app import create_app
from server.db import write_tx
from server.routes_readers import current_reader
from server.schema import ROLES, cabinets
from server.security import ALL_PERMISSIONS, PERMISSIONS, cabinet_request, current_staff, require
from server.settings import Settings
from syncproto import signing
from syncproto.grants import generate_keypair
from tests.server import role_tables
from tests.server.test_credit import id_number
from tests.server.test_security import (
    BRANCH,
    LIBRARY,
    T0,
    TTL_S,
    Clock,
    add_staff,
    assert_error,
    bearer,
    make_app,
    seed_network,
    token_for,
)

PUBLIC = "public"  # anyone, no credentials
AUTHENTICATED = "authenticated"  # any logged-in staff member, whatever the role
CABINET = "cabinet"  # a request signed by a registered, active cabinet
READER = "reader"  # a reader's phone token (no caller here holds one: see tests/server/test_credit.py)

#: (method, path) → who may call it. A new route must be added here (the test says so).
ROUTE_DECISIONS: dict[tuple[str, str], str] = {
    ("POST", "/api/auth/login"): PUBLIC,
    ("POST", "/api/auth/logout"): AUTHENTICATED,
    ("GET", "/api/me"): AUTHENTICATED,
    ("POST", "/api/staff"): "staff.manage",
    ("POST", "/api/cabinets"): "cabinets.manage",
    ("GET", "/api/cabinets"): "cabinets.read",
    ("POST", "/api/libraries"): "network.manage",
    ("POST", "/api/branches"): "network.manage",
    ("GET", "/api/audit"): "audit.read",
    ("POST", "/v1/sync"): CABINET,
    ("POST", "/v1/readers/resolve"): CABINET,
    ("GET", "/v1/health"): PUBLIC,
    ("GET", "/api/exceptions"): "circulation.read",
    ("POST", "/api/exceptions/{exception_id}/resolve"): "exceptions.resolve",
    ("POST", "/api/readers/register"): PUBLIC,
    ("GET", "/api/readers/me/qr"): READER,
    ("POST", "/api/readers/{reader_id}/block"): "readers.manage",
    ("POST", "/api/readers/{reader_id}/unblock"): "readers.manage",
    ("GET", "/api/credit/exposure"): "cabinets.read",
}

PASSWORD = "correct horse battery"
_serial = itertools.count(1)

#: (method, path) → a request that succeeds when the caller is allowed (unique each call).
EXAMPLES: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {
    ("POST", "/api/auth/login"): lambda i: {"json": {"username": "operator-user",
                                                     "password": PASSWORD}},
    ("POST", "/api/auth/logout"): lambda i: {},
    ("GET", "/api/me"): lambda i: {},
    ("POST", "/api/staff"): lambda i: {"json": {"username": f"new-{i}", "password": "long enough pw",
                                                "role": "auditor"}},
    ("POST", "/api/cabinets"): lambda i: {"json": {"id": f"cab-{i}", "branch_id": BRANCH,
                                                   "public_key": generate_keypair()[1]}},
    ("GET", "/api/cabinets"): lambda i: {},
    ("POST", "/api/libraries"): lambda i: {"json": {"isil": f"CN-{i}", "name": f"library {i}"}},
    ("POST", "/api/branches"): lambda i: {"json": {"id": f"branch-{i}", "name": f"branch {i}",
                                                   "library_isil": LIBRARY}},
    ("GET", "/api/audit"): lambda i: {"params": {"limit": 5}},
    # signed cabinet routes: any JSON gets past the signature check (then 4xx of its own)
    ("POST", "/v1/sync"): lambda i: {"json": {}},
    ("POST", "/v1/readers/resolve"): lambda i: {"json": {}},
    ("GET", "/v1/health"): lambda i: {},
    ("GET", "/api/exceptions"): lambda i: {"params": {"status": "open"}},
    # "_url": the concrete path, made with the test's engine (a fresh open exception)
    ("POST", "/api/exceptions/{exception_id}/resolve"): lambda i: {
        "_url": _open_exception, "json": {"action": "acknowledge", "note": f"call {i}"}},
    ("POST", "/api/readers/register"): lambda i: {"json": {"display_name": f"reader {i}",
                                                           "id_number": id_number(i)}},
    ("GET", "/api/readers/me/qr"): lambda i: {},
    ("POST", "/api/readers/{reader_id}/block"): lambda i: {
        "_url": lambda engine: _matrix_reader(engine) + "/block", "json": {"reason": "matrix"}},
    ("POST", "/api/readers/{reader_id}/unblock"): lambda i: {
        "_url": lambda engine: _matrix_reader(engine) + "/unblock"},
    ("GET", "/api/credit/exposure"): lambda i: {},
}


# the rows of the routes other parts add (tests/server/role_tables/)
_more_decisions, _more_examples = role_tables.merged()
ROUTE_DECISIONS.update(_more_decisions)
EXAMPLES.update(_more_examples)

def _matrix_reader(engine: Engine) -> str:
    """A fresh reader to block or unblock: the URL prefix of its endpoints."""
    from server.schema import readers

    reader_id = f"R-matrix-{next(_serial)}"
    with write_tx(engine) as conn:
        conn.execute(insert(readers).values(id=reader_id, display_name="matrix", role="reader",
                                            tier="new", status="ok", registered_at=T0))
    return f"/api/readers/{reader_id}"


def _open_exception(engine: Engine) -> str:
    """A fresh open exception to resolve: the URL of its resolve endpoint."""
    from server.schema import exceptions

    with write_tx(engine) as conn:
        new_id = conn.execute(insert(exceptions).values(
            kind="role_matrix", evidence={}, actions=["acknowledge"], status="open",
            created_at=T0).returning(exceptions.c.id)).scalar_one()
    return f"/api/exceptions/{new_id}/resolve"

CALLERS = ("anonymous", "expired", *ROLES, "cabinet")


def _routes(app: FastAPI) -> Iterator[tuple[str, str, Any]]:
    """(method, path, route) for every route the app serves (``*`` for non-HTTP-method ones)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before included-router contexts: the routes are flat
        contexts: list[Any] = list(app.routes)
    else:
        contexts = list(iter_route_contexts(app.routes))
    for route in contexts:
        methods = getattr(route, "methods", None) or {"*"}
        for method in sorted(methods):
            yield method, str(route.path), route


def _app_without_database(tmp_path: Path) -> FastAPI:
    """The app as served, to read its routes (its engine never connects)."""
    return create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}"))


def _declared(route: Any) -> str:
    """The decision a route's dependencies make: a permission, any staff, a cabinet, or none."""
    found: set[str] = set()

    def walk(dependant: Any) -> None:
        call = getattr(dependant, "call", None)
        if call is cabinet_request:
            found.add(CABINET)
        elif isinstance(permission := getattr(call, "permission", None), str):
            found.add(permission)
        elif call is current_staff:
            found.add(AUTHENTICATED)
        elif call is current_reader:
            found.add(READER)
        for sub in getattr(dependant, "dependencies", ()):
            walk(sub)

    walk(route.dependant)
    specific = found - {AUTHENTICATED}
    if len(specific) > 1:
        return f"conflicting: {sorted(found)}"
    if specific:
        return specific.pop()
    return AUTHENTICATED if found else PUBLIC


# ----------------------------------------------------------------------------- the table itself


def test_permissions_are_the_contract_table() -> None:
    assert PERMISSIONS == {
        "operator": frozenset(ALL_PERMISSIONS),
        "technician": {"cabinets.read", "cabinets.command"},
        "branch_staff": {"cabinets.read", "circulation.read", "exceptions.resolve",
                         "readers.manage", "collection.manage"},
        "auditor": {"cabinets.read", "circulation.read", "audit.read"},
    }
    assert set(ALL_PERMISSIONS) == {
        "staff.manage", "cabinets.manage", "cabinets.read", "cabinets.command",
        "circulation.read", "exceptions.resolve", "readers.manage", "audit.read",
        "network.manage", "collection.manage"}
    assert set(PERMISSIONS) == set(ROLES)


def test_require_refuses_a_permission_that_does_not_exist() -> None:
    with pytest.raises(ValueError, match="unknown permission"):
        require("cabinets.destroy")
    assert require("audit.read").permission == "audit.read"  # type: ignore[attr-defined]


def test_every_route_has_a_permission_decision(tmp_path: Path) -> None:
    served = {(method, path) for method, path, _ in _routes(_app_without_database(tmp_path))}
    undecided = sorted(served - set(ROUTE_DECISIONS))
    assert undecided == [], ("routes without a permission decision: add them to "
                             "ROUTE_DECISIONS (and EXAMPLES) in tests/server/test_roles.py")
    assert sorted(set(ROUTE_DECISIONS) - served) == [], "decisions for routes that do not exist"
    assert set(EXAMPLES) == set(ROUTE_DECISIONS)
    for decision in ROUTE_DECISIONS.values():
        assert decision in (PUBLIC, AUTHENTICATED, CABINET, READER) or decision in ALL_PERMISSIONS


def test_every_route_declares_the_decision_of_the_table(tmp_path: Path) -> None:
    declared = {(method, path): _declared(route)
                for method, path, route in _routes(_app_without_database(tmp_path))}
    assert declared == ROUTE_DECISIONS


# ----------------------------------------------------------------------------- the matrix


def _expected(decision: str, caller: str) -> str:
    """``allow``, ``401`` or ``403`` for this caller on a route with this decision."""
    if decision == PUBLIC:
        return "allow"
    if decision == CABINET:
        return "allow" if caller == "cabinet" else "401"
    if decision == READER:
        return "401"
    if caller in ("anonymous", "expired", "cabinet"):
        return "401"
    if decision == AUTHENTICATED or decision in PERMISSIONS[caller]:
        return "allow"
    return "403"


def test_every_caller_gets_exactly_what_permissions_say(engine: Engine) -> None:
    seed_network(engine)
    staff_ids = {role: add_staff(engine, f"{role}-user", role, PASSWORD) for role in ROLES}
    private, public = generate_keypair()
    with write_tx(engine) as conn:
        conn.execute(insert(cabinets).values(id="cab-matrix", branch_id=BRANCH, name="",
                                             location="", public_key=public, registered_at=T0,
                                             active=True, applied_through=0,
                                             deny_version_sent=0))
    clock = Clock()
    app = make_app(engine, clock)
    mismatches: list[str] = []
    calls = 0
    with TestClient(app, raise_server_exceptions=False) as client:
        for method, path, _ in _routes(app):
            decision = ROUTE_DECISIONS[(method, path)]
            for caller in CALLERS:
                request = EXAMPLES[(method, path)](next(_serial))
                url = request.pop("_url", lambda _engine: path)(engine)
                # statuses that also mean "past the permission check" for this route (e.g.
                # 409 ils_not_configured on an app without an ILS)
                also_allowed: set[int] = set(request.pop("_allow", ()))
                headers: dict[str, str] = {}
                if caller in ROLES:
                    headers = bearer(token_for(engine, staff_ids[caller], clock.now))
                elif caller == "expired":  # an operator's token, one second past its end
                    headers = bearer(token_for(engine, staff_ids["operator"],
                                               clock.now - timedelta(seconds=TTL_S + 1)))
                elif caller == "cabinet":
                    content = json.dumps(request.pop("json", {})).encode()
                    headers = signing.sign_request(method, url, content, cabinet_id="cab-matrix",
                                                   private_key=private, now=clock.now)
                    headers["Content-Type"] = "application/json"
                    request["content"] = content
                response = client.request(method, url, headers=headers, **request)
                calls += 1
                want = _expected(decision, caller)
                got = response.status_code
                where = f"{method} {path} as {caller} ({decision}): {got} {response.text[:160]}"
                if want == "allow":
                    ok = (got < 300 or got in also_allowed) if decision != CABINET \
                        else got not in (401, 403)
                    if not ok:
                        mismatches.append(f"expected allowed — {where}")
                    continue
                if str(got) != want:
                    mismatches.append(f"expected {want} — {where}")
                    continue
                body = assert_error(response, got)
                if want == "403":
                    assert body["error"] == "forbidden"
                    assert caller in body["detail"] and decision in body["detail"], where
                elif decision == CABINET:  # a bearer token is no signature
                    assert body["error"] == "missing_header", where
                elif decision == READER:  # a staff token is no reader token
                    assert body["error"] in ("missing_token", "invalid_token"), where
                elif caller == "expired":
                    assert body["error"] == "expired_token", where
                else:
                    assert body["error"] == "missing_token", where
    assert mismatches == []
    assert calls == len(ROUTE_DECISIONS) * len(CALLERS)
