"""The central service's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Why Core and not an ORM: the server is a set of small, explicit transactions (apply one
cabinet batch, resolve one exception); SQL that reads like SQL is easier to reason about for
"nothing applied twice" than object sessions. Alembic migrations (``server/migrations``) are
the only way the schema changes; ``metadata`` here must always equal the latest revision
(a test compares them).

Personal data is minimised: card numbers and identity numbers are stored only as hashes
(``syncproto.grants.card_hash``); a display name is kept because the reader services show it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import false
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ROLES", "UtcDateTime", "audit", "branches", "cabinet_commands", "cabinet_nonces",
    "cabinet_status", "cabinets", "collection_profiles",
    "deny_list", "door_snapshots", "events", "exceptions", "grants", "holds", "items", "libraries",
    "metadata", "notifications", "ratings", "reader_tokens", "readers", "recommendations",
    "restock_tasks", "server_keys", "staff", "staff_tokens", "transits",
]

#: Staff roles, most powerful first (docs/server.md has the permission matrix).
ROLES = ("operator", "technician", "branch_staff", "auditor")



class UtcDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that means the same instant on SQLite and PostgreSQL.

    Why: SQLite has no time zones; SQLAlchemy's SQLite DATETIME silently drops ``tzinfo``, so a
    ``+08:00`` time would be stored 8 hours off and read back naive, while PostgreSQL returns
    aware times — code comparing them would work on one database and raise on the other.
    Here values are written as UTC (naive UTC text on SQLite, ``timestamptz`` on PostgreSQL)
    and always read back as aware UTC datetimes. A naive datetime is refused (ValueError):
    we cannot know which zone it meant.
    """

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"a time with a time zone is required, not {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

