"""``verify_pdf`` as a worker process runs it: plain arguments in (the PDF, the trust roots as
DER, the limits), the report as a dict out, never an exception; an alarm stops a verification
that overruns its time limit (``verify_pdf`` checks the limit itself only between signatures,
and one signature can sit in a long computation)."""

from __future__ import annotations

import logging
import signal
from typing import Any

from asn1crypto import x509

from .limits import VerificationLimits
from .report import FileReport

logger = logging.getLogger("kmop.verify")

GRACE_SECONDS = 10
"""How long past its time limit a verification may run before the alarm stops it."""


class _OutOfTime(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _OutOfTime


def verify_in_worker(data: bytes, roots_der: list[bytes], name: str, limits: dict[str, int]) -> dict[str, Any]:
    """The report of ``data`` as ``FileReport.to_dict`` gives it. Runs in a process's main
    thread (the alarm is a signal)."""
    from .verify import verify_pdf

    bounds = VerificationLimits(**limits)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, bounds.seconds + GRACE_SECONDS)
    try:
        roots = [x509.Certificate.load(der) for der in roots_der]
        report = verify_pdf(data, roots, name=name, limits=bounds)
    except _OutOfTime:
        report = FileReport(name=name, unchecked=f"verification did not finish within {bounds.seconds} s "
                                                 "(KMOP_VERIFY_SECONDS): no signature was checked")
    except Exception as exc:  # noqa: BLE001 - RecursionError, AttributeError from pyHanko on hostile files
        logger.warning("verify_pdf raised on %s: %s: %s", name, type(exc).__name__, exc)
        report = FileReport(name=name, problems=[f"the file cannot be verified: {type(exc).__name__} while reading it"])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return report.to_dict()
