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
import time

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from workflow.ledger import Event, Ledger

from .database import connect, migrate
from .projection import catch_up_dossier, project

logger = logging.getLogger("kmop.index")

#: Seconds the observer leaves the database alone after it could not be reached: each append
#: would otherwise wait for a connection attempt (up to ``database.CONNECT_TIMEOUT``) while it
#: is down. What is not projected meanwhile is caught up later, like any missed projection.
RETRY_AFTER = 30.0


class IndexObserver:
    def __init__(self, url: str, ledger: Ledger) -> None:
        self.url = url
        self.ledger = ledger
        self._migrated = False
        self._lock = threading.Lock()
        self._unreachable_until = 0.0

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

        if time.monotonic() < self._unreachable_until:
            INDEX_PROJECTION_FAILURES.inc()
            return
        try:
            engine = self.engine()
            gap = project(engine, event)
            if gap:
                catch_up_dossier(engine, self.ledger, event.dossier_id)
            INDEX_PROJECTIONS.inc()
        except OperationalError as exc:  # the database down or unreachable
            self._unreachable_until = time.monotonic() + RETRY_AFTER
            INDEX_PROJECTION_FAILURES.inc()
            logger.warning("index: database unreachable (%s); event %d of dossier %s and those of the next "
                           "%g s are left to kmop index catch-up", exc.orig or exc, event.sequence,
                           event.dossier_id, RETRY_AFTER)
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
