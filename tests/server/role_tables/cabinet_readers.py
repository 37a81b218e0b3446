"""Role-matrix rows of the cabinet-signed reader services (server/routes_cabinet_readers.py).

Only a signed, registered cabinet may call them; the example bodies pass the signature and
then get a 4xx of their own (an unknown reader is 404), which the matrix counts as let in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CABINET = "cabinet"

DECISIONS: dict[tuple[str, str], str] = {
    ("POST", "/v1/readers/loans"): CABINET,
    ("POST", "/v1/readers/renew"): CABINET,
    ("POST", "/v1/readers/recommend"): CABINET,
}

EXAMPLES: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {
    ("POST", "/v1/readers/loans"): lambda i: {
        "json": {"cabinet_id": "cab-matrix", "reader_id": f"R-matrix-{i}"}},
    ("POST", "/v1/readers/renew"): lambda i: {
        "json": {"cabinet_id": "cab-matrix", "reader_id": f"R-matrix-{i}", "item_id": f"item-{i}"}},
    ("POST", "/v1/readers/recommend"): lambda i: {
        "json": {"cabinet_id": "cab-matrix", "reader_id": f"R-matrix-{i}", "title": f"book {i}"}},
}
