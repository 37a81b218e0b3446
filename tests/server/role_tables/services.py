"""Role-matrix rows of this part's routes (see tests/server/role_tables/__init__.py).

Reader routes (``reader``) answer 401 to every staff caller: a staff session is no phone
token. Staff routes need ``circulation.read`` to look and ``collection.manage`` to act.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert

READER = "reader"
_serial = itertools.count(1)
_T0 = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)

DECISIONS: dict[tuple[str, str], str] = {
    ("GET", "/api/readers/me/loans"): READER,
    ("POST", "/api/readers/me/loans/{item_id}/renew"): READER,
    ("GET", "/api/readers/me/holds"): READER,
    ("POST", "/api/readers/me/holds"): READER,
    ("DELETE", "/api/readers/me/holds/{hold_id}"): READER,
    ("GET", "/api/readers/me/recommendations"): READER,
    ("POST", "/api/readers/me/recommendations"): READER,
    ("POST", "/api/readers/me/ratings"): READER,
    ("GET", "/api/holds"): "circulation.read",
    ("POST", "/api/holds/expire"): "collection.manage",
    ("GET", "/api/recommendations"): "circulation.read",
    ("POST", "/api/recommendations/{rec_id}/status"): "collection.manage",
    ("POST", "/api/notifications/send"): "collection.manage",
}


def _fresh_recommendation(engine: Engine) -> str:
    """A new recommendation in ``need``: the URL of its status endpoint."""
    from server.db import write_tx
    from server.schema import readers, recommendations

    reader_id = f"R-services-{next(_serial)}"
    with write_tx(engine) as conn:
        conn.execute(insert(readers).values(id=reader_id, display_name="matrix", role="reader",
                                            tier="new", status="ok", registered_at=_T0))
        rec_id = conn.execute(insert(recommendations).values(
            reader_id=reader_id, title="matrix", status="need", history=[], created_at=_T0,
            updated_at=_T0).returning(recommendations.c.id)).scalar_one()
    return f"/api/recommendations/{rec_id}/status"


EXAMPLES: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {
    ("GET", "/api/readers/me/loans"): lambda i: {},
    ("POST", "/api/readers/me/loans/{item_id}/renew"): lambda i: {
        "_url": lambda engine: f"/api/readers/me/loans/item-{i}/renew"},
    ("GET", "/api/readers/me/holds"): lambda i: {},
    ("POST", "/api/readers/me/holds"): lambda i: {
        "json": {"item_id": f"item-{i}", "pickup_cabinet_id": "cab-matrix"}},
    ("DELETE", "/api/readers/me/holds/{hold_id}"): lambda i: {
        "_url": lambda engine: f"/api/readers/me/holds/{i}"},
    ("GET", "/api/readers/me/recommendations"): lambda i: {},
    ("POST", "/api/readers/me/recommendations"): lambda i: {"json": {"title": f"book {i}"}},
    ("POST", "/api/readers/me/ratings"): lambda i: {"json": {"score": 5}},
    ("GET", "/api/holds"): lambda i: {"params": {"status": "ready"}},
    ("POST", "/api/holds/expire"): lambda i: {},
    ("GET", "/api/recommendations"): lambda i: {},
    ("POST", "/api/recommendations/{rec_id}/status"): lambda i: {
        "_url": _fresh_recommendation, "json": {"status": "review", "note": f"call {i}"}},
    ("POST", "/api/notifications/send"): lambda i: {},
}
