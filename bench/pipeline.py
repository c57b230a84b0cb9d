"""Pipeline benchmark: where the time goes, and how close the whole pipeline comes to the
converter's own limit. Prints figures and ratios measured in one run on this machine.

    python -m bench.pipeline [--rounds 3]

Workload (bench/workload.py): the six documents of a dossier with realistic data, the
preparation pack 20 pages long; ``--rounds`` times. Against real Redis (127.0.0.1:6379), moto's
S3 server (started here) and LibreOffice. Baselines in the same run:

- floor: the same .docx files converted by the warm pool alone (1 and 2 instances);
- naive: render + a cold ``soffice --convert-to pdf`` per document + sign + store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.load import run_load
from bench.workload import workload
from conversion import ConverterPool, convert_cold
from kmop.jobs import DocumentJob, parse_job
from kmop.pipeline import Pipeline, envelope
from signing.devpki import PASSPHRASE_ENV, generate_dev_pki
from signing.identities import IdentityStore
from signing.policy import PadesLevel, SignaturePolicy, policy_for
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for
from storage.s3 import S3Store
from templates.render import render_docx
from workflow.ledger import Ledger
from workflow.tracker import Tracker

STAGES = ("render", "convert", "sign", "store", "record")


def _median_p95(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else 0.0


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _parallel(items: list[Any], workers: int, fn: Callable[[Any], Any]) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as executor:
        list(executor.map(fn, items))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="times the six documents (default 3)")
    args = parser.parse_args(argv)
    from tests.s3server import MotoServer

    work = Path(tempfile.mkdtemp(prefix="kmop-bench-"))
    pki = generate_dev_pki(work / "pki", b"bench")
    identities = IdentityStore.from_file(pki.identities_path, {PASSPHRASE_ENV: "bench"})
    signer = DocumentSigner(identities, timestamper_for(None, identities))
    out: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    say(f"kmop-docs pipeline benchmark, {dt.datetime.now().isoformat(timespec='seconds')}, "
        f"{args.rounds} x 6 documents (20-page preparation pack)")
    with MotoServer() as s3:
        store = S3Store.from_settings(endpoint_url=s3.url, bucket="kmop-bench-stages", region="us-east-1",
                                      access_key="bench", secret_key="bench")
        store.ensure_bucket()
        tracker = Tracker(Ledger(store))
        jobs = [parse_job(j) for j in workload("stages", args.rounds, tracker)]
        docxs = [render_docx(j.document_kind, j.data, envelope(j)) for j in jobs]

        with ConverterPool(size=1) as pool:
            # warm, as a worker is after its first jobs: each identity's key opened, its
            # signature size estimated, the templates' parts compiled
            warm_pdf = pool.convert(docxs[0])
            for job in jobs[:6]:
                render_docx(job.document_kind, job.data, envelope(job))
                signer.sign(warm_pdf, policy_for(job.kind), field_name="Warm", reason="warm")
            # -- in-process stages ---------------------------------------------------------
            pipeline = Pipeline(store, pool, signer, tracker)
            timings = {stage: [] for stage in STAGES}
            totals = []
            for job in jobs:
                start = time.perf_counter()
                result = pipeline.run(job)
                totals.append(time.perf_counter() - start)
                for stage in STAGES:
                    timings[stage].append(getattr(result.timings, stage))
            say("\nper stage, in process (median / p95 over %d documents)" % len(jobs))
            total_median = statistics.median(totals)
            for stage in STAGES:
                median, p95 = _median_p95(timings[stage])
                say(f"  {stage:<8} {median * 1000:7.0f} ms  {p95 * 1000:7.0f} ms   "
                    f"{sum(timings[stage]) / sum(totals):5.1%} of the time")
            say(f"  {'total':<8} {total_median * 1000:7.0f} ms  {_median_p95(totals)[1] * 1000:7.0f} ms")

            # -- signing per PAdES level --------------------------------------------------
            say("\nsigning per PAdES level (one 3-page quote, median of 5)")
            pdf = pool.convert(docxs[1])
            for level in PadesLevel:
                policy = SignaturePolicy(policy_for("quote").role, level, False)
                try:
                    times = [_timed(lambda: signer.sign(pdf, policy, field_name="Bench", reason="bench"))
                             for _ in range(5)]
                    say(f"  {level.value:<6} {statistics.median(times) * 1000:7.0f} ms")
                except Exception as exc:  # noqa: BLE001 - a level the signer cannot make here
                    say(f"  {level.value:<6} not available here: {exc}")

            # -- floor: the warm pool alone ------------------------------------------------
            floor1 = _rate(len(docxs), _parallel(docxs, 1, pool.convert))
            conversion_median = statistics.median(timings["convert"])
        with ConverterPool(size=2) as pool2:
            pool2.convert(docxs[0])
            pool2.convert(docxs[0])
            floor2 = _rate(len(docxs), _parallel(docxs, 2, pool2.convert))

        # -- naive: a cold soffice per document ---------------------------------------------
        def naive(job_docx: tuple[DocumentJob, bytes]) -> None:
            job, docx = job_docx
            signed = signer.sign(convert_cold(docx), policy_for(job.kind), field_name="Naive", reason="naive")
            store.put_once(f"naive/{time.time_ns()}.pdf", signed, "application/pdf")

        pairs = list(zip(jobs, docxs))
        naive1 = _rate(len(pairs), _parallel(pairs, 1, naive))
        naive2 = _rate(len(pairs), _parallel(pairs, 2, naive))

        # -- the real thing: workers on Redis --------------------------------------------
        make = lambda run, t: workload(run, args.rounds, t)  # noqa: E731
        single = run_load(0, 1, s3.url, work_dir=work / "single",
                          make_jobs=lambda run, t: workload(run, 1, t)[:1])
        loads = {n: run_load(0, n, s3.url, work_dir=work / f"load{n}", make_jobs=make, threads=2, s3_pid=s3.pid)
                 for n in (1, 2)}

    say("\nthroughput (documents per second)")
    say(f"  floor, warm pool alone:       1 instance {floor1:5.2f}   2 instances {floor2:5.2f}")
    say(f"  naive, cold soffice per doc:  1 process  {naive1:5.2f}   2 parallel  {naive2:5.2f}")
    say(f"  kmop workers (pool size 1 per process, 2 threads):  1 process {loads[1].throughput:5.2f}"
        f"   2 processes {loads[2].throughput:5.2f}")
    say(f"  ratio to floor (2):  {loads[2].throughput / floor2:5.0%}    ratio to naive (2): "
        f"{loads[2].throughput / naive2:4.1f}x")
    say("\nsingle job on an idle system (sworn statement, through Redis, warm worker)")
    say(f"  end to end {single.latency_max:5.2f} s, submission to stored and recorded")
    say(f"  in process, warm: total {total_median:5.2f} s vs conversion {conversion_median:5.2f} s + signing "
        f"{statistics.median(timings['sign']):5.2f} s -> ratio "
        f"{total_median / (conversion_median + statistics.median(timings['sign'])):4.2f}")
    say("\nCPU per document in the load runs (2 cores; the floor needs only LibreOffice's share)")
    for n, report in loads.items():
        say(f"  {n} process(es): " + ", ".join(f"{name} {seconds / report.jobs * 1000:.0f} ms"
                                              for name, seconds in report.cpu_seconds.items()))
    say("\nmemory")
    for n, report in loads.items():
        for name, memory in report.worker_memory.items():
            say(f"  {n} process(es), {name}: peak {memory['peak_mb']:.0f} MB (growth {memory['growth']:+.0%})")
        say(f"  {n} process(es), LibreOffice instance peak {report.converter_memory_peak_mb:.0f} MB")
    (work / "report.txt").write_text("\n".join(out) + "\n")
    print(f"\nreport written to {work / 'report.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
