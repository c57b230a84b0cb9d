"""Worker threads run under SCHED_BATCH so that they do not preempt LibreOffice, which keeps the
normal policy (workers/scheduling.py, conversion.instance._under_normal_scheduling)."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from conversion import ConverterPool
from conversion.memory import process_tree
from tests.processes import Worker, worker_env
from tests.test_conversion import make_docx


def _policies(pid: int) -> set[int]:
    """The scheduling policies of every thread of ``pid``."""
    return {os.sched_getscheduler(int(task)) for task in os.listdir(f"/proc/{pid}/task")}


def _process_group(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[2])


@pytest.mark.parametrize(("setting", "policy"), [("batch", os.SCHED_BATCH), ("normal", os.SCHED_OTHER)])
def test_worker_threads_yield_to_libreoffice_which_keeps_the_normal_policy(
    setting: str, policy: int, s3_endpoint: str, s3_store, pki_dir: Path, namespace: str, tmp_path: Path
) -> None:
    env = worker_env(redis_url="redis://127.0.0.1:6379/0", namespace=namespace, s3_endpoint=s3_endpoint,
                     bucket=s3_store.bucket, pki_dir=pki_dir, KMOP_WORKER_SCHEDULING=setting)
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        worker_pid = int(re.search(r"worker process ready: pid (\d+)", worker.log()).group(1))
        tree = process_tree(worker_pid)
        own = [pid for pid in tree if _process_group(pid) == _process_group(worker_pid)]
        converters = [pid for pid in tree if pid not in own]

        assert len(os.listdir(f"/proc/{worker_pid}/task")) > 3  # consumer, worker threads, wake-ups
        assert _policies(worker_pid) == {policy}
        assert any("soffice.bin" in Path(f"/proc/{pid}/cmdline").read_text() for pid in converters)
        for pid in converters:
            assert _policies(pid) == {os.SCHED_OTHER}, Path(f"/proc/{pid}/cmdline").read_text()
    finally:
        worker.stop(timeout=60)


def test_libreoffice_started_from_a_batch_thread_runs_under_the_normal_policy() -> None:
    """What a worker thread does when it recycles an instance."""
    groups: list[int] = []
    failures: list[BaseException] = []

    def start_pool() -> None:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # this thread only
        try:
            with ConverterPool(size=1) as pool:
                pool.convert(make_docx("from a batch thread"))
                groups.extend(pool.process_group_ids())
                for pid in process_tree(groups[0]):
                    assert _policies(pid) == {os.SCHED_OTHER}, Path(f"/proc/{pid}/cmdline").read_text()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    thread = threading.Thread(target=start_pool)
    thread.start()
    thread.join(120)

    assert failures == [] and len(groups) == 1
