"""The cabinet's ledger: write-ahead intents, the event outbox and the server caches, in SQLite.

Why one SQLite file in WAL mode with ``synchronous=FULL``: a cabinet loses power with doors
open. The rule that makes that safe is *write ahead, then act*: the intent to open a door is
on disk (fsync'd at commit) before the lock is pulsed, and the door's close is recorded as
one transaction (events + the door's new contents + the intent's end). After any crash the
ledger holds either the whole close or an open intent that start-up recovers — never half.

Why the connection is opened here with ``isolation_level=None``: the ledger, not the driver
or sqlite-utils, decides where a transaction starts and ends. Every writing method is one
``BEGIN IMMEDIATE … COMMIT`` (sqlite-utils' own ``atomic()`` nests as a savepoint inside
it), so a failure half-way rolls the whole call back. ``IMMEDIATE`` takes the write lock
before reading ``max(seq)``, so sequences stay gap-free even with a second process.

Why one re-entrant lock around every method: the kiosk calls the ledger from its engine,
API and sync threads over one connection (``check_same_thread=False``); SQLite connections
must not be used by two threads at once, and a transaction must not interleave with
another thread's statements.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import sqlite_utils


from syncproto.messages import (
    CabinetEvent,
    DenyDelta,
    DoorSnapshot,
    HoldInfo,
    ItemInfo,
    SignedGrant,
    SnapshotItem,
)

from .machine import Content  # one type for "a tag in a door", shared with the machine

__all__ = [
    "INTENT_KINDS",
    "SCHEMA_VERSION",
    "CachedReader",
    "Content",
    "ContentLike",
    "Intent",
    "IntentNotOpen",
    "Ledger",
    "LedgerError",
    "NewEvent",
]

SCHEMA_VERSION = 1

#: What an intent opens a door for. ``stray`` is kiosk.machine's ``Unlock.purpose`` for a
#: door handled without a session (not in the first contract draft, accepted here).
INTENT_KINDS = ("borrow", "return", "hold", "restock", "reopen", "stray")

#: Meta keys with a method of their own: ``set_meta`` refuses them so their invariants
#: (acks only grow, deltas apply in order, …) cannot be bypassed.
_RESERVED_META = frozenset(
    {"schema_version", "cabinet_id", "acked_through", "deny_version", "items_version", "trusted_keys",
     "last_boot"}
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL                      -- JSON
);
CREATE TABLE IF NOT EXISTS intents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT,
    door INTEGER NOT NULL,
    kind TEXT NOT NULL,
    reader_id TEXT,
    context TEXT NOT NULL,                   -- JSON object
    opened_at TEXT NOT NULL,                 -- ISO 8601 UTC (clock + offset)
    opened_mono REAL NOT NULL,
    boot_id TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    outcome TEXT,                            -- 'finished' (or the caller's word) | 'void'
    reason TEXT,                             -- why it was voided
    closed_at TEXT
);
CREATE INDEX IF NOT EXISTS intents_open ON intents (state) WHERE state = 'open';
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY CHECK (seq >= 1), -- gap-free from 1, assigned as max + 1
    uuid TEXT NOT NULL UNIQUE,
    cabinet_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,                        -- ISO 8601 UTC (clock + offset)
    mono REAL NOT NULL,
    boot_id TEXT NOT NULL,
    offline INTEGER NOT NULL CHECK (offline IN (0, 1)),
    payload TEXT NOT NULL,                   -- JSON object
    intent_id INTEGER REFERENCES intents (id),
    -- copies of payload fields, for the offline accounting and item_states()
    item_id TEXT,
    reader_id TEXT,
    grant_id TEXT,
    session TEXT
);
CREATE INDEX IF NOT EXISTS events_item ON events (item_id) WHERE item_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_reader ON events (kind, reader_id, grant_id);
CREATE INDEX IF NOT EXISTS events_session ON events (kind, session);
-- unsynced_offline_loans() (every door count) counts a range of this index; without it
-- SQLite walked every loan ever made through events_session
CREATE INDEX IF NOT EXISTS events_kind_offline ON events (kind, offline, seq);
CREATE TABLE IF NOT EXISTS doors (
    door INTEGER PRIMARY KEY,
    baseline_at TEXT NOT NULL,               -- first inventory (set_baseline or a finish)
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS door_contents (
    door INTEGER NOT NULL REFERENCES doors (door),
    uid TEXT NOT NULL,
    item_id TEXT,
    owner_library TEXT,
    PRIMARY KEY (door, uid)
);
CREATE INDEX IF NOT EXISTS door_contents_item ON door_contents (item_id);
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    info TEXT NOT NULL                       -- ItemInfo JSON
);
CREATE TABLE IF NOT EXISTS readers (
    card_hash TEXT PRIMARY KEY,
    reader_id TEXT NOT NULL,
    role TEXT NOT NULL,
    loans INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS grants (
    reader_id TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    grant TEXT NOT NULL                      -- SignedGrant JSON
);
CREATE TABLE IF NOT EXISTS deny (
    reader_id TEXT PRIMARY KEY,
    since_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS holds (
    item_id TEXT PRIMARY KEY,
    reader_id TEXT NOT NULL,
    hold TEXT NOT NULL                       -- HoldInfo JSON
);
CREATE INDEX IF NOT EXISTS holds_reader ON holds (reader_id);
CREATE TABLE IF NOT EXISTS nonces (
    nonce TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires_at);
"""


