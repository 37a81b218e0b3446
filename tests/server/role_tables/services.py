"""Role-matrix rows of this part's routes (see tests/server/role_tables/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DECISIONS: dict[tuple[str, str], str] = {}
EXAMPLES: dict[tuple[str, str], Callable[[int], dict[str, Any]]] = {}
