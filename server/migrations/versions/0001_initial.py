"""The first schema of the central service: the tables of server/schema.py as of issue [4/6].

Revision ID: 0001_initial
Revises: (none)

Written out table by table on purpose (not ``metadata.create_all``): a revision is a frozen
record of one step and must still create the same tables after ``server/schema.py`` has moved
on. ``tests/server/test_storage.py`` checks that head == ``schema.metadata`` on SQLite and
PostgreSQL.

Notes: times are ``timestamptz`` on PostgreSQL and UTC text on SQLite (``schema.UtcDateTime``
does the conversion; the column type is plain ``DateTime(timezone=True)``). ``deny_list.version``
is INTEGER on SQLite because only ``INTEGER PRIMARY KEY`` autoincrements there, and
AUTOINCREMENT so a version number is never reused.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "libraries",
        sa.Column("isil", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("isil", name="pk_libraries"),
    )
    op.create_table(
        "branches",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("library_isil", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("floating", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_branches"),
        sa.ForeignKeyConstraint(["library_isil"], ["libraries.isil"],
                                name="fk_branches_library_isil_libraries"),
        sa.ForeignKeyConstraint(["parent_id"], ["branches.id"], name="fk_branches_parent_id_branches"),
    )
    op.create_table(
        "cabinets",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("branch_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("registered_at", _time(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("applied_through", sa.BigInteger(), nullable=False),
        sa.Column("last_sync_at", _time(), nullable=True),
        sa.Column("clock_offset_s", sa.Float(), nullable=True),
        sa.Column("deny_version_sent", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cabinets"),
        sa.ForeignKeyConstraint(["branch_id"], ["branches.id"], name="fk_cabinets_branch_id_branches"),
    )
    op.create_table(
        "events",
        sa.Column("cabinet_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", _time(), nullable=False),
        sa.Column("at_corrected", _time(), nullable=False),
        sa.Column("mono", sa.Float(), nullable=False),
        sa.Column("boot_id", sa.String(64), nullable=False),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=True),
        sa.Column("received_at", _time(), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("cabinet_id", "seq", name="pk_events"),
        sa.ForeignKeyConstraint(["cabinet_id"], ["cabinets.id"], name="fk_events_cabinet_id_cabinets"),
        sa.UniqueConstraint("uuid", name="uq_events_uuid"),
    )
    op.create_index("ix_events_item_at", "events", ["item_id", "at_corrected"])
    op.create_index("ix_events_pending", "events", ["cabinet_id", "applied", "seq"])
    op.create_table(
        "cabinet_nonces",
        sa.Column("cabinet_id", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("seen_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("cabinet_id", "nonce", name="pk_cabinet_nonces"),
    )
    op.create_table(
        "staff",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("branch_id", sa.String(64), nullable=True),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_staff"),
        sa.ForeignKeyConstraint(["branch_id"], ["branches.id"], name="fk_staff_branch_id_branches"),
        sa.UniqueConstraint("username", name="uq_staff_username"),
    )
    op.create_table(
        "staff_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_staff_tokens"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name="fk_staff_tokens_staff_id_staff"),
    )
    op.create_table(
        "readers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("card_hash", sa.String(64), nullable=True),
        sa.Column("id_number_hash", sa.String(64), nullable=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("home_branch_id", sa.String(64), nullable=True),
        sa.Column("registered_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_readers"),
        sa.ForeignKeyConstraint(["home_branch_id"], ["branches.id"],
                                name="fk_readers_home_branch_id_branches"),
        sa.UniqueConstraint("card_hash", name="uq_readers_card_hash"),
        sa.UniqueConstraint("id_number_hash", name="uq_readers_id_number_hash"),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("category", sa.String(8), nullable=False),
        sa.Column("owner_library", sa.String(32), nullable=False),
        sa.Column("home_branch_id", sa.String(64), nullable=True),
        sa.Column("reference_only", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("location_cabinet_id", sa.String(64), nullable=True),
        sa.Column("borrower_id", sa.String(64), nullable=True),
        sa.Column("due", sa.String(10), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
        sa.ForeignKeyConstraint(["home_branch_id"], ["branches.id"],
                                name="fk_items_home_branch_id_branches"),
        sa.ForeignKeyConstraint(["location_cabinet_id"], ["cabinets.id"],
                                name="fk_items_location_cabinet_id_cabinets"),
        sa.ForeignKeyConstraint(["borrower_id"], ["readers.id"], name="fk_items_borrower_id_readers"),
    )
    op.create_table(
        "server_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("private_key", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("retired_at", _time(), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_server_keys"),
    )
    op.create_table(
        "grants",
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("reader_id", sa.String(64), nullable=False),
        sa.Column("signed", sa.JSON(), nullable=False),
        sa.Column("issued_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("grant_id", name="pk_grants"),
        sa.ForeignKeyConstraint(["reader_id"], ["readers.id"], name="fk_grants_reader_id_readers"),
    )
    op.create_index("ix_grants_reader", "grants", ["reader_id", "issued_at"])
    op.create_table(
        "deny_list",
        sa.Column("version", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("reader_id", sa.String(64), nullable=False),
        sa.Column("denied", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_deny_list"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "exceptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=True),
        sa.Column("cabinet_id", sa.String(64), nullable=True),
        sa.Column("reader_id", sa.String(64), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(48), nullable=True),
        sa.Column("resolved_by", sa.Integer(), nullable=True),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("resolved_at", _time(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_exceptions"),
        sa.ForeignKeyConstraint(["resolved_by"], ["staff.id"], name="fk_exceptions_resolved_by_staff"),
        sa.UniqueConstraint("kind", "item_id", "cabinet_id", "created_at",
                            name="uq_exceptions_kind_item_id_cabinet_id_created_at"),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", _time(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit"),
    )


def downgrade() -> None:
    for table in ("audit", "exceptions", "deny_list", "grants", "server_keys", "items", "readers",
                  "staff_tokens", "staff", "cabinet_nonces", "events", "cabinets", "branches",
                  "libraries"):
        op.drop_table(table)  # indexes go with their table
