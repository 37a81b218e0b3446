"""Role-matrix rows of the ILS forwarding routes (see tests/server/role_tables/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DECISIONS: dict[tuple[str, str], str] = {
    ("GET", "/api/ils/outbox"): "circulation.read",
}
EXAMPLES: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {
    ("GET", "/api/ils/outbox"): lambda i: {"params": {"status": "pending", "limit": 10}},
}
