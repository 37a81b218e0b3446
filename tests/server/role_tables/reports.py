"""Role-matrix rows of this part's routes (see tests/server/role_tables/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DECISIONS: dict[tuple[str, str], str] = {
    ("GET", "/api/reports/discrepancies"): "circulation.read",
    ("GET", "/api/reports/stats"): "circulation.read",
    ("POST", "/api/cabinets/{cabinet_id}/inventory/adopt"): "collection.manage",
}
EXAMPLES: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {
    ("GET", "/api/reports/discrepancies"): lambda i: {"params": {"format": "json"}},
    ("GET", "/api/reports/stats"): lambda i: {
        "params": {"from": "2025-03-01", "to": "2025-03-02", "format": "csv",
                   "table": "hourly"}},
    ("POST", "/api/cabinets/{cabinet_id}/inventory/adopt"): lambda i: {
        "_url": lambda engine: "/api/cabinets/" + _counted_cabinet(engine) + "/inventory/adopt"},
}


def _counted_cabinet(engine: Any) -> str:
    """The matrix's cabinet, with a (fresh) empty count of door 1 to adopt."""
    from datetime import UTC, datetime

    from sqlalchemy import delete, insert

    from server.db import write_tx
    from server.schema import door_snapshots

    at = datetime(2030, 1, 1, tzinfo=UTC)
    with write_tx(engine) as conn:
        conn.execute(delete(door_snapshots).where(door_snapshots.c.cabinet_id == "cab-matrix"))
        conn.execute(insert(door_snapshots).values(cabinet_id="cab-matrix", door=1, taken_at=at,
                                                   items=[], unreadable=0, received_at=at))
    return "cab-matrix"