class LedgerError(Exception):
    """The ledger file cannot be used as asked (another cabinet's, a newer schema, …)."""


class IntentNotOpen(LedgerError):
    """``finish_intent``/``void_intent`` on an intent that is unknown or already closed.

    Refused rather than ignored: finishing twice would write the events twice."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event as the caller knows it; the ledger adds cabinet id, seq, uuid, times, boot.

    ``payload`` must be plain JSON (str keys; str/int/float/bool/None/list/dict values; no
    datetimes: write ``due`` as an ISO string) so that what is read back and sent to the
    server is exactly what was appended."""

    kind: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    offline: bool = False


class ContentLike(Protocol):
    """Anything with a tag's uid, item id and owner (``kiosk.machine.Content`` included)."""

    @property
    def uid(self) -> str: ...

    @property
    def item_id(self) -> str | None: ...

    @property
    def owner_library(self) -> str | None: ...




@dataclass(frozen=True, slots=True)
class Intent:
    """An open write-ahead intent: a door was (about to be) unlocked for ``kind``."""

    id: int
    session: str | None
    door: int
    kind: str
    reader_id: str | None
    context: dict[str, Any]
    opened_at: datetime
    opened_mono: float
    boot_id: str


@dataclass(frozen=True, slots=True)
class CachedReader:
    """What the server last said about a card (by its hash), for offline resolution."""

    card_hash: str
    reader_id: str
    role: str
    loans: int
    updated_at: datetime


