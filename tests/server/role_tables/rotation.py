"""Role-matrix rows of this part's routes (see tests/server/role_tables/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

CABINET = "cab-matrix"  # registered by the matrix test
_PROFILE = {"themes": {"I": 0.5}, "per_door": 10, "stale_days": 60}


def _with_profile(suffix: str) -> Callable[[Engine], str]:
    """A URL of the matrix cabinet that needs a profile: make sure it has one first."""

    def url(engine: Engine) -> str:
        from server import rotation
        from server.db import write_tx

        with write_tx(engine) as conn:
            if rotation.get_profile(conn, CABINET) is None:
                rotation.put_profile(conn, CABINET, themes={"I": 0.5}, per_door=10,
                                     stale_days=60, now=datetime(2025, 3, 1, tzinfo=UTC))
        return f"/api/cabinets/{CABINET}/{suffix}"

    return url


DECISIONS: dict[tuple[str, str], str] = {
    ("PUT", "/api/cabinets/{cabinet_id}/profile"): "collection.manage",
    ("GET", "/api/cabinets/{cabinet_id}/profile"): "cabinets.read",
    ("GET", "/api/cabinets/{cabinet_id}/rotation"): "circulation.read",
    ("POST", "/api/cabinets/{cabinet_id}/rotation/apply"): "collection.manage",
}
EXAMPLES: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {
    ("PUT", "/api/cabinets/{cabinet_id}/profile"): lambda i: {
        "_url": lambda engine: f"/api/cabinets/{CABINET}/profile",
        "json": {**_PROFILE, "stale_days": 30 + i % 100}},
    ("GET", "/api/cabinets/{cabinet_id}/profile"): lambda i: {"_url": _with_profile("profile")},
    ("GET", "/api/cabinets/{cabinet_id}/rotation"): lambda i: {"_url": _with_profile("rotation")},
    ("POST", "/api/cabinets/{cabinet_id}/rotation/apply"): lambda i: {
        "_url": _with_profile("rotation/apply")},
}
