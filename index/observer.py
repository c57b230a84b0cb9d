"""Keeping the index current: each ledger append is projected right after it.

``attach(ledger, url)`` registers an observer on the ledger (``Ledger.observe``); ``workflow``
knows nothing of the index. A projection that fails (the database down, a lost connection) is
logged and counted (``kmop_index_projection_failures``) and never fails the append or the job:
``kmop index catch-up`` projects what was missed, and so does the dossier's next event, which
finds its dossier behind and reads the ledger for the events it lacks.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from workflow.ledger import Event, Ledger

from .database import connect, migrate
from .projection import catch_up_dossier, project

logger = logging.getLogger("kmop.index")


class IndexObserver:
    def __init__(self, url: str, ledger: Ledger) -> None:
        self.url = url
        self.ledger = ledger
        self._migrated = False
        self._lock = threading.Lock()

    def engine(self) -> Engine:
        """The index's engine, its schema brought up to date on first use (the database may be
        down when the process starts; the first projection after it is up migrates)."""
        if not self._migrated:
            with self._lock:
                if not self._migrated:
                    migrate(self.url)
                    self._migrated = True
        return connect(self.url)

    def __call__(self, event: Event) -> None:
        from kmop.observability import INDEX_PROJECTION_FAILURES, INDEX_PROJECTIONS

        try:
            engine = self.engine()
            gap = project(engine, event)
            if gap:
                catch_up_dossier(engine, self.ledger, event.dossier_id)
            INDEX_PROJECTIONS.inc()
        except Exception as exc:  # noqa: BLE001 - the index must never fail the pipeline
            INDEX_PROJECTION_FAILURES.inc()
            logger.warning("index: event %d of dossier %s not projected (%s: %s); "
                           "kmop index catch-up will project it", event.sequence, event.dossier_id,
                           type(exc).__name__, exc)


def attach(ledger: Ledger, url: str | None) -> IndexObserver | None:
    """Project every append of ``ledger`` into the index at ``url`` (none when ``url`` is empty)."""
    if not url:
        return None
    observer = IndexObserver(url, ledger)
    ledger.observe(observer)
    return observer
