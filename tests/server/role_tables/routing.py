"""Role-matrix rows of this part's routes (see tests/server/role_tables/__init__.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, insert

from server.db import write_tx
from server.schema import transits
from tests.server.test_security import BRANCH, T0

_serial = itertools.count(1)

DECISIONS: dict[tuple[str, str], str] = {
    ("GET", "/api/restock"): "circulation.read",
    ("GET", "/api/transits"): "circulation.read",
    ("POST", "/api/transits/{transit_id}/receive"): "collection.manage",
}


def _open_transit(engine: Engine) -> str:
    """A fresh transit on its way to the matrix branch: the URL of its receive endpoint."""
    n = next(_serial)
    with write_tx(engine) as conn:
        new_id = conn.execute(insert(transits).values(
            item_id=f"matrix-item-{n}", from_cabinet_id="cab-matrix", to_branch_id=BRANCH,
            to_library="", status="in_transit", return_uuid=f"matrix-return-{n}",
            created_at=T0, picked_up_at=T0).returning(transits.c.id)).scalar_one()
    return f"/api/transits/{new_id}/receive"


EXAMPLES: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {
    ("GET", "/api/restock"): lambda i: {"params": {"branch_id": BRANCH}},
    ("GET", "/api/transits"): lambda i: {"params": {"status": "open", "to_branch_id": BRANCH}},
    ("POST", "/api/transits/{transit_id}/receive"): lambda i: {"_url": _open_transit},
}
