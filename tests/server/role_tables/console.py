"""Role-matrix rows of the central console's pages (server/console).

Pages answer HTML; the matrix calls them with ``Authorization: Bearer`` (a browser uses the
``console_token`` cookie, tested in tests/server/test_console_pages.py). Forms are POSTed
urlencoded and answered 303 → the page that says what happened; the test client follows the
redirect with the same header, so an allowed caller ends on a 200.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, insert

from server.db import write_tx
from server.schema import exceptions, readers, recommendations, transits
from tests.server.test_security import BRANCH, T0

PUBLIC = "public"
_serial = itertools.count(1)

DECISIONS: dict[tuple[str, str], str] = {
    ("GET", "/console/static/console.css"): PUBLIC,
    ("GET", "/console/login"): PUBLIC,
    ("POST", "/console/login"): PUBLIC,
    ("POST", "/console/logout"): PUBLIC,
    ("GET", "/console"): "cabinets.read",
    ("GET", "/console/cabinets/{cabinet_id}"): "cabinets.read",
    ("POST", "/console/cabinets/{cabinet_id}/commands"): "cabinets.command",
    ("GET", "/console/exceptions"): "circulation.read",
    ("POST", "/console/exceptions/{exception_id}/resolve"): "exceptions.resolve",
    ("GET", "/console/restock"): "circulation.read",
    ("POST", "/console/transits/{transit_id}/receive"): "collection.manage",
    ("GET", "/console/holds"): "circulation.read",
    ("POST", "/console/holds/expire"): "collection.manage",
    ("GET", "/console/recommendations"): "circulation.read",
    ("POST", "/console/recommendations/{rec_id}/status"): "collection.manage",
    ("GET", "/console/stats"): "circulation.read",
    ("GET", "/console/export/{table}.csv"): "circulation.read",
    ("GET", "/console/report/annual"): "circulation.read",
}


def _exception(engine: Engine) -> str:
    with write_tx(engine) as conn:
        new_id = conn.execute(insert(exceptions).values(
            kind="role_matrix", evidence={}, actions=["acknowledge"], status="open",
            created_at=T0).returning(exceptions.c.id)).scalar_one()
    return f"/console/exceptions/{new_id}/resolve"


def _transit(engine: Engine) -> str:
    n = next(_serial)
    with write_tx(engine) as conn:
        new_id = conn.execute(insert(transits).values(
            item_id=f"console-item-{n}", from_cabinet_id="cab-matrix", to_branch_id=BRANCH,
            to_library="", status="in_transit", return_uuid=f"console-return-{n}",
            created_at=T0, picked_up_at=T0).returning(transits.c.id)).scalar_one()
    return f"/console/transits/{new_id}/receive"


def _recommendation(engine: Engine) -> str:
    reader_id = f"R-console-{next(_serial)}"
    with write_tx(engine) as conn:
        conn.execute(insert(readers).values(id=reader_id, display_name="matrix", role="reader",
                                            tier="new", status="ok", registered_at=T0))
        rec_id = conn.execute(insert(recommendations).values(
            reader_id=reader_id, title="matrix", status="need", history=[], created_at=T0,
            updated_at=T0).returning(recommendations.c.id)).scalar_one()
    return f"/console/recommendations/{rec_id}/status"


EXAMPLES: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {
    ("GET", "/console/static/console.css"): lambda i: {},
    ("GET", "/console/login"): lambda i: {},
    # a wrong password is still an allowed call of a public route: it answers the form (401);
    # the signed-cabinet caller sends a JSON body, which is no form (400)
    ("POST", "/console/login"): lambda i: {"data": {"username": "nobody", "password": "x"},
                                           "_allow": (400, 401)},
    ("POST", "/console/logout"): lambda i: {},
    ("GET", "/console"): lambda i: {},
    ("GET", "/console/cabinets/{cabinet_id}"): lambda i: {
        "_url": lambda engine: "/console/cabinets/cab-matrix"},
    ("POST", "/console/cabinets/{cabinet_id}/commands"): lambda i: {
        "_url": lambda engine: "/console/cabinets/cab-matrix/commands",
        "data": {"kind": "reinventory"}},
    ("GET", "/console/exceptions"): lambda i: {"params": {"status": "all"}},
    ("POST", "/console/exceptions/{exception_id}/resolve"): lambda i: {
        "_url": _exception, "data": {"action": "acknowledge", "note": f"matrix {i}"}},
    ("GET", "/console/restock"): lambda i: {"params": {"branch_id": BRANCH}},
    ("POST", "/console/transits/{transit_id}/receive"): lambda i: {"_url": _transit, "data": {}},
    ("GET", "/console/holds"): lambda i: {},
    ("POST", "/console/holds/expire"): lambda i: {},
    ("GET", "/console/recommendations"): lambda i: {},
    ("POST", "/console/recommendations/{rec_id}/status"): lambda i: {
        "_url": _recommendation, "data": {"status": "review", "note": f"matrix {i}"}},
    ("GET", "/console/stats"): lambda i: {},
    ("GET", "/console/export/{table}.csv"): lambda i: {
        "_url": lambda engine: "/console/export/utilisation.csv"},
    ("GET", "/console/report/annual"): lambda i: {"params": {"year": "2025"}},
}
