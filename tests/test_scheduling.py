"""Worker threads run under SCHED_BATCH so that they do not preempt LibreOffice, which keeps the
normal policy, as does a thread while it hands LibreOffice a document (workers/scheduling.py,
conversion/scheduling.py)."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest

from conversion import ConverterPool
from conversion.memory import process_tree
from conversion.scheduling import normal_policy
from testing.processes import Worker, worker_env
from tests.support.documents import make_docx

pytestmark = pytest.mark.slow  # starts workers and LibreOffice pools


def _policies(pid: int) -> set[int]:
    """The scheduling policies of every thread of ``pid``."""
    return {os.sched_getscheduler(int(task)) for task in os.listdir(f"/proc/{pid}/task")}


def _process_group(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[2])


@pytest.mark.parametrize(("setting", "policy"), [("batch", os.SCHED_BATCH), ("normal", os.SCHED_OTHER)])
def test_worker_threads_yield_to_libreoffice_which_keeps_the_normal_policy(
    setting: str, policy: int, s3_endpoint: str, s3_store, pki_dir: Path, redis_url: str, namespace: str,
    tmp_path: Path
) -> None:
    env = worker_env(redis_url=redis_url, namespace=namespace, s3_endpoint=s3_endpoint,
                     bucket=s3_store.bucket, pki_dir=pki_dir, KMOP_WORKER_SCHEDULING=setting)
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        worker_pid = int(re.search(r"worker process ready: pid (\d+)", worker.log()).group(1))
        tree = process_tree(worker_pid)
        # each LibreOffice instance is a process group led by unoserver (its watchdog, in a
        # group of its own, only sleeps and polls)
        instances = {group for group in map(_process_group, tree)
                     if "-m\0kmop_unoserver" in Path(f"/proc/{group}/cmdline").read_text()}
        converters = [pid for pid in tree if _process_group(pid) in instances]

        assert len(os.listdir(f"/proc/{worker_pid}/task")) > 3  # consumer, worker threads, wake-ups
        assert _policies(worker_pid) == {policy}
        assert any("soffice.bin" in Path(f"/proc/{pid}/cmdline").read_text() for pid in converters)
        for pid in converters:
            assert _policies(pid) == {os.SCHED_OTHER}, Path(f"/proc/{pid}/cmdline").read_text()
    finally:
        worker.stop(timeout=60)


def test_libreoffice_and_the_thread_handing_it_a_document_run_under_the_normal_policy() -> None:
    """A worker thread (SCHED_BATCH) starts a pool, as when it recycles an instance, and converts:
    LibreOffice runs under the normal policy, and so does the thread while it waits for the PDF."""
    outcome: dict[str, object] = {}
    converting = threading.Event()

    def convert_from_a_batch_thread() -> None:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # this thread only
        try:
            with ConverterPool(size=1) as pool:
                outcome["groups"] = pool.process_group_ids()
                outcome["libreoffice"] = {policy for pid in process_tree(pool.process_group_ids()[0])
                                          for policy in _policies(pid)}
                converting.set()
                pool.convert(make_docx(*[f"Regel {number}" for number in range(2000)]))  # a few pages
                outcome["after"] = os.sched_getscheduler(0)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["failure"] = exc
        finally:
            converting.set()

    thread = threading.Thread(target=convert_from_a_batch_thread)
    thread.start()
    converting.wait(120)
    during = set()
    while thread.is_alive():
        try:
            during.add(os.sched_getscheduler(thread.native_id))
        except ProcessLookupError:
            break
        time.sleep(0.001)
    thread.join(120)

    assert "failure" not in outcome, outcome.get("failure")
    assert outcome["libreoffice"] == {os.SCHED_OTHER}
    assert os.SCHED_OTHER in during  # handing the document over and waiting for the PDF
    assert outcome["after"] == os.SCHED_BATCH  # its own policy again afterwards


def test_normal_policy_block_restores_the_threads_own_policy_also_after_an_error() -> None:
    seen: list[int] = []

    def run() -> None:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        try:
            with normal_policy():
                seen.append(os.sched_getscheduler(0))
                raise ValueError("inside")
        except ValueError:
            seen.append(os.sched_getscheduler(0))
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        with normal_policy():  # a thread under the normal policy already: nothing changes
            seen.append(os.sched_getscheduler(0))
        seen.append(os.sched_getscheduler(0))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)

    assert seen == [os.SCHED_OTHER, os.SCHED_BATCH, os.SCHED_OTHER, os.SCHED_OTHER]


def test_normal_policy_block_runs_where_the_switch_is_not_permitted(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []

    def refuse(*_: object) -> None:
        raise PermissionError("not permitted")

    def run() -> None:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        monkeypatch.setattr(os, "sched_setscheduler", refuse)
        with normal_policy():
            seen.append("ran")
        seen.append(os.sched_getscheduler(0))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)

    assert seen == ["ran", os.SCHED_BATCH]
