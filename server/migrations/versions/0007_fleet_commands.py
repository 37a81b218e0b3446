"""Fleet status and remote commands: ``cabinet_status``, ``cabinet_commands``.

Revision ID: 0007_fleet_commands
Revises: 0006_renew_previous_due
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_fleet_commands"
down_revision: str | Sequence[str] | None = "0006_renew_previous_due"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cabinet_status",
        sa.Column("cabinet_id", sa.String(64), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kiosk_version", sa.String(64), nullable=False),
        sa.Column("status", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["cabinet_id"], ["cabinets.id"],
                                name="fk_cabinet_status_cabinet_id_cabinets"),
        sa.PrimaryKeyConstraint("cabinet_id", name="pk_cabinet_status"),
    )
    op.create_table(
        "cabinet_commands",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cabinet_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["cabinet_id"], ["cabinets.id"],
                                name="fk_cabinet_commands_cabinet_id_cabinets"),
        sa.PrimaryKeyConstraint("id", name="pk_cabinet_commands"),
    )
    op.create_index("ix_cabinet_commands_cabinet_id_status", "cabinet_commands",
                    ["cabinet_id", "status"])


def downgrade() -> None:
    op.drop_table("cabinet_commands")
    op.drop_table("cabinet_status")
