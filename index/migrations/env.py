"""Alembic's environment for the index: always run from ``index.migrate`` on a given connection."""

from __future__ import annotations

from alembic import context

from index.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
