"""The dossier index: a read model of the dossier ledgers in a SQL database.

The ledgers in object storage stay the source of truth; the index holds what can be derived
from them (``index.projection``) so that questions across dossiers (``index.queries``) are
answered without reading every ledger. It can be dropped and rebuilt at any time. See
docs/index.md.
"""

from __future__ import annotations

from .database import connect, migrate

__all__ = ["connect", "migrate"]
