"""Where a board's event cursor lives between host restarts.

Why injectable: the cursor is what makes "nothing lost, nothing doubled" hold across a host
crash — the board keeps every event with seq ≥ the last acknowledged cursor, so a host that
resumes from its own durable cursor sees each event once. Tests use memory; the kiosk uses a
file (or its ledger) so a restart resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["CursorStore", "JsonFileCursorStore", "MemoryCursorStore"]


@runtime_checkable
class CursorStore(Protocol):
    """Maps a board key (e.g. ``"rs485-1/1"``) to the next event seq it has not delivered."""

    def load(self, key: str) -> int | None:
        """The stored cursor, or None if this board was never read."""
        ...

    def save(self, key: str, cursor: int) -> None:
        """Durably remember ``cursor`` (every event below it was delivered)."""
        ...


class MemoryCursorStore:
    """Cursors in a dict: survives nothing, enough for tests and one-shot tools."""

    def __init__(self) -> None:
        self._data: dict[str, int] = {}
        self._lock = threading.Lock()

    def load(self, key: str) -> int | None:
        with self._lock:
            return self._data.get(key)

    def save(self, key: str, cursor: int) -> None:
        _check(cursor)
        with self._lock:
            self._data[key] = cursor


class JsonFileCursorStore:
    """Cursors in one small JSON file, replaced atomically (write, fsync, rename).

    A crash mid-save leaves the previous file intact: at worst the last batch is delivered
    again, which consumers de-duplicate by (board, seq); never an event skipped.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # unreadable file: start over from the boards' oldest events
        if not isinstance(data, dict):
            return {}
        return {str(k): int(v) for k, v in data.items() if isinstance(v, int) and v >= 0}

    def load(self, key: str) -> int | None:
        with self._lock:
            return self._read().get(key)

    def save(self, key: str, cursor: int) -> None:
        _check(cursor)
        with self._lock:
            data = self._read()
            data[key] = cursor
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, sort_keys=True)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise


def _check(cursor: int) -> None:
    if not isinstance(cursor, int) or not 0 <= cursor <= 0xFFFFFFFF:
        raise ValueError(f"an event cursor is 0..2^32-1, got {cursor!r}")
