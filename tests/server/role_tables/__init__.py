"""Role-matrix rows of the routes each part of the server adds, one module per part.

Why split: several people add routes at once; one module each keeps their rows apart.
Each module defines ``DECISIONS`` ((method, path) → decision, as in
tests/server/test_roles.py) and ``EXAMPLES`` ((method, path) → request maker).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

PARTS = ("catalogue", "routing", "services", "reports", "rotation", "ils", "cabinet_readers",
         "commands", "console")


def merged() -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], Callable[[int], dict[str, Any]]]]:
    decisions: dict[tuple[str, str], str] = {}
    examples: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {}
    for part in PARTS:
        module = importlib.import_module(f"{__name__}.{part}")
        decisions.update(module.DECISIONS)
        examples.update(module.EXAMPLES)
    return decisions, examples
