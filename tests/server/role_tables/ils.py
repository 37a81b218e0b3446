"""Role-matrix rows of the ILS routes (see tests/server/role_tables/__init__.py).

The matrix's app has no ILS, so an allowed caller of the lookup routes gets 409
``ils_not_configured`` — past the permission check, which is what the matrix asks
(``_allow``). The lookups themselves are tested over real sockets in
tests/server/test_ils_lookup.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DECISIONS: dict[tuple[str, str], str] = {
    ("GET", "/api/ils/outbox"): "circulation.read",
    ("GET", "/api/ils/patrons/{patron_id}"): "circulation.read",
    ("GET", "/api/ils/items/{item_id}"): "circulation.read",
}

EXAMPLES: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {
    ("GET", "/api/ils/outbox"): lambda i: {"params": {"status": "pending", "limit": 10}},
    ("GET", "/api/ils/patrons/{patron_id}"): lambda i: {
        "_url": lambda engine: f"/api/ils/patrons/R{i:07d}", "_allow": {409}},
    ("GET", "/api/ils/items/{item_id}"): lambda i: {
        "_url": lambda engine: f"/api/ils/items/3901{i:09d}", "_allow": {409}},
}
