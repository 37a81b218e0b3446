"""Role-matrix rows of the fleet status and remote command routes (server.routes_commands).

Every staff role may look at the fleet (``cabinets.read``, the auditor included); only the
operator and the technician may command a cabinet (``cabinets.command``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DECISIONS: dict[tuple[str, str], str] = {
    ("GET", "/api/fleet"): "cabinets.read",
    ("POST", "/api/cabinets/{cabinet_id}/commands"): "cabinets.command",
    ("GET", "/api/cabinets/{cabinet_id}/commands"): "cabinets.read",
}

EXAMPLES: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {
    ("GET", "/api/fleet"): lambda i: {},
    ("POST", "/api/cabinets/{cabinet_id}/commands"): lambda i: {
        "_url": lambda engine: "/api/cabinets/cab-matrix/commands",
        "json": {"kind": "open_door", "args": {"door": 1, "reason": f"matrix call {i}"}}},
    ("GET", "/api/cabinets/{cabinet_id}/commands"): lambda i: {
        "_url": lambda engine: "/api/cabinets/cab-matrix/commands"},
}
