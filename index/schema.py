"""The index's tables: one schema for PostgreSQL and SQLite (SQLAlchemy Core).

Everything here is derived from the dossier ledgers (``workflow.ledger``) and can be dropped and
rebuilt from them. Dates are kept as ISO strings (``YYYY-MM-DD``), which sort as dates on both
databases and compare with the strings the ledger carries.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()
FOLDED = String(256).with_variant(String(256, collation="C"), "postgresql")

#: One row per ledger event: what happened, who did it, the document it stored.
events = Table(
    "index_events", metadata,
    Column("dossier_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("kind", String(64), nullable=False),  # the event's type
    Column("action", String(64)),
    Column("at", String(40), nullable=False),
    Column("actor", String(32), nullable=False),
    Column("document_key", String(256)),
    Column("document_sha256", String(64)),
    Column("provider_name", String(256)),
    Column("enterprise_number", String(32)),
    Column("audit_firm", String(256)),
    Column("state", Text),  # the state the event leads to (JSON), from which the dossier row follows
    Column("idempotency_key", String(256)),  # the job (or fact) it records: whether a job is done
)

#: One row per dossier: its state as of its last projected event.
dossiers = Table(
    "index_dossiers", metadata,
    Column("dossier_id", String(64), primary_key=True),
    Column("phase", String(32), nullable=False),
    Column("cycle", String(16), nullable=False),
    Column("outcome", String(16)),
    Column("next_role", String(16)),  # who acts next; None when the dossier is closed
    Column("audit_firm", String(256)),
    Column("enterprise_number", String(32)),
    Column("provider_name", String(256)),
    # lower case, for a case-blind prefix search; compared by code point on PostgreSQL too (a
    # prefix is a range of strings only in a code-point order)
    Column("provider_name_folded", FOLDED),
    Column("registration_number", String(32)),
    Column("valid_until", String(10)),
    Column("decision_date", String(10)),
    Column("opened_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("last_seq", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

#: The open deadlines of each dossier's current state.
deadlines = Table(
    "index_deadlines", metadata,
    Column("dossier_id", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("due", String(10), nullable=False),
    Column("opens", String(10)),  # as the ledger says; None: none given
    Column("opens_effective", String(10), nullable=False),  # ``opens`` or 30 days before ``due``
    Column("description", Text, nullable=False, default=""),
)

INDEXES = (
    Index("ix_events_at", events.c.at, events.c.dossier_id, events.c.seq),
    Index("ix_events_key", events.c.dossier_id, events.c.idempotency_key),
    Index("ix_dossiers_phase", dossiers.c.phase, dossiers.c.dossier_id),
    Index("ix_dossiers_outcome", dossiers.c.outcome, dossiers.c.dossier_id),
    Index("ix_dossiers_next_role", dossiers.c.next_role, dossiers.c.dossier_id),
    Index("ix_dossiers_firm_role", dossiers.c.audit_firm, dossiers.c.next_role, dossiers.c.dossier_id),
    Index("ix_dossiers_enterprise", dossiers.c.enterprise_number, dossiers.c.dossier_id),
    Index("ix_dossiers_registration", dossiers.c.registration_number),
    Index("ix_dossiers_name", dossiers.c.provider_name_folded, dossiers.c.dossier_id),
    Index("ix_dossiers_valid_until", dossiers.c.valid_until, dossiers.c.dossier_id),
    Index("ix_dossiers_opened", dossiers.c.opened_at),
    Index("ix_deadlines_due", deadlines.c.due, deadlines.c.dossier_id, deadlines.c.name),
    Index("ix_deadlines_opens", deadlines.c.opens_effective, deadlines.c.due, deadlines.c.dossier_id,
          deadlines.c.name),
)
