"""``events.grant_id`` with an index: a grant's offline loans without a scan.

Revision ID: 0004_event_grant
Revises: 0003_services

Why: the overdraft check ran once per offline loan and read every offline loan of the fleet
since the grant's issue to find the grant's own — quadratic in a backlog (1,000 cabinets
back from a week offline). Existing rows get the column filled from their payload.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_event_grant"
down_revision: str | Sequence[str] | None = "0003_services"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("events", sa.Column("grant_id", sa.String(64), nullable=True))
    op.create_index("ix_events_grant", "events", ["grant_id"])
    events = sa.table("events", sa.column("cabinet_id", sa.String), sa.column("seq", sa.BigInteger),
                      sa.column("kind", sa.String), sa.column("payload", sa.JSON),
                      sa.column("grant_id", sa.String))
    conn = op.get_bind()
    rows = conn.execute(sa.select(events.c.cabinet_id, events.c.seq, events.c.payload)
                        .where(events.c.kind == "loan")).all()
    for row in rows:
        grant = (row.payload or {}).get("grant_id")
        if isinstance(grant, str) and grant:
            conn.execute(sa.update(events).where(events.c.cabinet_id == row.cabinet_id,
                                                 events.c.seq == row.seq)
                         .values(grant_id=grant[:64]))


def downgrade() -> None:
    op.drop_index("ix_events_grant", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("grant_id")
