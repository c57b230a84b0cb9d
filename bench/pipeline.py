"""Pipeline benchmark: where the time goes, and how close the whole pipeline comes to the
converter's own limit. Prints figures and ratios measured in one run on this machine.

    python -m bench.pipeline [--rounds 5] [--load-rounds 20] [--memory-rounds 180]

Workload (bench/workload.py): the six documents of a dossier with realistic data, the
preparation pack 20 pages long; ``--rounds`` times for the stages and the naive pipeline,
``--load-rounds`` times for the throughput of the workers and of the floor (a run of a few
seconds would measure its start and its last, lone pack more than its pace). Against real
Redis (127.0.0.1:6379), moto's S3 server (started here) and LibreOffice. Baselines in the same
run:

- floor: the same .docx files converted by the warm pool alone (1 and 2 instances);
- naive: render + a cold ``soffice --convert-to pdf`` per document + sign + store.

The throughput target is set for documents signed at B-T, so the throughput runs and the naive
pipeline sign every kind at B-T (a policy file, ``KMOP_SIGNATURE_POLICY``); two more runs sign
at the policy's own levels (the certificate and the decision at B-LTA) and are reported beside.

The machine's pace drifts (up to 15 % within a run here), so what is compared is measured
side by side in time: the runs of two worker processes alternate with runs of the two-instance
floor and of the naive pipeline, two in parallel (floor, naive, workers, floor, naive, ...,
workers, floor, naive), each run of the workers is compared with the floor and the naive
pipeline just before and after it and the median of those ratios is the figure (a run the
machine slows says little of the pipeline); each single job is measured beside the floor's
conversion and signing of its document, each after the same idle second.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.load import IDLE_BEFORE_SINGLE_JOB, TICKS, descendants, process_table, rss, run_load
from bench.workload import KINDS, workload
from conversion import ConverterPool, convert_cold
from kmop.jobs import DocumentJob, parse_job
from kmop.pipeline import Pipeline, envelope
from signing.devpki import PASSPHRASE_ENV, generate_dev_pki
from signing.identities import IdentityStore
from signing.policy import DEFAULT_POLICY_FILE, POLICY_ENV, PadesLevel, SignaturePolicy, policy_for
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for
from storage.s3 import S3Store
from templates.render import render_docx
from workflow.ledger import CACHED_DOSSIERS, Ledger
from workflow.tracker import Tracker

STAGES = ("render", "convert", "sign", "store", "record")
#: Times each kind runs alone through the workers; all but the first are measured (ten: with
#: five, one job of a kind slowed by the machine moved a kind's median ratio from 1.15 to 1.32).
SINGLE_ROUNDS = 11
#: Documents between two memory readings of the in-process run.
MEMORY_SAMPLE_EVERY = 120
#: Runs of two worker processes, each followed by a measurement of the floor (one before them).
#: Each run is compared with the floor just before and after it; the median of those ratios is
#: the figure (one run of three fell to 80 % of its neighbours' pace, floor steady around it).
TWO_PROCESS_RUNS = 5
#: Runs of two worker processes signing at the policy's own levels, after those at B-T.
POLICY_LEVEL_RUNS = 2


def _b_t_policy_file(directory: Path) -> Path:
    """The signature policy with every kind at B-T (the throughput target's documents)."""
    content = json.loads(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    for entry in content["kinds"].values():
        entry["level"] = PadesLevel.B_T.value
    path = directory / "policy-b-t.json"
    path.write_text(json.dumps(content, indent=2), encoding="utf-8")
    return path


def _at_b_t(policy: SignaturePolicy) -> SignaturePolicy:
    return dataclasses.replace(policy, level=PadesLevel.B_T)


def _median_p95(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else 0.0


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _converter_cpu_seconds(s3_pid: int) -> float:
    """CPU used so far by this process's children but the S3 server: the LibreOffice instances
    and their unoserver processes, while only the floor runs."""
    table = process_table()
    s3_tree = {s3_pid, *descendants(s3_pid, table)}
    return sum(table[pid][2] for pid in descendants(os.getpid(), table) if pid not in s3_tree) / TICKS


def _paired(rates: list[float], around: list[float], start: int = 0) -> list[float]:
    """Each rate against the mean of the two measurements of ``around`` just before and after it
    (``rates[0]`` ran between ``around[start]`` and ``around[start + 1]``)."""
    return [rate / statistics.mean(around[i:i + 2]) for i, rate in enumerate(rates, start=start)]


def _parallel(items: list[Any], workers: int, fn: Callable[[Any], Any]) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as executor:
        list(executor.map(fn, items))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5,
                        help="times the six documents for the stages and the naive pipeline (default 5)")
    parser.add_argument("--load-rounds", type=int, default=30,
                        help="times the six documents for the throughput runs (default 30)")
    parser.add_argument("--memory-rounds", type=int, default=180,
                        help="times the six documents for the in-process memory run (default 180)")
    args = parser.parse_args(argv)
    from testing.s3server import MotoServer

    work = Path(tempfile.mkdtemp(prefix="kmop-bench-"))
    pki = generate_dev_pki(work / "pki", b"bench")
    identities = IdentityStore.from_file(pki.identities_path, {PASSPHRASE_ENV: "bench"})
    signer = DocumentSigner(identities, timestamper_for(None, identities))
    out: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    say(f"kmop-docs pipeline benchmark, {dt.datetime.now().isoformat(timespec='seconds')}, "
        f"{args.rounds} x 6 documents (20-page preparation pack) in process and naive, "
        f"{args.load_rounds} x 6 for throughput")
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

            # -- memory of one process over a long run -------------------------------------
            memory: list[tuple[int, float]] = []
            for index, raw in enumerate(workload("memory", args.memory_rounds, tracker), start=1):
                pipeline.run(parse_job(raw))
                if index % MEMORY_SAMPLE_EVERY == 0:
                    memory.append((index, rss(os.getpid()) / 2**20))

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

            # -- floor: the warm pool alone, on the documents of the throughput runs ---------
            load_docxs = [render_docx(j.document_kind, j.data, envelope(j))
                          for j in map(parse_job, workload("floor", args.load_rounds))]
            floor1 = _rate(len(load_docxs), _parallel(load_docxs, 1, pool.convert))

            # -- naive: a cold soffice per document -----------------------------------------
            def naive(job_docx: tuple[DocumentJob, bytes]) -> None:
                job, docx = job_docx
                signed = signer.sign(convert_cold(docx), _at_b_t(policy_for(job.kind)), field_name="Naive",
                                     reason="naive")
                store.put_once(f"naive/{time.time_ns()}.pdf", signed, "application/pdf")

            pairs = list(zip(jobs, docxs))
            naive1 = _rate(len(pairs), _parallel(pairs, 1, naive))

            # -- single jobs, each beside the floor's conversion and signing of its document -----
            docx_of = {job.kind: docx for job, docx in zip(jobs[:len(KINDS)], docxs)}
            converted = {kind: pool.convert(docx) for kind, docx in docx_of.items()}
            floor_single: dict[int, tuple[float, float, float]] = {}

            def floor_alone(index: int) -> None:
                """The warm pool's conversion of the document the next single job makes, after an
                idle second as the job meets it (LibreOffice converts 10-20 ms slower then than
                straight after another document), its signing right after, and the conversion
                once more at once: measured beside each job, so that the machine's pace, which
                drifts within a minute here, is the same for both."""
                kind = KINDS[index % len(KINDS)]
                time.sleep(IDLE_BEFORE_SINGLE_JOB)
                convert_s = _timed(lambda: pool.convert(docx_of[kind]))
                sign_s = _timed(lambda: signer.sign(converted[kind], policy_for(kind), field_name="Alone",
                                                    reason="bench"))
                floor_single[index] = (convert_s, sign_s, _timed(lambda: pool.convert(docx_of[kind])))

            # each kind SINGLE_ROUNDS times, one at a time; all but the first are measured: a
            # worker that has made that kind of document before
            single = run_load(0, 1, s3.url, work_dir=work / "single",
                              make_jobs=lambda run, t: workload(run, SINGLE_ROUNDS, t), one_at_a_time=True,
                              before_each=floor_alone)

        def floor_two_instances() -> tuple[float, float]:
            """Documents per second of a warm pool of two alone, and its CPU per document."""
            with ConverterPool(size=2) as pool2:
                pool2.convert(docxs[0])
                pool2.convert(docxs[0])
                cpu_before = _converter_cpu_seconds(s3.pid)
                rate = _rate(len(load_docxs), _parallel(load_docxs, 2, pool2.convert))
                return rate, (_converter_cpu_seconds(s3.pid) - cpu_before) / len(load_docxs)

        # -- the real thing: workers on Redis, two processes between measurements of the floor --
        # The machine's pace drifts by up to 15 % over minutes: each run of two worker processes
        # is compared with the floor measured just before and just after it.
        make = lambda run, t: workload(run, args.load_rounds, t)  # noqa: E731
        at_b_t = {POLICY_ENV: str(_b_t_policy_file(work))}
        one_process = run_load(0, 1, s3.url, work_dir=work / "load1", make_jobs=make, threads=2, s3_pid=s3.pid,
                               extra_env=at_b_t)

        def naive_two_parallel() -> float:
            return _rate(len(pairs), _parallel(pairs, 2, naive))

        floors, naives = [floor_two_instances()], [naive_two_parallel()]
        two_processes = []
        for attempt in range(TWO_PROCESS_RUNS):
            two_processes.append(run_load(0, 2, s3.url, work_dir=work / f"load2-{attempt}", make_jobs=make,
                                          threads=2, s3_pid=s3.pid, extra_env=at_b_t))
            floors.append(floor_two_instances())
            naives.append(naive_two_parallel())
        policy_levels = []
        for attempt in range(POLICY_LEVEL_RUNS):
            policy_levels.append(run_load(0, 2, s3.url, work_dir=work / f"load2-policy-{attempt}",
                                          make_jobs=make, threads=2, s3_pid=s3.pid))
            floors.append(floor_two_instances())
        loads = {"1 process(es)": one_process, "2 process(es)": two_processes[-1],
                 "2 process(es), the policy's levels": policy_levels[-1]}
        floor2_rates = [rate for rate, _ in floors]
        b_t_floors = floor2_rates[:TWO_PROCESS_RUNS + 1]  # around the runs at B-T; the rest after
        floor2 = statistics.mean(b_t_floors)
        floor2_cpu = statistics.mean(cpu for _, cpu in floors)
        workers2_rates = [report.throughput for report in two_processes]
        workers2 = statistics.median(workers2_rates)
        # each run of the workers against the floor and the naive pipeline measured just before and after it
        paired = _paired(workers2_rates, floor2_rates)
        naive2 = statistics.mean(naives)
        paired_naive = _paired(workers2_rates, naives)
        policy_rates = [report.throughput for report in policy_levels]
        policy_paired = _paired(policy_rates, floor2_rates, start=TWO_PROCESS_RUNS)

    say("\nthroughput (documents per second; signed at B-T unless said)")
    say(f"  floor, warm pool alone:       1 instance {floor1:5.2f}   2 instances {floor2:5.2f}"
        f" (mean of {', '.join(f'{rate:.2f}' for rate in b_t_floors)}, before, between "
        f"and after; then {', '.join(f'{rate:.2f}' for rate in floor2_rates[len(b_t_floors):])})")
    say(f"  naive, cold soffice per doc:  1 process  {naive1:5.2f}   2 parallel  {naive2:5.2f} (mean of "
        f"{', '.join(f'{rate:.2f}' for rate in naives)}, each after a floor's)")
    say(f"  kmop workers (pool size 1 per process, 2 threads):  1 process {one_process.throughput:5.2f}"
        f"   2 processes {workers2:5.2f} (median of {', '.join(f'{rate:.2f}' for rate in workers2_rates)})")
    say(f"  ratio to floor (2):  {statistics.median(paired):5.0%} (median of each run's ratio to the floor "
        f"before and after it: {', '.join(f'{ratio:.0%}' for ratio in paired)}; mean to mean "
        f"{statistics.mean(workers2_rates) / floor2:.0%})")
    say(f"  ratio to naive (2): {statistics.median(paired_naive):4.1f}x (median of each run's ratio to the naive "
        f"pipeline before and after it: {', '.join(f'{ratio:.1f}x' for ratio in paired_naive)}; mean to mean "
        f"{statistics.mean(workers2_rates) / naive2:.1f}x)    floor to naive (2): {floor2 / naive2:4.1f}x")
    say(f"  at the policy's own levels (certificate and decision B-LTA), 2 processes: "
        f"{', '.join(f'{rate:.2f}' for rate in policy_rates)}; ratio to the floor around each "
        f"{', '.join(f'{ratio:.0%}' for ratio in policy_paired)}")
    say(f"\nsingle job on an idle system (each kind {SINGLE_ROUNDS - 1} times after a first, through Redis "
        f"to stored and recorded, one at a time after {IDLE_BEFORE_SINGLE_JOB:g} s idle), and beside each the "
        "warm pool alone converting the document after as long idle, signing it, and converting it again at "
        "once; medians, the ratio the median of each job's own")
    say(f"  {'':<26} {'end to end':>10}   {'conversion + signing, warm pool alone':>37}   ratio"
        "   (conversion at once)")
    ratios = []
    by_kind: dict[str, list[tuple[float, tuple[float, float, float], dict[str, float]]]] = {}
    for dossier, latency in single.latency_by_dossier.items():
        *_, round_, index = dossier.split("-")
        if round_ != "000":
            job_index = int(round_) * len(KINDS) + int(index)
            by_kind.setdefault(KINDS[int(index)], []).append(
                (latency, floor_single[job_index], single.stages_by_dossier[dossier]))
    for kind in KINDS:
        measured = by_kind[kind]
        latency = statistics.median(latency for latency, _, _ in measured)
        convert_s, sign_s, at_once_s = (statistics.median(values)
                                        for values in zip(*(floor for _, floor, _ in measured)))
        ratios.append(statistics.median(latency / (floor[0] + floor[1]) for latency, floor, _ in measured))
        say(f"  {kind:<26} {latency:8.2f} s   {convert_s:25.2f} s + {sign_s:4.2f} s   {ratios[-1]:5.2f}"
            f"   ({at_once_s:.2f} s)")
    say(f"  median ratio {statistics.median(ratios):4.2f}, largest {max(ratios):4.2f} (target: at most 1.3)")
    say("  the same jobs inside the worker (medians, ms; the rest: from submission to the worker's log line "
        "but the stages)")
    say(f"  {'':<26} " + " ".join(f"{stage:>8}" for stage in (*STAGES, "rest")))
    for kind in KINDS:
        measured = by_kind[kind]
        columns = [statistics.median(stages.get(stage, 0.0) for _, _, stages in measured) for stage in STAGES]
        rest = statistics.median(latency - sum(stages.values()) for latency, _, stages in measured)
        say(f"  {kind:<26} " + " ".join(f"{seconds * 1000:8.1f}" for seconds in (*columns, rest)))
    say("\nCPU per document (2 cores)")
    say(f"  floor, 2 instances: LibreOffice with unoserver {floor2_cpu * 1000:.0f} ms")
    for label, report in loads.items():
        say(f"  {label}: " + ", ".join(f"{name} {seconds / report.jobs * 1000:.0f} ms"
                                       for name, seconds in report.cpu_seconds.items()))
    say("\nmemory")
    if memory:
        say("  in process, one pipeline over " + f"{memory[-1][0]} documents: "
            + ", ".join(f"{n}: {mb:.0f} MB" for n, mb in memory))
        # the ledger keeps the events of its last CACHED_DOSSIERS dossiers (one per document here)
        full = next(((n, mb) for n, mb in memory if n >= CACHED_DOSSIERS), None)
        if full is not None and full != memory[-1]:
            say(f"  from {full[0]} documents (the ledger's cache of {CACHED_DOSSIERS} dossiers full) to "
                f"{memory[-1][0]}: {(memory[-1][1] - full[1]) / full[1]:+.1%}")
    for label, report in loads.items():
        for name, figures in report.worker_memory.items():
            say(f"  {label}, {name}: peak {figures['peak_mb']:.0f} MB")
        say(f"  {label}, LibreOffice instance peak {report.converter_memory_peak_mb:.0f} MB")
    (work / "report.txt").write_text("\n".join(out) + "\n")
    print(f"\nreport written to {work / 'report.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