#: Libraries of the network (通借通还): ISIL → name. A tag whose owner is not here is
#: "outside the network": flagged, not lost.
libraries = Table(
    "libraries", metadata,
    Column("isil", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
)

#: Branches (总分馆制): a city library and its county/district branches. ``floating``: items
#: returned elsewhere stay where they are instead of going home.
branches = Table(
    "branches", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("library_isil", String(32), ForeignKey("libraries.isil"), nullable=False),
    Column("parent_id", String(64), ForeignKey("branches.id"), nullable=True),
    Column("floating", Boolean, nullable=False, default=False),
    # people the branch serves (参与率 = distinct readers ÷ population); None: unknown
    Column("population", Integer, nullable=True),
)

cabinets = Table(
    "cabinets", metadata,
    Column("id", String(64), primary_key=True),
    Column("branch_id", String(64), ForeignKey("branches.id"), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("location", String(200), nullable=False, default=""),
    Column("public_key", String(64), nullable=False),  # Ed25519, base64url
    Column("registered_at", UtcDateTime(), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    # per-cabinet ordering: the row is locked while a batch of this cabinet is applied
    Column("applied_through", BigInteger, nullable=False, default=0),
    Column("last_sync_at", UtcDateTime(), nullable=True),
    Column("clock_offset_s", Float, nullable=True),
    Column("deny_version_sent", BigInteger, nullable=False, default=0),
    # items this cabinet may lend on credit while unsynced (the kiosk's policy value); the
    # fleet's worst-case offline exposure is the sum over active cabinets (server.credit)
    Column("offline_exposure_cap", Integer, nullable=False, default=20, server_default="20"),
    # slots for books (utilisation, rotation sizing); 0: unknown
    Column("capacity", Integer, nullable=False, default=0, server_default="0"),
)

#: Every event a cabinet sent, exactly once: (cabinet, seq) and uuid are both unique.
#: ``applied`` is false while the event waits behind a gap.
events = Table(
    "events", metadata,
    Column("cabinet_id", String(64), ForeignKey("cabinets.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("at_corrected", UtcDateTime(), nullable=False),
    Column("mono", Float, nullable=False),
    Column("boot_id", String(64), nullable=False),
    Column("offline", Boolean, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("item_id", String(64), nullable=True),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("applied", Boolean, nullable=False, default=False),
    # a loan's credit grant (payload grant_id): the overdraft check counts a grant's
    # offline loans through this index instead of scanning every offline loan
    Column("grant_id", String(64), nullable=True),
    Index("ix_events_item_at", "item_id", "at_corrected"),
    Index("ix_events_grant", "grant_id"),
    Index("ix_events_pending", "cabinet_id", "applied", "seq"),
)

#: Replay protection of signed cabinet requests (nonces inside the signature window).
cabinet_nonces = Table(
    "cabinet_nonces", metadata,
    Column("cabinet_id", String(64), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("seen_at", UtcDateTime(), nullable=False),
)

staff = Table(
    "staff", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),  # scrypt, with its parameters
    Column("role", String(16), nullable=False),
    Column("branch_id", String(64), ForeignKey("branches.id"), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)

#: Bearer tokens of logged-in staff, stored hashed (a database leak gives no session).
staff_tokens = Table(
    "staff_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("staff_id", Integer, ForeignKey("staff.id"), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)

readers = Table(
    "readers", metadata,
    Column("id", String(64), primary_key=True),
    Column("card_hash", String(64), nullable=True, unique=True),
    Column("id_number_hash", String(64), nullable=True, unique=True),
    Column("display_name", String(100), nullable=False, default=""),
    Column("role", String(16), nullable=False, default="reader"),
    Column("tier", String(32), nullable=False, default="standard"),
    Column("status", String(16), nullable=False, default="ok"),  # ok | blocked | expired
    Column("home_branch_id", String(64), ForeignKey("branches.id"), nullable=True),
    Column("registered_at", UtcDateTime(), nullable=False),
    # 秒办证 (server.credit): the phone only as a peppered hash (like id_number_hash), and the
    # third-party credit score the tier was chosen from (None: no score)
    Column("phone_hash", String(64), nullable=True),
    Column("credit_score", Integer, nullable=True),
)

#: Bearer tokens of readers' phones (the electronic card), stored hashed; a separate table
#: from ``staff_tokens`` so a reader token can never act as a staff session or vice versa.
reader_tokens = Table(
    "reader_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("reader_id", String(64), ForeignKey("readers.id"), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Index("ix_reader_tokens_reader", "reader_id"),
)

items = Table(
    "items", metadata,
    Column("id", String(64), primary_key=True),
    Column("title", String(300), nullable=False, default=""),
    Column("author", String(200), nullable=False, default=""),
    Column("category", String(8), nullable=False, default=""),
    Column("owner_library", String(32), nullable=False, default=""),
    Column("home_branch_id", String(64), ForeignKey("branches.id"), nullable=True),
    Column("reference_only", Boolean, nullable=False, default=False),
    # on_shelf | in_cabinet | loaned | in_transit | lost | missing
    Column("status", String(16), nullable=False, default="on_shelf"),
    Column("location_cabinet_id", String(64), ForeignKey("cabinets.id"), nullable=True),
    Column("borrower_id", String(64), ForeignKey("readers.id"), nullable=True),
    Column("due", String(10), nullable=True),
    Column("version", BigInteger, nullable=False, default=0),  # the item-cache delta version
    Column("isbn", String(17), nullable=True),
    Column("acquired_at", UtcDateTime(), nullable=True),  # recent acquisitions (rotation)
    Column("damaged", Boolean, nullable=False, default=False, server_default=false()),
    Column("last_loan_at", UtcDateTime(), nullable=True),  # stale stock (rotation)
)

#: Signing keys of the server (grants, QR tokens): the current and the previous are trusted.
server_keys = Table(
    "server_keys", metadata,
    Column("key_id", String(32), primary_key=True),
    Column("private_key", String(64), nullable=False),
    Column("public_key", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("retired_at", UtcDateTime(), nullable=True),
)

grants = Table(
    "grants", metadata,
    Column("grant_id", String(64), primary_key=True),
    Column("reader_id", String(64), ForeignKey("readers.id"), nullable=False),
    Column("signed", JSON, nullable=False),  # the SignedGrant as sent to cabinets
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("suspended", Boolean, nullable=False, default=False),
    Index("ix_grants_reader", "reader_id", "issued_at"),
)

#: Deny-list changes, one row per change; a cabinet asks for everything after its version.
deny_list = Table(
    "deny_list", metadata,
    # INTEGER on SQLite: only "INTEGER PRIMARY KEY" autoincrements there (a BIGINT key would
    # stay NULL → NOT NULL error); sqlite_autoincrement: a version is never reused
    Column("version", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("reader_id", String(64), nullable=False),
    Column("denied", Boolean, nullable=False),
    Column("reason", String(64), nullable=False, default=""),
    Column("at", UtcDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

#: The staff exceptions queue: what the engine could not resolve alone, with its evidence.
exceptions = Table(
    "exceptions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(48), nullable=False),
    Column("item_id", String(64), nullable=True),
    Column("cabinet_id", String(64), nullable=True),
    Column("reader_id", String(64), nullable=True),
    Column("evidence", JSON, nullable=False),
    Column("actions", JSON, nullable=False),  # resolution actions offered
    Column("status", String(16), nullable=False, default="open"),  # open | resolved
    Column("resolution", String(48), nullable=True),
    Column("resolved_by", Integer, ForeignKey("staff.id"), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("resolved_at", UtcDateTime(), nullable=True),
    UniqueConstraint("kind", "item_id", "cabinet_id", "created_at"),
)

#: Who did what: every staff action and every resolution.
audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),  # staff username or "cabinet:<id>" / "engine"
    Column("action", String(64), nullable=False),
    Column("target", String(128), nullable=False, default=""),
    Column("detail", JSON, nullable=False),
)



# ----------------------------------------------------------------------------- revision 0003

#: Holds (预约): a reader wants ``item_id`` at ``pickup_cabinet_id``. ``waiting``: the item is
#: not free yet; ``assigned``: the item is reserved and on a restock list to be loaded;
#: ``ready``: it is in the pickup cabinet (the cabinet gets it as a HoldInfo); then
#: ``collected``, ``cancelled`` or ``expired`` (an uncollected hold goes back).
holds = Table(
    "holds", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reader_id", String(64), ForeignKey("readers.id"), nullable=False),
    Column("item_id", String(64), ForeignKey("items.id"), nullable=False),
    Column("pickup_cabinet_id", String(64), ForeignKey("cabinets.id"), nullable=False),
    Column("status", String(16), nullable=False, default="waiting"),
    Column("placed_at", UtcDateTime(), nullable=False),
    Column("assigned_at", UtcDateTime(), nullable=True),
    Column("ready_at", UtcDateTime(), nullable=True),
    Column("expires_at", UtcDateTime(), nullable=True),  # pickup deadline once ready
    Column("closed_at", UtcDateTime(), nullable=True),
    Index("ix_holds_item_status", "item_id", "status"),
    Index("ix_holds_cabinet_status", "pickup_cabinet_id", "status"),
    Index("ix_holds_reader", "reader_id"),
)

#: The restock list: what staff of the cabinet's servicing branch load into (``load``) or take
#: out of (``unload``) a cabinet, and why (``hold``, ``transit_home``, ``rotation_in``,
#: ``rotation_out``, ``misplaced``). A restock manifest from the cabinet closes tasks.
restock_tasks = Table(
    "restock_tasks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cabinet_id", String(64), ForeignKey("cabinets.id"), nullable=False),
    Column("item_id", String(64), nullable=False),
    Column("action", String(8), nullable=False),  # load | unload
    Column("reason", String(16), nullable=False),
    Column("ref", String(64), nullable=False, default=""),  # e.g. "hold:12", "transit:3"
    Column("status", String(12), nullable=False, default="open"),  # open | done | cancelled
    Column("created_at", UtcDateTime(), nullable=False),
    Column("closed_at", UtcDateTime(), nullable=True),
    Index("ix_restock_tasks_cabinet_status", "cabinet_id", "status"),
    Index("ix_restock_tasks_item", "item_id", "status"),
)

#: Cross-branch returns (通借通还) going home: ``waiting_pickup`` in the cabinet it was returned
#: to, ``in_transit`` once staff took it out, ``received`` at its home branch.
transits = Table(
    "transits", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", String(64), nullable=False),
    Column("from_cabinet_id", String(64), ForeignKey("cabinets.id"), nullable=False),
    Column("to_branch_id", String(64), ForeignKey("branches.id"), nullable=True),
    Column("to_library", String(32), nullable=False, default=""),
    Column("status", String(16), nullable=False, default="waiting_pickup"),
    Column("return_uuid", String(36), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("picked_up_at", UtcDateTime(), nullable=True),
    Column("received_at", UtcDateTime(), nullable=True),
    Index("ix_transits_item_status", "item_id", "status"),
)

#: The last inventory a cabinet reported per door: ``items`` is ``[{item_id, owner_library}]``.
door_snapshots = Table(
    "door_snapshots", metadata,
    Column("cabinet_id", String(64), ForeignKey("cabinets.id"), primary_key=True),
    Column("door", Integer, primary_key=True),
    Column("taken_at", UtcDateTime(), nullable=False),
    Column("items", JSON, nullable=False),
    Column("unreadable", Integer, nullable=False, default=0),
    Column("received_at", UtcDateTime(), nullable=False),
)

#: Purchase recommendations (荐购): need → review → ordered → shelved (or rejected).
#: ``history`` is ``[{status, at, by, note}]``, shown to the reader.
recommendations = Table(
    "recommendations", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reader_id", String(64), ForeignKey("readers.id"), nullable=False),
    Column("isbn", String(17), nullable=True),
    Column("title", String(300), nullable=False, default=""),
    Column("note", String(500), nullable=False, default=""),
    Column("status", String(12), nullable=False, default="need"),
    Column("item_id", String(64), nullable=True),  # the copy once shelved
    Column("history", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_recommendations_reader", "reader_id"),
)

#: Satisfaction ratings (满意率) after a transaction: from a cabinet's ``rating`` event
#: (``event_uuid`` set, exactly once) or the reader's phone.
ratings = Table(
    "ratings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_uuid", String(36), nullable=True, unique=True),
    Column("reader_id", String(64), nullable=True),
    Column("cabinet_id", String(64), nullable=True),
    Column("session", String(64), nullable=True),
    Column("score", Integer, nullable=False),  # 1..5
    Column("comment", String(500), nullable=False, default=""),
    Column("at", UtcDateTime(), nullable=False),
)

#: Notifications to readers ("hold ready", "due soon"), an outbox the pluggable sender drains;
#: (kind, reader, ref) is unique so the same notice is never queued twice.
notifications = Table(
    "notifications", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reader_id", String(64), ForeignKey("readers.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # hold_ready | due_soon
    Column("ref", String(64), nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
    Column("sender", String(32), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", String(300), nullable=True),
    UniqueConstraint("kind", "reader_id", "ref"),
    Index("ix_notifications_pending", "sent_at"),
)

#: A cabinet's collection profile (rotation): themes as 中图法 class letters with a share,
#: e.g. ``{"K": 0.3, "I": 0.4}``; ``stale_days``: not borrowed for this long → take out.
collection_profiles = Table(
    "collection_profiles", metadata,
    Column("cabinet_id", String(64), ForeignKey("cabinets.id"), primary_key=True),
    Column("themes", JSON, nullable=False),
    Column("per_door", Integer, nullable=False, default=10),
    Column("stale_days", Integer, nullable=False, default=60),
    Column("updated_at", UtcDateTime(), nullable=False),
)


# ----------------------------------------------------------------------------- revision 0005

#: Circulation results to forward to the ILS over SIP2, exactly once (server.ils_outbox).
#: ``status``: ``pending`` (to send), ``sent`` (written to the ILS, answer not yet recorded:
#: after a crash or a lost answer it is *uncertain* and resolved by asking the ILS before any
#: retry), ``confirmed``, ``rejected`` (an ILS refusal: a staff exception with its message).
#: ``source`` identifies the result (an event uuid, a renewal's audit id) with ``kind``.
ils_outbox = Table(
    "ils_outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(12), nullable=False),  # checkout | checkin | renew
    Column("source", String(64), nullable=False),
    Column("item_id", String(64), nullable=False),
    Column("reader_id", String(64), nullable=True),
    Column("cabinet_id", String(64), nullable=True),
    Column("transaction_at", UtcDateTime(), nullable=False),  # the original time
    Column("due", String(10), nullable=True),  # checkout / renew: the due date the reader has
    # renew: the due date before it, so a lost answer is judged by "did the date move"
    # even against an ILS that computes its own renewal date
    Column("previous_due", String(10), nullable=True),
    Column("offline", Boolean, nullable=False, default=False),  # → no-block = Y
    Column("status", String(12), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("resolved_by", String(24), nullable=True),  # answer | item_information | staff
    Column("ils_message", String(300), nullable=True),  # the ILS's screen message (AF)
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("kind", "source"),
    Index("ix_ils_outbox_status", "status", "id"),
    Index("ix_ils_outbox_item", "item_id", "id"),
)

# ----------------------------------------------------------------------------- revision 0007

#: The latest status each cabinet reported with a batch (``syncproto.messages.CabinetStatus``
#: as JSON in ``status``): the fleet overview reads it. One row per cabinet, replaced.
cabinet_status = Table(
    "cabinet_status", metadata,
    Column("cabinet_id", String(64), ForeignKey("cabinets.id"), primary_key=True),
    Column("reported_at", UtcDateTime(), nullable=False),  # the cabinet's clock
    Column("received_at", UtcDateTime(), nullable=False),  # the server's clock
    Column("kiosk_version", String(64), nullable=False, default=""),
    Column("status", JSON, nullable=False),
)

#: Remote commands staff queue for a cabinet (server.fleet_status): ``queued`` → ``sent``
#: (first delivered in a sync reply) → ``done`` | ``failed`` (the cabinet's result), or
#: ``expired`` (not delivered, or no result, before ``expires_at``).
cabinet_commands = Table(
    "cabinet_commands", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cabinet_id", String(64), ForeignKey("cabinets.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("args", JSON, nullable=False),
    Column("status", String(12), nullable=False, default="queued"),
    Column("actor", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("result", JSON, nullable=True),
    Index("ix_cabinet_commands_cabinet_id_status", "cabinet_id", "status"),
)
