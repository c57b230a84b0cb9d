"""Each event's idempotency key, so that whether a job is recorded is a look-up in the index.

Events projected before it have no key: the index is emptied, and ``kmop index catch-up``
(or ``rebuild``) projects every ledger again.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("index_deadlines", "index_dossiers", "index_events"):
        op.execute(f"DELETE FROM {table}")
    with op.batch_alter_table("index_events") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(256)))
    op.create_index("ix_events_key", "index_events", ["dossier_id", "idempotency_key"])


def downgrade() -> None:
    op.drop_index("ix_events_key", "index_events")
    with op.batch_alter_table("index_events") as batch:
        batch.drop_column("idempotency_key")
