"""Load run: N document jobs submitted at once to worker processes on Redis and S3.

Checks that every job is done exactly once (one stored object and one ledger event per job,
none lost, none duplicated), samples the memory of every worker process and LibreOffice
instance during the run, and reports throughput and latency percentiles.

    python -m bench.load --jobs 1000 --processes 2 --s3-endpoint http://127.0.0.1:PORT

Used by tests/test_load.py; without --s3-endpoint a moto server is started for the run.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from dramatiq import Message

from conversion.memory import resident_bytes
from kmop.demo import example_applicant
from kmop.scenario import dossier_steps
from kmop.settings import load_settings
from signing.devpki import generate_dev_pki
from storage.s3 import S3Store
from workers.broker import QUEUE
from workers.factories import tracker_from_settings
from workers.wakeup import WakingRedisBroker
from workflow.ledger import Ledger
from workflow.tracker import Tracker

PASSPHRASE = "load-test-passphrase"
#: Seconds the workers idle before each single job (``one_at_a_time``): an idle system.
IDLE_BEFORE_SINGLE_JOB = 1.0


@dataclass
class MemorySeries:
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, RSS bytes)

    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)

    def quarter_means(self) -> tuple[float, float]:
        """Mean RSS of the second and the last quarter of the run (the first is warm-up)."""
        n = len(self.samples)
        if n < 8:
            return (0.0, 0.0)
        second = [rss for _, rss in self.samples[n // 4: n // 2]]
        last = [rss for _, rss in self.samples[3 * n // 4:]]
        return statistics.mean(second), statistics.mean(last)


@dataclass
class LoadReport:
    jobs: int
    processes: int
    seconds: float
    throughput: float
    latency_p50: float
    latency_p95: float
    latency_p99: float
    latency_max: float
    objects: int
    events: int
    duplicates: int
    missing: int
    worker_memory: dict[str, dict[str, float]]
    converter_memory_peak_mb: float
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    latency_by_dossier: dict[str, float] = field(default_factory=dict)
    stages_by_dossier: dict[str, dict[str, float]] = field(default_factory=dict)  # seconds, as the worker logged them

    def text(self) -> str:
        lines = [
            f"jobs {self.jobs} on {self.processes} worker processes: {self.seconds:.1f} s, "
            f"{self.throughput:.2f} documents/s",
            f"latency from submission: p50 {self.latency_p50:.1f} s, p95 {self.latency_p95:.1f} s, "
            f"p99 {self.latency_p99:.1f} s, max {self.latency_max:.1f} s",
            f"stored objects {self.objects}, ledger events {self.events}, duplicates {self.duplicates}, "
            f"missing {self.missing}",
        ]
        for name, memory in self.worker_memory.items():
            lines.append(f"{name}: peak {memory['peak_mb']:.0f} MB, mean 2nd quarter {memory['q2_mb']:.0f} MB, "
                         f"mean last quarter {memory['q4_mb']:.0f} MB (growth {memory['growth']:+.1%})")
        lines.append(f"LibreOffice instances: peak {self.converter_memory_peak_mb:.0f} MB each at most")
        if self.cpu_seconds and self.jobs:
            lines.append("CPU per document: " + ", ".join(
                f"{name} {seconds / self.jobs * 1000:.0f} ms" for name, seconds in self.cpu_seconds.items()))
        return "\n".join(lines)


def _jobs(n: int, run: str) -> list[dict[str, Any]]:
    applicant = copy.deepcopy(example_applicant())
    applicant["application"]["first_time"] = False
    template = next(s for s in dossier_steps(applicant) if getattr(s, "kind", None) == "sworn_statement").to_message()
    jobs = []
    for i in range(n):
        job = copy.deepcopy(template)
        job["dossier_id"] = f"LOAD-{run}-{i:05d}"
        job["idempotency_key"] = f"LOAD-{run}-{i:05d}:sworn_statement"
        jobs.append(job)
    return jobs


def rss(pid: int) -> int:
    """Resident memory of ``pid`` in bytes (0 once it is gone)."""
    return resident_bytes([pid]) or 0


TICKS = os.sysconf("SC_CLK_TCK")


def process_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (parent pid, command name, CPU ticks used) of every process, from one pass over /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            table[int(entry.name)] = (int(fields[1]), stat[stat.index("(") + 1: stat.rindex(")")],
                                      int(fields[11]) + int(fields[12]))
    return table


def descendants(pid: int, table: dict[int, tuple[int, str, int]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for child, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(child)
    result, frontier = [], [pid]
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, ())]
        result += frontier
    return result


class _Completions:
    """Jobs the workers report done (stored and recorded), read from their JSON log as it grows.

    Watching the log costs the run nothing; polling the bucket would load the S3 server the
    workers are using. What was stored is counted from the bucket once, after the run.
    """

    def __init__(self, log: Path) -> None:
        self._log = log
        self._offset = 0

    def read(self) -> list[tuple[str, float, dict[str, float]]]:
        """(dossier, when it was done, seconds per stage inside the worker) for each job done
        since the last call."""
        try:
            with self._log.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        found = []
        for line in complete.splitlines():
            if b'"kmop.worker"' not in line or b'"message": "document ' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            stages = {stage: ms / 1000 for stage, ms in record.get("stages_ms", {}).items()}
            found.append((record["dossier_id"], dt.datetime.fromisoformat(record["ts"]).timestamp(), stages))
        return found


def run_load(jobs: int, processes: int, s3_endpoint: str, redis_url: str = "redis://127.0.0.1:6379/0",
             work_dir: Path | None = None, timeout: float = 3600, threads: int = 1,
             make_jobs: Callable[[str, Tracker], list[dict[str, Any]]] | None = None,
             extra_env: dict[str, str] | None = None, s3_pid: int | None = None,
             one_at_a_time: bool = False, before_each: Callable[[int], None] | None = None) -> LoadReport:
    """Submit the jobs at once and wait for them; ``make_jobs(run, tracker)`` may prepare
    dossiers and return its own jobs (default: ``jobs`` sworn statements of returning applicants).

    ``one_at_a_time``: submit each job only when the one before it is done and the workers have
    idled for a moment: the latency of single jobs on an idle system; ``before_each(index)``, if
    given, runs before each of them is submitted (a baseline measured beside each job)."""
    from testing.processes import Worker, worker_env  # the same launcher the fault tests use

    run = uuid.uuid4().hex[:6]
    work_dir = work_dir or Path(tempfile.mkdtemp(prefix="kmop-load-"))
    pki = generate_dev_pki(work_dir / "pki", PASSPHRASE.encode())
    store = S3Store.from_settings(endpoint_url=s3_endpoint, bucket=f"kmop-load-{run}", region="us-east-1",
                                  access_key="testing", secret_key="testing")
    store.ensure_bucket()
    namespace = f"kmop-load-{run}"
    env = worker_env(redis_url=redis_url, namespace=namespace, s3_endpoint=s3_endpoint, bucket=store.bucket,
                     pki_dir=pki.directory, KMOP_PKI_PASSPHRASE=PASSPHRASE, **(extra_env or {}))
    # dossiers prepared by a tracker built as the workers build theirs (the service's API would)
    payloads = make_jobs(run, tracker_from_settings(load_settings(env), store)) if make_jobs else _jobs(jobs, run)
    jobs = len(payloads)
    worker = Worker(env, work_dir / "worker.log", processes=processes, threads=threads).start()
    broker = WakingRedisBroker(url=redis_url, namespace=namespace, middleware=[])
    broker.declare_queue(QUEUE)

    memory: dict[int, MemorySeries] = {}
    converter_peak = 0
    cpu_first: dict[int, int] = {}
    cpu_last: dict[int, tuple[str, int]] = {}
    stop = threading.Event()
    start = time.monotonic()

    def take_sample() -> None:
        """Memory of the worker processes and LibreOffice instances, and CPU used since the
        run began by them and the S3 server (the workers' start-up excluded; a LibreOffice
        started during the run, a recycled instance's successor, counts whole)."""
        nonlocal converter_peak
        assert worker.process is not None
        now = time.monotonic() - start
        table = process_table()
        first_sample = not cpu_last
        for pid in descendants(worker.process.pid, table):
            parent, command, ticks = table[pid]
            if parent == worker.process.pid:
                memory.setdefault(pid, MemorySeries()).samples.append((now, rss(pid)))
                group = "worker processes"
            else:
                group = "LibreOffice with unoserver"
                if "soffice" in command:
                    converter_peak = max(converter_peak, rss(pid))
            cpu_first.setdefault(pid, ticks if first_sample else 0)
            cpu_last[pid] = (group, ticks)
        if s3_pid is not None and s3_pid in table:
            cpu_first.setdefault(s3_pid, table[s3_pid][2])
            cpu_last[s3_pid] = ("S3 server", table[s3_pid][2])

    def sample() -> None:
        while not stop.is_set():
            take_sample()
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        worker.wait_ready()  # every process has its LibreOffice running: steady state is measured
        submitted: dict[str, float] = {}
        start = time.monotonic()
        take_sample()
        sampler.start()
        deadline = time.monotonic() + timeout
        done: dict[str, float] = {}
        stages: dict[str, dict[str, float]] = {}
        completions = _Completions(worker.log_path)

        def wait_for(count: int, poll: float) -> None:
            while len(done) < count and time.monotonic() < deadline:
                assert worker.process is not None and worker.process.poll() is None, "the workers died"
                for dossier, when, timings in completions.read():
                    if dossier in submitted and dossier not in done:
                        done[dossier], stages[dossier] = when, timings
                time.sleep(poll)

        for index, payload in enumerate(payloads):
            if one_at_a_time:
                if before_each is not None:
                    before_each(index)
                time.sleep(IDLE_BEFORE_SINGLE_JOB)  # an idle system: the workers have waited a while for work
            broker.enqueue(Message(queue_name=QUEUE, actor_name="generate_document", args=(payload,),
                                   kwargs={}, options={}))
            submitted[payload["dossier_id"]] = time.time()
            if one_at_a_time:
                wait_for(index + 1, 0.01)
        wait_for(jobs, 0.05)
        take_sample()
        seconds = time.monotonic() - start
    finally:
        stop.set()
        worker.stop(timeout=120)
        broker.client.close()

    keys = store.list("dossiers/")
    objects = sum(1 for k in keys if "/documents/" in k)
    ledger = Ledger(store)
    events = sum(1 for d in submitted for e in ledger.history(d) if e.type == "document_stored"
                 and not e.payload["key"].split("/")[2] == "stub")
    latency_by_dossier = {d: done[d] - submitted[d] for d in done}
    latencies = sorted(latency_by_dossier.values())
    per_dossier: dict[str, int] = {}
    for key in keys:
        if "/documents/" in key:
            per_dossier[key.split("/")[1]] = per_dossier.get(key.split("/")[1], 0) + 1
    duplicates = sum(count - 1 for count in per_dossier.values() if count > 1)

    def percentile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    worker_memory = {}
    for index, (pid, series) in enumerate(sorted(memory.items())):
        if series.peak() < 20 * 2**20:  # short-lived helper processes
            continue
        q2, q4 = series.quarter_means()
        worker_memory[f"worker process {index}"] = {
            "peak_mb": series.peak() / 2**20, "q2_mb": q2 / 2**20, "q4_mb": q4 / 2**20,
            "growth": (q4 - q2) / q2 if q2 else 0.0}
    cpu_seconds: dict[str, float] = {}
    for pid, (group, ticks) in cpu_last.items():
        cpu_seconds[group] = cpu_seconds.get(group, 0.0) + (ticks - cpu_first[pid]) / TICKS
    return LoadReport(
        jobs=jobs, processes=processes, seconds=seconds, throughput=len(done) / seconds if seconds else 0.0,
        latency_p50=percentile(0.50), latency_p95=percentile(0.95), latency_p99=percentile(0.99),
        latency_max=latencies[-1] if latencies else float("nan"), objects=objects, events=events,
        duplicates=duplicates, missing=jobs - len(done), worker_memory=worker_memory,
        converter_memory_peak_mb=converter_peak / 2**20, cpu_seconds=cpu_seconds,
        latency_by_dossier=latency_by_dossier, stages_by_dossier=stages,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--s3-endpoint")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.s3_endpoint:
        report = run_load(args.jobs, args.processes, args.s3_endpoint, args.redis_url)
    else:
        from testing.s3server import MotoServer

        with MotoServer() as server:
            report = run_load(args.jobs, args.processes, server.url, args.redis_url, s3_pid=server.pid)
    print(json.dumps(asdict(report), indent=2) if args.json else report.text())
    return 0 if report.missing == 0 and report.duplicates == 0 and report.objects == report.jobs else 1


if __name__ == "__main__":
    sys.exit(main())