def _json(value: Any, what: str) -> str:
    """Encode plain JSON, refusing anything that would not read back identically (tuples,
    non-str keys, NaN, datetimes): the ledger stores what the server will receive."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False)
    if json.loads(text) != value:
        raise ValueError(f"{what} does not survive JSON unchanged: {value!r}")
    return text


def _str_or_none(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        return str(value)
    return None


class Ledger:
    """The cabinet's durable state. See the module docstring for why it is built this way.

    ``clock`` (wall seconds) and ``mono`` (monotonic seconds) are injectable so tests and the
    simulator control time; ``boot_id`` tells events of one boot apart from the next (a fresh
    uuid hex per instance when not given)."""

    def __init__(self, path: str | Path, cabinet_id: str, *,
                 clock: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic,
                 boot_id: str | None = None) -> None:
        if not cabinet_id:
            raise ValueError("cabinet_id is empty")
        self.path = Path(path)
        self.cabinet_id = cabinet_id
        self.boot_id = boot_id or uuid.uuid4().hex
        self._clock = clock
        self._mono = mono
        self._lock = threading.RLock()
        self._closed = False
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                               timeout=30.0)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LedgerError(f"{self.path}: journal_mode is {mode!r}, WAL refused")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._conn = conn
            self._db = sqlite_utils.Database(conn, execute_plugins=False)
            self._create_schema()
        except BaseException:
            conn.close()
            raise

    # ------------------------------------------------------------------ plumbing
    def _create_schema(self) -> None:
        """Create what is missing and check the file belongs to this cabinet and schema."""
        with self._write(mark_boot=False):
            self._db.executescript(_SCHEMA)
            version = self._meta("schema_version", None)
            if version is None:
                self._put_meta("schema_version", SCHEMA_VERSION)
            elif version > SCHEMA_VERSION:
                raise LedgerError(f"{self.path}: schema {version} is newer than {SCHEMA_VERSION}")
            owner = self._meta("cabinet_id", None)
            if owner is None:
                self._put_meta("cabinet_id", self.cabinet_id)
            elif owner != self.cabinet_id:
                # sequences are per cabinet: two cabinets in one file would share them
                raise LedgerError(f"{self.path} is the ledger of {owner!r}, not {self.cabinet_id!r}")

    @contextmanager
    def _write(self, *, mark_boot: bool = True) -> Iterator[None]:
        """One write transaction: everything inside commits together or not at all.

        ``mark_boot``: record this boot as the last writer (``integrity_check`` judges open
        intents against it); opening the file alone does not, so an observer is no writer."""
        with self._lock:
            self._check_open()
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                if mark_boot:
                    self._conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('last_boot', ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (json.dumps(self.boot_id),))
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[None]:
        """One read snapshot, so multi-query answers are consistent with each other."""
        with self._lock:
            self._check_open()
            self._conn.execute("BEGIN")
            try:
                yield
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("COMMIT")

    def _check_open(self) -> None:
        if self._closed:
            raise LedgerError("the ledger is closed")

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def _meta(self, key: str, default: Any) -> Any:
        text = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return default if text is None else json.loads(text)

    def _put_meta(self, key: str, value: Any) -> None:
        self._db.table("meta").upsert({"key": key, "value": _json(value, f"meta {key}")}, pk="key")

    def _now(self) -> datetime:
        """The cabinet's wall clock corrected by the last offset the sync measured."""
        offset = float(self._meta("clock_offset_s", 0.0))
        return datetime.fromtimestamp(self._clock() + offset, UTC)

    def _last_seq(self) -> int:
        return int(self._one("SELECT COALESCE(MAX(seq), 0) FROM events"))

    def _acked(self) -> int:
        return int(self._meta("acked_through", 0))

    def _append(self, events: Sequence[NewEvent], intent_id: int | None) -> list[int]:
        """Write events inside the caller's transaction, numbering them max + 1, … ."""
        seq = self._last_seq()
        at = self._now()
        rows = []
        seqs = []
        for new in events:
            seq += 1
            payload = dict(new.payload)
            event = CabinetEvent(cabinet_id=self.cabinet_id, seq=seq, uuid=uuid.uuid4(),
                                 kind=new.kind,  # type: ignore[arg-type]  # validated here
                                 at=at, mono=self._mono(), boot_id=self.boot_id,
                                 offline=bool(new.offline), payload=payload)
            rows.append({
                "seq": seq, "uuid": str(event.uuid), "cabinet_id": self.cabinet_id,
                "kind": event.kind, "at": at.isoformat(), "mono": event.mono,
                "boot_id": self.boot_id, "offline": int(event.offline),
                "payload": _json(payload, f"{new.kind} payload"), "intent_id": intent_id,
                "item_id": _str_or_none(payload.get("item_id")),
                "reader_id": _str_or_none(payload.get("reader_id")),
                "grant_id": _str_or_none(payload.get("grant_id")),
                "session": _str_or_none(payload.get("session")),
            })
            seqs.append(seq)
        if rows:
            self._db.table("events").insert_all(rows)
        return seqs

    def _replace_contents(self, door: int, contents: Mapping[str, ContentLike]) -> None:
        now = self._now().isoformat()
        rows = []
        for uid, c in contents.items():
            if uid != c.uid:
                raise ValueError(f"door {door}: contents key {uid!r} is not the tag's uid {c.uid!r}")
            rows.append({"door": door, "uid": c.uid, "item_id": c.item_id,
                         "owner_library": c.owner_library})
        self._conn.execute(
            "INSERT INTO doors (door, baseline_at, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (door) DO UPDATE SET updated_at = excluded.updated_at",
            (door, now, now))
        self._db.table("door_contents").delete_where("door = ?", [door])
        if rows:
            self._db.table("door_contents").insert_all(rows)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the connection (idempotent); every write is already committed."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ events / outbox
    def append(self, events: Sequence[NewEvent]) -> list[int]:
        """Append events outside any intent (session start/end, door alarms, recovery);
        returns their sequences. All of them or none are written."""
        with self._write():
            return self._append(events, None)

    def events_after(self, seq: int, limit: int = 500) -> list[CabinetEvent]:
        """The outbox from ``seq`` (exclusive) on, in order: what the sync pushes."""
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT seq, uuid, kind, at, mono, boot_id, offline, payload FROM events "
                "WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)).fetchall()
        return [CabinetEvent(cabinet_id=self.cabinet_id, seq=r[0], uuid=r[1], kind=r[2],
                             at=datetime.fromisoformat(r[3]), mono=r[4], boot_id=r[5],
                             offline=bool(r[6]), payload=json.loads(r[7])) for r in rows]

    def last_seq(self) -> int:
        """The highest sequence written (0: none yet)."""
        with self._lock:
            self._check_open()
            return self._last_seq()

    def acked_through(self) -> int:
        """Every event up to this sequence is applied by the server."""
        with self._lock:
            self._check_open()
            return self._acked()

    def ack(self, through: int) -> int:
        """Record the server's ``applied_through``; returns the acked sequence now.

        Acks only grow (a late reply cannot un-ack) and are clamped to ``last_seq()``: the
        server cannot have applied events this cabinet has not written, and acking beyond
        would hide the next ones from the outbox."""
        with self._write():
            acked = max(self._acked(), min(int(through), self._last_seq()))
            self._put_meta("acked_through", acked)
            return acked

    def pending(self) -> int:
        """Events not yet acked by the server.

        ``last_seq - acked`` rather than a COUNT: sequences are gap-free from 1 (assigned as
        max + 1, never deleted; ``integrity_check`` reports a gap) and acks never pass
        ``last_seq``, so both are equal, and a COUNT walks every unsynced event — all of
        them while the cabinet is offline — on each ``/api/state``."""
        with self._read():
            return max(0, self._last_seq() - self._acked())

    # ------------------------------------------------------------------ door contents
    def contents(self, door: int) -> dict[str, Content]:
        """What the ledger believes is in ``door``, by uid."""
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT uid, item_id, owner_library FROM door_contents WHERE door = ? ORDER BY uid",
                (door,)).fetchall()
        return {r[0]: Content(r[0], r[1], r[2]) for r in rows}

    def all_contents(self) -> dict[int, dict[str, Content]]:
        """Every door with a baseline → its contents (an empty door maps to ``{}``)."""
        with self._read():
            out: dict[int, dict[str, Content]] = {
                d: {} for (d,) in self._conn.execute("SELECT door FROM doors ORDER BY door")}
            for door, uid, item_id, owner in self._conn.execute(
                    "SELECT door, uid, item_id, owner_library FROM door_contents ORDER BY door, uid"):
                out.setdefault(door, {})[uid] = Content(uid, item_id, owner)
        return out

    def door_snapshots(self) -> list[DoorSnapshot]:
        """Every counted door's contents as the server's inventory report wants them, stamped
        with the door's last count (``doors.updated_at``, on the corrected clock). Tags with
        no item data are counted as ``unreadable``."""
        with self._read():
            doors = self._conn.execute("SELECT door, updated_at FROM doors ORDER BY door").fetchall()
            rows = self._conn.execute(
                "SELECT door, item_id, owner_library FROM door_contents ORDER BY door, item_id"
            ).fetchall()
        found: dict[int, list[SnapshotItem]] = {}
        unreadable: dict[int, int] = {}
        for door, item_id, owner in rows:
            if item_id:
                found.setdefault(door, []).append(
                    SnapshotItem(item_id=item_id, owner_library=(owner or "")[:32]))
            else:
                unreadable[door] = unreadable.get(door, 0) + 1
        return [DoorSnapshot(door=door, taken_at=datetime.fromisoformat(updated),
                             items=found.get(door, []), unreadable=unreadable.get(door, 0))
                for door, updated in doors]

    def has_baseline(self, door: int) -> bool:
        """Whether the door was ever inventoried (an empty door with a baseline is known
        empty; without one its contents are unknown)."""
        with self._lock:
            self._check_open()
            return self._one("SELECT 1 FROM doors WHERE door = ?", (door,)) is not None

    def set_baseline(self, door: int, contents: Mapping[str, ContentLike]) -> None:
        """Record a door's inventory without events (its first one, or staff re-baselining)."""
        with self._write():
            self._replace_contents(door, contents)

    # ------------------------------------------------------------------ intents
    def open_intent(self, *, session: str | None, door: int, kind: str, reader_id: str | None,
                    context: Mapping[str, Any]) -> int:
        """Write ahead: the intent is committed (fsync'd) when this returns, so the lock may
        be pulsed. Start-up finds it open if the close was never recorded."""
        if kind not in INTENT_KINDS:
            raise ValueError(f"intent kind {kind!r} is not one of {INTENT_KINDS}")
        with self._write():
            row = {"session": session, "door": door, "kind": kind, "reader_id": reader_id,
                   "context": _json(dict(context), "intent context"),
                   "opened_at": self._now().isoformat(), "opened_mono": self._mono(),
                   "boot_id": self.boot_id, "state": "open"}
            cur = self._conn.execute(
                "INSERT INTO intents (session, door, kind, reader_id, context, opened_at, "
                "opened_mono, boot_id, state) VALUES (:session, :door, :kind, :reader_id, "
                ":context, :opened_at, :opened_mono, :boot_id, :state)", row)
            return int(cur.lastrowid or 0)

    def open_intents(self) -> list[Intent]:
        """Intents not finished nor voided, oldest first: what recovery must settle."""
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT id, session, door, kind, reader_id, context, opened_at, opened_mono, "
                "boot_id FROM intents WHERE state = 'open' ORDER BY id").fetchall()
        return [Intent(id=r[0], session=r[1], door=r[2], kind=r[3], reader_id=r[4],
                       context=json.loads(r[5]), opened_at=datetime.fromisoformat(r[6]),
                       opened_mono=r[7], boot_id=r[8]) for r in rows]

    def _close_intent(self, intent_id: int, outcome: str, reason: str | None) -> int:
        door = self._one("SELECT door FROM intents WHERE id = ? AND state = 'open'", (intent_id,))
        if door is None:
            raise IntentNotOpen(f"intent {intent_id} is unknown or already closed")
        self._conn.execute(
            "UPDATE intents SET state = 'closed', outcome = ?, reason = ?, closed_at = ? "
            "WHERE id = ?", (outcome, reason, self._now().isoformat(), intent_id))
        return int(door)

    def finish_intent(self, intent_id: int, *, contents: Mapping[str, ContentLike],
                      events: Sequence[NewEvent], outcome: str = "finished") -> list[int]:
        """The door's close, in one transaction: the events, the door's new contents and the
        intent's end. A crash leaves all of it or none (the intent stays open)."""
        with self._write():
            door = self._close_intent(intent_id, outcome, None)
            seqs = self._append(events, intent_id)
            self._replace_contents(door, contents)
            return seqs

    def void_intent(self, intent_id: int, reason: str) -> None:
        """Close an intent that changed nothing (the door never opened, or recovery found
        nothing to record); its door's contents stay as they are."""
        with self._write():
            self._close_intent(intent_id, "void", reason)

    # ------------------------------------------------------------------ caches
    def put_items(self, items: Iterable[ItemInfo], version: int) -> None:
        """Store the server's item delta; the version only grows (a late reply cannot move
        the cabinet back to an older catalogue position)."""
        with self._write():
            rows = [{"item_id": i.item_id, "info": i.model_dump_json()} for i in items]
            if rows:
                self._db.table("items").upsert_all(rows, pk="item_id")
            self._put_meta("items_version", max(int(self._meta("items_version", 0)), int(version)))

    def item(self, item_id: str) -> ItemInfo | None:
        """The cached item (None: never heard of it)."""
        with self._lock:
            self._check_open()
            text = self._one("SELECT info FROM items WHERE item_id = ?", (item_id,))
        return None if text is None else ItemInfo.model_validate_json(text)

    def items_version(self) -> int:
        """The catalogue position to ask the server for changes after."""
        with self._lock:
            self._check_open()
            return int(self._meta("items_version", 0))

    def put_grants(self, grants: Iterable[SignedGrant]) -> None:
        """Store signed grants, one per reader; an older grant (by ``issued_at``) never
        replaces a newer one. Signatures are checked by the caller when a grant is used."""
        with self._write():
            for g in grants:
                issued = g.issued_at.isoformat()
                current = self._one("SELECT grant FROM grants WHERE reader_id = ?", (g.reader_id,))
                if current is not None and SignedGrant.model_validate_json(current).issued_at > g.issued_at:
                    continue
                self._db.table("grants").upsert({"reader_id": g.reader_id, "grant_id": g.grant_id,
                                           "issued_at": issued, "grant": g.model_dump_json()},
                                          pk="reader_id")

    def grant(self, reader_id: str) -> SignedGrant | None:
        """The reader's latest grant as signed (expiry and signature are the caller's check)."""
        with self._lock:
            self._check_open()
            text = self._one("SELECT grant FROM grants WHERE reader_id = ?", (reader_id,))
        return None if text is None else SignedGrant.model_validate_json(text)

    def apply_deny(self, delta: DenyDelta) -> bool:
        """Apply one deny delta in order; returns whether it was applied.

        Ignored: a stale delta (``to_version`` ≤ the current version: already applied) and a
        delta that starts after the current version (one is missing: applying it would lose
        the missing one's readers; the next sync asks again from the current version).
        A reader both added and removed stays denied (the safe side)."""
        with self._write():
            current = int(self._meta("deny_version", 0))
            if delta.to_version <= current or delta.from_version > current:
                return False
            if delta.removed:
                marks = ",".join("?" * len(delta.removed))
                self._conn.execute(f"DELETE FROM deny WHERE reader_id IN ({marks})", delta.removed)
            if delta.added:
                self._db.table("deny").upsert_all(
                    [{"reader_id": r, "since_version": delta.to_version} for r in delta.added],
                    pk="reader_id")
            self._put_meta("deny_version", delta.to_version)
            return True

    def denied(self, reader_id: str) -> bool:
        """Whether the server listed the reader as denied (blocked, lost card, overdue)."""
        with self._lock:
            self._check_open()
            return self._one("SELECT 1 FROM deny WHERE reader_id = ?", (reader_id,)) is not None

    def deny_version(self) -> int:
        """The deny-list position to ask the server for changes after."""
        with self._lock:
            self._check_open()
            return int(self._meta("deny_version", 0))

    def replace_holds(self, holds: Iterable[HoldInfo]) -> None:
        """Replace every hold (the server sends the full list when it changes)."""
        with self._write():
            self._db.table("holds").delete_where()
            rows = {h.item_id: {"item_id": h.item_id, "reader_id": h.reader_id,
                                "hold": h.model_dump_json()} for h in holds}
            if rows:
                self._db.table("holds").insert_all(list(rows.values()))

    def holds(self) -> list[HoldInfo]:
        """Every hold to fill at this cabinet, by item id."""
        with self._lock:
            self._check_open()
            rows = self._conn.execute("SELECT hold FROM holds ORDER BY item_id").fetchall()
        return [HoldInfo.model_validate_json(r[0]) for r in rows]

    def holds_for(self, reader_id: str) -> list[HoldInfo]:
        """The holds a reader can pick up here."""
        with self._lock:
            self._check_open()
            rows = self._conn.execute("SELECT hold FROM holds WHERE reader_id = ? ORDER BY item_id",
                                      (reader_id,)).fetchall()
        return [HoldInfo.model_validate_json(r[0]) for r in rows]

    def hold_on(self, item_id: str) -> HoldInfo | None:
        """The hold on an item (None: anyone may borrow it)."""
        with self._lock:
            self._check_open()
            text = self._one("SELECT hold FROM holds WHERE item_id = ?", (item_id,))
        return None if text is None else HoldInfo.model_validate_json(text)

    def put_reader(self, card_hash: str, reader_id: str, role: str, loans: int) -> None:
        """Remember what the server said about a card, to resolve it again offline."""
        with self._write():
            self._db.table("readers").upsert({"card_hash": card_hash, "reader_id": reader_id,
                                        "role": role, "loans": int(loans),
                                        "updated_at": self._now().isoformat()}, pk="card_hash")

    def reader_by_card(self, card_hash: str) -> CachedReader | None:
        """The cached reader of a card hash (None: never resolved online here)."""
        with self._lock:
            self._check_open()
            row = self._conn.execute(
                "SELECT card_hash, reader_id, role, loans, updated_at FROM readers "
                "WHERE card_hash = ?", (card_hash,)).fetchone()
        if row is None:
            return None
        return CachedReader(row[0], row[1], row[2], row[3], datetime.fromisoformat(row[4]))

    def trusted_keys(self) -> dict[str, str]:
        """key_id → Ed25519 public key the server last pushed (empty: none yet)."""
        with self._lock:
            self._check_open()
            return dict(self._meta("trusted_keys", {}))

    def set_trusted_keys(self, keys: Mapping[str, str]) -> None:
        """Replace the trusted keys (the server's list is complete)."""
        with self._write():
            self._put_meta("trusted_keys", dict(keys))

    def get_meta(self, key: str, default: Any = None) -> Any:
        """A small persistent setting (e.g. ``clock_offset_s``), JSON-decoded."""
        with self._lock:
            self._check_open()
            return self._meta(key, default)

    def set_meta(self, key: str, value: Any) -> None:
        """Persist a small setting. Keys with a method of their own are refused."""
        if key in _RESERVED_META:
            raise ValueError(f"meta key {key!r} is written by its own method")
        if key == "clock_offset_s":
            value = float(value)
        with self._write():
            self._put_meta(key, value)

    # ------------------------------------------------------------------ offline accounting
    def offline_loans(self, reader_id: str, grant_id: str) -> int:
        """Offline loans made under this grant: its ``offline_allowance`` is spent by them."""
        with self._lock:
            self._check_open()
            return int(self._one(
                "SELECT COUNT(*) FROM events WHERE kind = 'loan' AND offline = 1 "
                "AND reader_id = ? AND grant_id = ?", (reader_id, grant_id)))

    def unsynced_offline_loans(self) -> int:
        """Offline loans the server has not acked: the cabinet's exposure now."""
        with self._read():
            return int(self._one(
                "SELECT COUNT(*) FROM events WHERE kind = 'loan' AND offline = 1 AND seq > ?",
                (self._acked(),)))

    def loans_in_cabinet_session(self, session: str) -> int:
        """Loans recorded in one session (for the per-session part of the loan limit)."""
        with self._lock:
            self._check_open()
            return int(self._one("SELECT COUNT(*) FROM events WHERE kind = 'loan' AND session = ?",
                                 (str(session),)))

    # ------------------------------------------------------------------ nonces
    def use_nonce(self, nonce: str, expires_at: float) -> bool:
        """Record a one-time value; False when it was seen before (a replay).

        Nonces are kept until ``expires_at`` (wall seconds, same clock as ``clock``), then
        pruned: pass the last moment the token could still verify, clock skew included."""
        with self._write():
            self._conn.execute("DELETE FROM nonces WHERE expires_at < ?", (self._clock(),))
            cur = self._conn.execute("INSERT OR IGNORE INTO nonces (nonce, expires_at) VALUES (?, ?)",
                                     (nonce, float(expires_at)))
            return cur.rowcount == 1

    # ------------------------------------------------------------------ checks
    def item_states(self) -> dict[str, str]:
        """Every item the ledger has seen → ``in`` (in a door per the ledger) or ``out``.

        Replay-free: ``in`` comes from the door contents; an item not in any door is ``out``
        (its last loan, alarm or restock removal took it out). The crash harness compares
        this with the simulator's doors."""
        with self._read():
            inside = {r[0] for r in self._conn.execute(
                "SELECT DISTINCT item_id FROM door_contents WHERE item_id IS NOT NULL")}
            seen = {r[0] for r in self._conn.execute(
                "SELECT item_id FROM events WHERE item_id IS NOT NULL "
                "UNION SELECT CAST(j.value AS TEXT) FROM events, "
                "json_each(events.payload, '$.manifest.removed') AS j "
                "WHERE events.kind = 'restock' AND j.value IS NOT NULL "
                "UNION SELECT CAST(j.value AS TEXT) FROM events, "
                "json_each(events.payload, '$.manifest.loaded') AS j "
                "WHERE events.kind = 'restock' AND j.value IS NOT NULL")}
        states = {item: "out" for item in seen}
        states.update({item: "in" for item in inside})
        return dict(sorted(states.items()))

    def integrity_check(self) -> list[str]:
        """Problems found (empty: fine): sequence gaps, acks beyond the last event, intents
        left open by a boot older than the last one that wrote (recovery should have settled
        them), an item or tag in two doors, SQLite's own checks."""
        problems: list[str] = []
        with self._read():
            last = self._last_seq()
            count = int(self._one("SELECT COUNT(*) FROM events"))
            if count != last:
                for (missing_from, missing_to) in self._conn.execute(
                        "SELECT prev + 1, seq - 1 FROM (SELECT seq, "
                        "COALESCE(LAG(seq) OVER (ORDER BY seq), 0) AS prev FROM events) "
                        "WHERE seq > prev + 1"):
                    problems.append(f"events: sequences {missing_from}..{missing_to} are missing")
            acked = self._acked()
            if acked > last:
                problems.append(f"events: acked through {acked} but the last sequence is {last}")
            # "Current" boots: this instance and whoever wrote last (an observer such as the
            # crash harness must not flag the running kiosk's in-flight intents). An intent
            # left open by any earlier boot should have been settled by recovery.
            current = {self.boot_id, self._meta("last_boot", self.boot_id)}
            for intent_id, door, boot in self._conn.execute(
                    "SELECT id, door, boot_id FROM intents WHERE state = 'open' ORDER BY id"):
                if boot not in current:
                    problems.append(f"intent {intent_id} (door {door}) is still open from boot {boot}")
            for item_id, doors in self._conn.execute(
                    "SELECT item_id, GROUP_CONCAT(DISTINCT door) FROM door_contents "
                    "WHERE item_id IS NOT NULL GROUP BY item_id HAVING COUNT(DISTINCT door) > 1"):
                problems.append(f"item {item_id} is in doors {doors}")
            for uid, doors in self._conn.execute(
                    "SELECT uid, GROUP_CONCAT(DISTINCT door) FROM door_contents "
                    "GROUP BY uid HAVING COUNT(DISTINCT door) > 1"):
                problems.append(f"tag {uid} is in doors {doors}")
            for (line,) in self._conn.execute("PRAGMA integrity_check"):
                if line != "ok":
                    problems.append(f"sqlite: {line}")
            for table, rowid, parent, _ in self._conn.execute("PRAGMA foreign_key_check"):
                problems.append(f"sqlite: {table} row {rowid} refers to a missing {parent}")
        return problems
