"""Holds, restock lists, transits, inventory snapshots, 荐购, ratings, notifications and
collection profiles; item, cabinet and branch columns the reports and rotation need.

Revision ID: 0003_services
Revises: 0002_credit

Why one revision for all of it: these tables arrive together with issue [4/6]'s second
slice and only make sense together (a hold puts a task on a restock list; a manifest closes
it). Columns are dropped through ``batch_alter_table`` so the downgrade runs on SQLite too.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_services"
down_revision: str | Sequence[str] | None = "0002_credit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = (
    "holds",
    "transits",
    "restock_tasks",
    "recommendations",
    "notifications",
    "door_snapshots",
    "collection_profiles",
    "ratings",
)


def upgrade() -> None:
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_uuid", sa.String(length=36), nullable=True),
        sa.Column("reader_id", sa.String(length=64), nullable=True),
        sa.Column("cabinet_id", sa.String(length=64), nullable=True),
        sa.Column("session", sa.String(length=64), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.String(length=500), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
        sa.UniqueConstraint("event_uuid", name=op.f("uq_ratings_event_uuid")),
    )
    op.create_table(
        "collection_profiles",
        sa.Column("cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("themes", sa.JSON(), nullable=False),
        sa.Column("per_door", sa.Integer(), nullable=False),
        sa.Column("stale_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cabinet_id"], ["cabinets.id"], name=op.f("fk_collection_profiles_cabinet_id_cabinets")
        ),
        sa.PrimaryKeyConstraint("cabinet_id", name=op.f("pk_collection_profiles")),
    )
    op.create_table(
        "door_snapshots",
        sa.Column("cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("door", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("unreadable", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cabinet_id"], ["cabinets.id"], name=op.f("fk_door_snapshots_cabinet_id_cabinets")
        ),
        sa.PrimaryKeyConstraint("cabinet_id", "door", name=op.f("pk_door_snapshots")),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reader_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sender", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["reader_id"], ["readers.id"], name=op.f("fk_notifications_reader_id_readers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("kind", "reader_id", "ref", name=op.f("uq_notifications_kind_reader_id_ref")),
    )
    op.create_index("ix_notifications_pending", "notifications", ["sent_at"], unique=False)
    op.create_table(
        "recommendations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reader_id", sa.String(length=64), nullable=False),
        sa.Column("isbn", sa.String(length=17), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=True),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["reader_id"], ["readers.id"], name=op.f("fk_recommendations_reader_id_readers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendations")),
    )
    op.create_index("ix_recommendations_reader", "recommendations", ["reader_id"], unique=False)
    op.create_table(
        "restock_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["cabinet_id"], ["cabinets.id"], name=op.f("fk_restock_tasks_cabinet_id_cabinets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restock_tasks")),
    )
    op.create_index(
        "ix_restock_tasks_cabinet_status", "restock_tasks", ["cabinet_id", "status"], unique=False
    )
    op.create_index("ix_restock_tasks_item", "restock_tasks", ["item_id", "status"], unique=False)
    op.create_table(
        "transits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("from_cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("to_branch_id", sa.String(length=64), nullable=True),
        sa.Column("to_library", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("return_uuid", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("picked_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["from_cabinet_id"], ["cabinets.id"], name=op.f("fk_transits_from_cabinet_id_cabinets")
        ),
        sa.ForeignKeyConstraint(
            ["to_branch_id"], ["branches.id"], name=op.f("fk_transits_to_branch_id_branches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transits")),
        sa.UniqueConstraint("return_uuid", name=op.f("uq_transits_return_uuid")),
    )
    op.create_index("ix_transits_item_status", "transits", ["item_id", "status"], unique=False)
    op.create_table(
        "holds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reader_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("pickup_cabinet_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_holds_item_id_items")),
        sa.ForeignKeyConstraint(
            ["pickup_cabinet_id"], ["cabinets.id"], name=op.f("fk_holds_pickup_cabinet_id_cabinets")
        ),
        sa.ForeignKeyConstraint(["reader_id"], ["readers.id"], name=op.f("fk_holds_reader_id_readers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
    )
    op.create_index("ix_holds_cabinet_status", "holds", ["pickup_cabinet_id", "status"], unique=False)
    op.create_index("ix_holds_item_status", "holds", ["item_id", "status"], unique=False)
    op.create_index("ix_holds_reader", "holds", ["reader_id"], unique=False)
    op.add_column("branches", sa.Column("population", sa.Integer(), nullable=True))
    op.add_column("cabinets", sa.Column("capacity", sa.Integer(), server_default="0", nullable=False))
    op.add_column("items", sa.Column("isbn", sa.String(length=17), nullable=True))
    op.add_column("items", sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("items", sa.Column("damaged", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("items", sa.Column("last_loan_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        op.drop_table(table)  # indexes go with their table
    with op.batch_alter_table("items") as batch:
        for column in ("last_loan_at", "damaged", "acquired_at", "isbn"):
            batch.drop_column(column)
    with op.batch_alter_table("cabinets") as batch:
        batch.drop_column("capacity")
    with op.batch_alter_table("branches") as batch:
        batch.drop_column("population")
