"""The index's first schema: events, dossiers, deadlines, with an index for each query.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "index_events",
        sa.Column("dossier_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64)),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(32), nullable=False),
        sa.Column("document_key", sa.String(256)),
        sa.Column("document_sha256", sa.String(64)),
        sa.Column("provider_name", sa.String(256)),
        sa.Column("enterprise_number", sa.String(32)),
        sa.Column("audit_firm", sa.String(256)),
        sa.Column("state", sa.Text),
    )
    op.create_table(
        "index_dossiers",
        sa.Column("dossier_id", sa.String(64), primary_key=True),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("cycle", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16)),
        sa.Column("next_role", sa.String(16)),
        sa.Column("audit_firm", sa.String(256)),
        sa.Column("enterprise_number", sa.String(32)),
        sa.Column("provider_name", sa.String(256)),
        sa.Column("provider_name_folded", sa.String(256).with_variant(sa.String(256, collation="C"), "postgresql")),
        sa.Column("registration_number", sa.String(32)),
        sa.Column("valid_until", sa.String(10)),
        sa.Column("decision_date", sa.String(10)),
        sa.Column("opened_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "index_deadlines",
        sa.Column("dossier_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("due", sa.String(10), nullable=False),
        sa.Column("opens", sa.String(10)),
        sa.Column("opens_effective", sa.String(10), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
    )
    op.create_index("ix_events_at", "index_events", ["at", "dossier_id", "seq"])
    op.create_index("ix_dossiers_phase", "index_dossiers", ["phase", "dossier_id"])
    op.create_index("ix_dossiers_outcome", "index_dossiers", ["outcome", "dossier_id"])
    op.create_index("ix_dossiers_next_role", "index_dossiers", ["next_role", "dossier_id"])
    op.create_index("ix_dossiers_firm_role", "index_dossiers", ["audit_firm", "next_role", "dossier_id"])
    op.create_index("ix_dossiers_enterprise", "index_dossiers", ["enterprise_number", "dossier_id"])
    op.create_index("ix_dossiers_registration", "index_dossiers", ["registration_number"])
    op.create_index("ix_dossiers_name", "index_dossiers", ["provider_name_folded", "dossier_id"])
    op.create_index("ix_dossiers_valid_until", "index_dossiers", ["valid_until", "dossier_id"])
    op.create_index("ix_dossiers_opened", "index_dossiers", ["opened_at"])
    op.create_index("ix_deadlines_due", "index_deadlines", ["due", "dossier_id", "name"])
    op.create_index("ix_deadlines_opens", "index_deadlines", ["opens_effective", "due", "dossier_id", "name"])


def downgrade() -> None:
    op.drop_table("index_deadlines")
    op.drop_table("index_dossiers")
    op.drop_table("index_events")
