"""Credit (信用借阅): per-cabinet offline exposure cap, reader phone hash and credit score,
reader (phone) tokens.

Revision ID: 0002_credit
Revises: 0001_initial

Why a server default on ``cabinets.offline_exposure_cap``: cabinets registered before this
revision must get a cap (NOT NULL), and 20 is the kiosk's documented default
(docs/kiosk-contracts.md), so the fleet bound shown after the upgrade is the one in force.
Columns are dropped through ``batch_alter_table`` so the downgrade also runs on SQLite
versions without ``DROP COLUMN``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_credit"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("cabinets", sa.Column("offline_exposure_cap", sa.Integer(), nullable=False,
                                        server_default="20"))
    op.add_column("readers", sa.Column("phone_hash", sa.String(64), nullable=True))
    op.add_column("readers", sa.Column("credit_score", sa.Integer(), nullable=True))
    op.create_table(
        "reader_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("reader_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_reader_tokens"),
        sa.ForeignKeyConstraint(["reader_id"], ["readers.id"],
                                name="fk_reader_tokens_reader_id_readers"),
    )
    op.create_index("ix_reader_tokens_reader", "reader_tokens", ["reader_id"])


def downgrade() -> None:
    op.drop_table("reader_tokens")  # its index goes with it
    with op.batch_alter_table("readers") as batch:
        batch.drop_column("credit_score")
        batch.drop_column("phone_hash")
    with op.batch_alter_table("cabinets") as batch:
        batch.drop_column("offline_exposure_cap")
