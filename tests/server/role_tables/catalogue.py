"""Role-matrix rows of the catalogue routes (see tests/server/role_tables/__init__.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

_n = itertools.count(1)

DECISIONS: dict[tuple[str, str], str] = {
    ("POST", "/api/items"): "collection.manage",
    ("GET", "/api/items/{item_id}"): "circulation.read",
}
EXAMPLES: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {
    ("POST", "/api/items"): lambda i: {"json": {"items": [{"item_id": f"matrix-{i}"}]}},
    # answered 404 when allowed: the route is reached past its permission check
    ("GET", "/api/items/{item_id}"): lambda i: {"_url": lambda engine: _imported(engine)},
}


def _imported(engine: Any) -> str:
    from server.catalogue import ItemRecord, import_items
    from server.db import write_tx

    item_id = f"matrix-get-{next(_n)}"
    with write_tx(engine) as conn:
        import_items(conn, [ItemRecord(item_id=item_id)])
    return f"/api/items/{item_id}"
