"""1,000 jobs submitted at once to two worker processes (issue 6, "Load").

Every job is done exactly once, none lost, none duplicated, and the memory of each worker stays
flat. Throughput and latency percentiles are printed (``-s``); no time is asserted.
``KMOP_LOAD_JOBS`` changes the number of jobs for a quicker local run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.load import run_load

JOBS = int(os.environ.get("KMOP_LOAD_JOBS", "1000"))
FLAT = 0.25  # worker RSS may not grow more than this between the 2nd and the last quarter


pytestmark = [pytest.mark.slow, pytest.mark.load]


def test_thousand_jobs_done_exactly_once_with_flat_worker_memory(s3_endpoint: str, redis_url: str,
                                                                 tmp_path: Path) -> None:
    report = run_load(JOBS, processes=2, s3_endpoint=s3_endpoint, redis_url=redis_url, work_dir=tmp_path,
                      threads=2)  # as `kmop worker`
    print("\n" + report.text())
    assert report.missing == 0
    assert report.duplicates == 0
    assert report.objects == JOBS and report.events == JOBS
    assert report.worker_memory, "no worker process was sampled"
    for name, memory in report.worker_memory.items():
        assert memory["growth"] <= FLAT, f"{name} grew {memory['growth']:.0%} over the run"
