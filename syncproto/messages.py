"""Version 1 of the cabinet↔server sync messages.

Why pydantic models and nothing else here: kiosk and server share no code but this package
(DESIGN.md), so what they exchange is pinned in one place, validated on both sides, and a
field either side does not know is refused (``extra="forbid"``) rather than silently dropped.
Every message carries ``version``; a server answers a version it does not speak with 400.

Times are UTC ISO 8601 strings with an offset (``datetime`` with tzinfo); monotonic times are
the cabinet's own seconds and only comparable within one boot (``boot_id``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "COMMAND_KINDS",
    "EVENT_KINDS",
    "CabinetStatus",
    "Command",
    "CommandResult",
    "DoorFill",
    "StatusAlarm",
    "PROTOCOL_VERSION",
    "CabinetEvent",
    "DenyDelta",
    "DoorSnapshot",
    "HoldInfo",
    "ItemInfo",
    "ReaderQuery",
    "ReaderReply",
    "SignedGrant",
    "SnapshotItem",
    "SyncBatch",
    "SyncReply",
]

PROTOCOL_VERSION = 1

#: What a cabinet reports. ``loan``/``return``: circulation; ``alarm``: an item left without a
#: loan, a door left open or forced, a refused item not put back; ``restock``: a staff
#: handover manifest; ``session``: a session's start/end (for statistics, no reader data);
#: ``recovery``: what start-up found and did with an open intent.
EVENT_KINDS = ("loan", "return", "alarm", "restock", "session", "recovery", "rating")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CabinetEvent(_Model):
    """One ledger event. ``seq`` is gap-free per cabinet from 1; ``uuid`` is its identity
    across retries. ``offline`` marks what was decided without the server (to reconcile).

    ``payload`` by kind (all ids as the library knows them; reader ids, never card numbers):
    loan ``{item_id, reader_id, due, grant_id?, door, session}``; return ``{item_id,
    owner_library, door, session, reader_id?}``; alarm ``{reason, door?, item_id?, session?}``;
    restock ``{manifest}`` (see kiosk docs); session ``{session, kind, outcome}``;
    recovery ``{intent, door, outcome}``.
    """

    cabinet_id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=1)
    uuid: UUID
    kind: Literal["loan", "return", "alarm", "restock", "session", "recovery", "rating"]
    at: datetime  # cabinet wall clock (corrected by the last measured offset when known)
    mono: float  # cabinet monotonic seconds, with boot_id
    boot_id: str = Field(min_length=1, max_length=64)
    offline: bool = False
    payload: dict[str, Any] = Field(default_factory=dict)


class SnapshotItem(_Model):
    """One book a door's inventory saw (``owner_library`` from its ISO 28560 tag)."""

    item_id: str = Field(min_length=1, max_length=64)
    owner_library: str = Field(default="", max_length=32)


class DoorSnapshot(_Model):
    """What one door held at its last count: the server compares it with what it believes
    (server.inventory's discrepancy report). ``unreadable``: tags seen without item data."""

    door: int = Field(ge=1, le=999)
    taken_at: datetime
    items: list[SnapshotItem] = Field(default_factory=list, max_length=500)
    unreadable: int = Field(default=0, ge=0)


#: What staff may ask a cabinet to do from the console (server.fleet_status).
COMMAND_KINDS = ("open_door", "reinventory", "fetch_diagnostics")


class StatusAlarm(_Model):
    """An alarm the cabinet has not cleared yet (see :class:`CabinetStatus`)."""

    kind: str = Field(min_length=1, max_length=64)  # the alarm reason, e.g. door_left_open
    door: int | None = Field(default=None, ge=1, le=999)
    at: datetime


class DoorFill(_Model):
    """How full one door is: books the ledger believes are in it, and its configured slots."""

    door: int = Field(ge=1, le=999)
    count: int = Field(ge=0)
    capacity: int = Field(ge=0)


class CabinetStatus(_Model):
    """The cabinet's own account of itself, sent with every batch (the fleet overview).

    ``devices``: device name (``board-1``, ``reader-2``, ``card_reader``…) → availability as
    the driver reports it (``ok``, ``degraded``, ``offline``…). ``open_alarms``: door-level
    alarms (door left open, forced, lock jammed, count failed) raised after that door's last
    successful count — a count of the door is what clears them. ``offline_exposure``: offline
    loans the server has not acknowledged yet. Everything optional so that a cabinet may
    report what it knows.
    """

    reported_at: datetime
    kiosk_version: str = Field(default="", max_length=64)
    devices: dict[str, str] = Field(default_factory=dict, max_length=200)
    open_alarms: list[StatusAlarm] = Field(default_factory=list, max_length=200)
    fill: list[DoorFill] = Field(default_factory=list, max_length=200)
    offline_exposure: int = Field(default=0, ge=0)
    offline_exposure_cap: int = Field(default=0, ge=0)
    pending_events: int = Field(default=0, ge=0)


class Command(_Model):
    """A remote command from staff (``SyncReply.commands``). A cabinet executes each ``id``
    at most once, and not at all after ``expires_at`` (a late door opening is dangerous).

    ``args`` by kind: open_door ``{door, reason}``; reinventory ``{}``; fetch_diagnostics
    ``{}``."""

    id: int = Field(ge=1)
    kind: Literal["open_door", "reinventory", "fetch_diagnostics"]
    args: dict[str, Any] = Field(default_factory=dict)
    issued_at: datetime
    expires_at: datetime


