"""Facts that stay true while one cabinet batch is applied, looked up once instead of per event.

Why: applying an event used to cost about nine SQL statements — the engine, holds and routing
each asking the database the same small questions (does this reader exist? does anyone hold
this copy? is it on its way home? which branch is this cabinet?). Per statement the cost is
SQLAlchemy's Python work and, on PostgreSQL, a round trip; the answers are the same for
every event of the batch. ingest installs a cache on the connection for the batch's
transaction; the parts consult :func:`current` and fall back to their own query when there
is none (an HTTP request outside sync, a test calling a part directly).

What may be cached is exactly what sync itself cannot change, or changes only through a
part that updates the cache:

- readers, branches, libraries: created only by staff and registration requests;
- items with a waiting or active hold: holds are placed only by readers' requests (sync only
  moves existing holds between states, never onto another item);
- items with an open transit: routing adds the item when it opens one (:meth:`transit_opened`).

The cache is tied to the transaction it was made in and ignored in any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, select

from .schema import branches, cabinets, events, holds, libraries, readers, transits

__all__ = ["BatchCache", "current", "installed"]

_KEY = "lendbox.batch_cache"
_CHUNK = 500
_HOLD_OPEN = ("waiting", "assigned", "ready")
_TRANSIT_OPEN = ("waiting_pickup", "in_transit")


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i:i + _CHUNK]


@dataclass
class BatchCache:
    """What the batch's events will ask, answered in a handful of queries."""

    conn: Connection
    item_ids: frozenset[str]
    held_items: set[str] = field(default_factory=set)
    transit_items: set[str] = field(default_factory=set)
    _readers: dict[str, bool] = field(default_factory=dict)
    _branches: dict[str, Row[Any]] | None = None
    _network: list[str] | None = None
    _cabinet_branch: dict[str, str] = field(default_factory=dict)
    #: item → its item events that may precede this batch's (see :meth:`history`)
    _history: dict[str, list[Row[Any]]] | None = None
    _cabinet_id: str = ""

    def load_history(self, cabinet_id: str, through_seq: int,
                     kinds: tuple[str, ...]) -> BatchCache:
        """Every item event of the batch's items that the engine's history may contain:
        this cabinet's up to ``through_seq`` (stored before applying) and other cabinets'
        applied ones — which cannot change while this batch is applied (one applier of
        items at a time: SQLite's writer, PostgreSQL's advisory lock)."""
        self._cabinet_id = cabinet_id
        self._history = {}
        for chunk in _chunks(sorted(self.item_ids)):
            for row in self.conn.execute(select(events).where(
                    events.c.item_id.in_(chunk), events.c.kind.in_(kinds),
                    ((events.c.cabinet_id == cabinet_id) & (events.c.seq <= through_seq))
                    | ((events.c.cabinet_id != cabinet_id) & events.c.applied.is_(True)))):
                self._history.setdefault(row.item_id, []).append(row)
        return self

    def history(self, cabinet_id: str, item_id: str, seq: int) -> list[Row[Any]] | None:
        """The item's events up to this cabinet's ``seq`` (unordered), or None when the
        cache cannot answer (another cabinet, an item outside the batch)."""
        if self._history is None or cabinet_id != self._cabinet_id or not self.covers(item_id):
            return None
        return [r for r in self._history.get(item_id, ())
                if r.cabinet_id != cabinet_id or r.seq <= seq]

    def load(self, reader_ids: Iterable[str]) -> BatchCache:
        ids = sorted(self.item_ids)
        for chunk in _chunks(ids):
            self.held_items.update(self.conn.execute(select(holds.c.item_id).where(
                holds.c.item_id.in_(chunk), holds.c.status.in_(_HOLD_OPEN))).scalars())
            self.transit_items.update(self.conn.execute(select(transits.c.item_id).where(
                transits.c.item_id.in_(chunk), transits.c.status.in_(_TRANSIT_OPEN))).scalars())
        wanted = sorted(set(reader_ids))
        self._readers.update(dict.fromkeys(wanted, False))
        for chunk in _chunks(wanted):
            for reader_id in self.conn.execute(select(readers.c.id).where(
                    readers.c.id.in_(chunk))).scalars():
                self._readers[reader_id] = True
        return self

    def covers(self, item_id: str) -> bool:
        """Whether the hold/transit sets speak for this item (it was in the batch)."""
        return item_id in self.item_ids

    def reader_exists(self, reader_id: str) -> bool:
        known = self._readers.get(reader_id)
        if known is None:  # a reader of an older event of the item (re-derivation)
            known = self.conn.execute(select(readers.c.id).where(
                readers.c.id == reader_id)).first() is not None
            self._readers[reader_id] = known
        return known

    def branch(self, branch_id: str | None) -> Row[Any] | None:
        if branch_id is None:
            return None
        if self._branches is None:
            self._branches = {r.id: r for r in self.conn.execute(select(branches))}
        return self._branches.get(branch_id)

    def network(self) -> list[str]:
        if self._network is None:
            self._network = list(self.conn.execute(select(libraries.c.isil)).scalars())
        return self._network

    def cabinet_branch(self, cabinet_id: str) -> str:
        if cabinet_id not in self._cabinet_branch:
            self._cabinet_branch[cabinet_id] = str(self.conn.execute(
                select(cabinets.c.branch_id).where(cabinets.c.id == cabinet_id)).scalar_one())
        return self._cabinet_branch[cabinet_id]

    def transit_opened(self, item_id: str) -> None:
        self.transit_items.add(item_id)


def current(conn: Connection) -> BatchCache | None:
    """The cache of the batch being applied on ``conn`` in its current transaction, if any."""
    found = conn.info.get(_KEY)
    if found is None or found[0] is not conn.get_transaction():
        return None
    cache: BatchCache = found[1]
    return cache


class installed:  # noqa: N801 - used as a context manager, reads like one
    """``with installed(conn, item_ids, reader_ids):`` — the cache for this transaction."""

    def __init__(self, conn: Connection, item_ids: Iterable[str], reader_ids: Iterable[str],
                 *, history: tuple[str, int, tuple[str, ...]] | None = None) -> None:
        self.conn = conn
        self.cache = BatchCache(conn, frozenset(item_ids)).load(reader_ids)
        if history is not None:
            self.cache.load_history(*history)

    def __enter__(self) -> BatchCache:
        self.conn.info[_KEY] = (self.conn.get_transaction(), self.cache)
        return self.cache

    def __exit__(self, *exc: object) -> None:
        self.conn.info.pop(_KEY, None)
