"""The ILS outbox: circulation results to forward over SIP2, exactly once.

Revision ID: 0005_ils_outbox
Revises: 0004_event_grant
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_ils_outbox"
down_revision: str | Sequence[str] | None = "0004_event_grant"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ils_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("reader_id", sa.String(64), nullable=True),
        sa.Column("cabinet_id", sa.String(64), nullable=True),
        sa.Column("transaction_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due", sa.String(10), nullable=True),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("resolved_by", sa.String(24), nullable=True),
        sa.Column("ils_message", sa.String(300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ils_outbox"),
        sa.UniqueConstraint("kind", "source", name="uq_ils_outbox_kind_source"),
    )
    op.create_index("ix_ils_outbox_status", "ils_outbox", ["status", "id"])
    op.create_index("ix_ils_outbox_item", "ils_outbox", ["item_id", "id"])


def downgrade() -> None:
    op.drop_table("ils_outbox")
