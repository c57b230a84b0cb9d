"""Start a worker process's runtime (LibreOffice pool, signing keys, storage client) and
prepare its templates and signatures before it takes jobs.

Without it the first job of every process waits for LibreOffice to start (about 5 s), and a
process still starting has already fetched messages that a warm process could have run.
``before_worker_boot`` runs before the worker's consumers exist, so a process fetches nothing
until its converters answer. A runtime that cannot be built is logged, not fatal: each job
then tries again and fails visibly through retries and dead letters.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time

import dramatiq
from dramatiq.middleware import Middleware

from conversion.samples import one_line_docx
from kmop.errors import KmopError
from signing.policy import all_policies
from templates.catalog import get_kind, kind_names
from templates.render import prepare_template
from templates.validation import prepare_validation

from .runtime import Runtime, get_runtime

logger = logging.getLogger("kmop.worker")

READY_MESSAGE = "worker process ready"


def _prepare_kinds() -> None:
    """Every kind's schema compiled and template read before its first job (about 1 s in all)."""
    try:
        for kind in map(get_kind, kind_names()):
            prepare_validation(kind)
            if not kind.countersigns:
                prepare_template(kind)
    except Exception:  # noqa: BLE001 - a kind that cannot be prepared fails its own jobs, visibly
        logger.exception("worker process %d could not prepare every document kind", os.getpid())


def _prepare_signatures(runtime: Runtime) -> None:
    """One signature of each way the policies sign, on a page LibreOffice made, before the first
    job (``DocumentSigner.prepare``). A failure (a timestamp authority not answering, say) ends
    the preparation, logged: the ways not prepared are paid for by the first jobs needing them,
    which sign or fail on their own."""
    if runtime.converter is None:
        return
    start = time.monotonic()
    try:
        made = runtime.pipeline.signer.prepare(runtime.converter.convert(one_line_docx("kmop-docs")), all_policies())
    except KmopError as exc:
        logger.warning("worker process %d could not prepare its signatures: %s", os.getpid(), exc)
        return
    except Exception:  # noqa: BLE001 - the first jobs sign as they would have without it
        logger.exception("worker process %d could not prepare its signatures", os.getpid())
        return
    logger.info("worker process %d: %d way(s) of signing prepared in %.2f s", os.getpid(), made,
                time.monotonic() - start)


class WarmRuntime(Middleware):
    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        start = time.monotonic()
        preparing = threading.Thread(target=_prepare_kinds, name="prepare-kinds")
        preparing.start()  # while LibreOffice starts
        try:
            runtime = get_runtime()
            identities = runtime.pipeline.signer.identities
            for role in identities.roles():  # keys opened now: a wrong passphrase shows at start
                identities.signer_for(role)
        except KmopError as exc:
            logger.error("worker process %d could not start its runtime: %s; jobs will try again",
                         os.getpid(), exc)
            return
        except Exception:  # noqa: BLE001 - a worker that cannot warm up still runs (and fails) jobs
            logger.exception("worker process %d could not start its runtime; jobs will try again", os.getpid())
            return
        _prepare_signatures(runtime)
        preparing.join()
        # Whatever start-up made and still holds stays for the process's life: frozen, later full
        # collections skip it (the first one came during an early job and took 60-90 ms).
        gc.collect()
        gc.freeze()
        size = runtime.converter.size if runtime.converter is not None else 0
        logger.info("%s: pid %d, %d LibreOffice instance(s), started in %.1f s",
                    READY_MESSAGE, os.getpid(), size, time.monotonic() - start)