class CommandResult(_Model):
    """What became of a command (``SyncBatch.command_results``): ``done`` or ``failed`` with
    a JSON ``result`` (counts, diagnostics, the refusal's ``reason``). Re-sending is safe:
    the server stores the first result of a command and ignores the rest."""

    id: int = Field(ge=1)
    status: Literal["done", "failed"]
    result: dict[str, Any] = Field(default_factory=dict)
    finished_at: datetime


class SyncBatch(_Model):
    """POST /v1/sync body: the cabinet's outbox from some sequence on (may overlap what the
    server already has; re-sending is always safe)."""

    version: Literal[1] = 1
    cabinet_id: str = Field(min_length=1, max_length=64)
    sent_at: datetime  # cabinet clock at sending: the server measures the offset from it
    events: list[CabinetEvent] = Field(default_factory=list, max_length=500)
    #: the deltas the cabinet already has: the server sends only what changed after these
    deny_version: int = Field(default=0, ge=0)
    items_version: int = Field(default=0, ge=0)
    #: doors whose contents changed since the last snapshot the server acknowledged
    inventory: list[DoorSnapshot] = Field(default_factory=list, max_length=200)
    #: the cabinet's state for the fleet overview (None: an older kiosk, or nothing new)
    status: CabinetStatus | None = None
    #: results of remote commands not yet delivered (sent until a reply comes back)
    command_results: list[CommandResult] = Field(default_factory=list, max_length=100)


class SignedGrant(_Model):
    """A credit grant (信用借阅) the server signed: who may borrow how much, offline included.

    ``signature`` is Ed25519 over :func:`syncproto.grants.grant_bytes` by key ``key_id``.
    """

    grant_id: str = Field(min_length=1, max_length=64)
    reader_id: str = Field(min_length=1, max_length=64)
    tier: str = Field(min_length=1, max_length=32)
    max_loans: int = Field(ge=0, le=100)
    offline_allowance: int = Field(ge=0, le=100)
    issued_at: datetime
    expires_at: datetime
    key_id: str = Field(min_length=1, max_length=32)
    signature: str = Field(min_length=1, max_length=200)  # base64url, no padding


class DenyDelta(_Model):
    """Readers denied (blocked, lost card, overdue) since ``from_version``; ``removed`` are
    readers cleared again. A cabinet applies deltas in order of ``to_version``."""

    from_version: int = Field(ge=0)
    to_version: int = Field(ge=0)
    added: list[str] = Field(default_factory=list)  # reader ids
    removed: list[str] = Field(default_factory=list)


class ItemInfo(_Model):
    """What the touchscreen and the lending rules need of an item; ``hold_for`` is a reader
    id when the item is held for someone."""

    item_id: str = Field(min_length=1, max_length=64)
    title: str = ""
    author: str = ""
    category: str = ""  # 中图法 top-level class letter, e.g. "I"
    owner_library: str = ""
    home_branch: str = ""
    reference_only: bool = False
    hold_for: str | None = None


class HoldInfo(_Model):
    """A hold to fill at this cabinet: staff load ``item_id``; ``reader_id`` picks it up."""

    item_id: str
    reader_id: str
    expires_at: datetime


class SyncReply(_Model):
    """The answer to a batch: ``applied_through`` is the highest sequence n such that every
    event 1..n of this cabinet is applied; ``gap_from`` is set when an event is missing and
    later ones are held back. ``server_time`` lets the cabinet measure its clock offset."""

    version: Literal[1] = 1
    applied_through: int = Field(ge=0)
    gap_from: int | None = None
    server_time: datetime
    grants: list[SignedGrant] = Field(default_factory=list)
    deny: list[DenyDelta] = Field(default_factory=list)
    items: list[ItemInfo] = Field(default_factory=list)
    items_version: int = Field(default=0, ge=0)
    holds: list[HoldInfo] | None = None  # None: unchanged; a list replaces the cabinet's holds
    config: dict[str, Any] | None = None  # policy overrides pushed by the server
    trusted_keys: dict[str, str] | None = None  # key_id → Ed25519 public key (base64url)
    #: remote commands waiting for this cabinet (each until its result arrives or it expires)
    commands: list[Command] = Field(default_factory=list, max_length=100)


class ReaderQuery(_Model):
    """POST /v1/readers/resolve body: a credential presented at the cabinet, online.

    ``card_hash`` is :func:`syncproto.grants.card_hash` of a card UID or barcode; a QR token
    is verified by the cabinet itself and sent as its reader id."""

    version: Literal[1] = 1
    cabinet_id: str
    card_hash: str | None = None
    reader_id: str | None = None


class ReaderReply(_Model):
    """Who the credential belongs to. ``status``: ``ok``, ``unknown``, ``blocked``,
    ``expired``. ``role`` ``staff`` opens restock sessions. ``loans`` is the reader's current
    loan count across the network (for the per-reader limit)."""

    version: Literal[1] = 1
    status: Literal["ok", "unknown", "blocked", "expired"]
    reader_id: str | None = None
    display_name: str = ""  # shown on screen only, never logged
    role: Literal["reader", "staff"] = "reader"
    loans: int = 0
    grant: SignedGrant | None = None
    message: str = ""
