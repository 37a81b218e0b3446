"""``ils_outbox.previous_due``: a lost renewal answer judged by whether the due date moved.

Revision ID: 0006_renew_previous_due
Revises: 0005_ils_outbox
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_renew_previous_due"
down_revision: str | Sequence[str] | None = "0005_ils_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ils_outbox", sa.Column("previous_due", sa.String(10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ils_outbox") as batch:
        batch.drop_column("previous_due")
