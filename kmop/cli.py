"""The ``kmop`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from kmop.cli_ops import add_commands as add_ops_commands
from kmop.cli_ops import configured
from kmop.cli_renewal import add_commands as add_renewal_commands
from kmop.cli_signing import add_commands as add_signing_commands
from kmop.errors import KmopError, StorageUnavailable
from index.cli import add_commands as add_index_commands

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _demo(args: argparse.Namespace) -> int:
    import datetime as dt

    from kmop.demo import example_applicant, run_demo
    from kmop.scenario import brussels_today

    if args.input:
        try:
            applicant = json.loads(Path(args.input).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KmopError(f"--input {args.input}: cannot be read as JSON ({exc})") from exc
    else:
        applicant = example_applicant()
    today = None
    if args.today:
        try:
            today = dt.date.fromisoformat(args.today)
        except ValueError:
            raise KmopError(f"--today {args.today}: not a date (YYYY-MM-DD)") from None
        if today > brussels_today():
            raise KmopError(f"--today {args.today}: after today; the documents would be dated after they are signed")
    result = run_demo(Path(args.out), applicant, args.scenario, today)
    for document in result.documents:
        print(f"{document['file']}  sha256={document['sha256']}")
    print(f"dossier {result.state['phase']}: {result.out / 'dossier.json'}  "
          f"trust root: {result.out / 'pki' / 'root.pem'}")
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from signing.identities import load_certificates
    from signing.verify import FileReport, render_text, verify_pdf

    if not args.trust:
        raise KmopError("--trust: give at least one trust root (PEM or DER file)")
    roots = []
    for path in args.trust:
        try:
            roots.extend(load_certificates(Path(path)))
        except (OSError, ValueError) as exc:
            raise KmopError(f"--trust {path}: not a readable certificate ({exc})") from exc
    reports = []
    for name in args.files:
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            reports.append(FileReport(name=name, problems=[f"cannot be read ({exc.strerror})"]))
            continue
        reports.append(verify_pdf(data, roots, name=name, online=args.online))
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2, ensure_ascii=False))
    else:
        for report in reports:
            print(render_text(report))
    return EXIT_OK if all(r.ok for r in reports) else EXIT_FAILED


def _worker(args: argparse.Namespace) -> int:
    import tempfile

    from kmop.observability import MULTIPROC_ENV, prepare_multiprocess_dir
    from workers.broker import dramatiq_environment

    argv = ["dramatiq", "workers.app", "--processes", str(args.processes), "--threads", str(args.threads),
            "--worker-shutdown-timeout", str(args.shutdown_timeout_ms),
            "--fork-function", "workers.middleware_metrics:serve_metrics"]
    for name, value in dramatiq_environment(args.threads).items():
        os.environ.setdefault(name, value)
    metrics_dir = Path(os.environ.get(MULTIPROC_ENV) or Path(tempfile.gettempdir()) / f"kmop-metrics-{os.getpid()}")
    os.environ[MULTIPROC_ENV] = str(prepare_multiprocess_dir(metrics_dir))
    os.execvp(sys.executable, [sys.executable, "-m", *argv])
    return EXIT_FAILED  # pragma: no cover - exec does not return


def _submit_job(args: argparse.Namespace) -> int:
    from workers.submit import submit_job

    try:
        payload = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KmopError(f"{args.file}: cannot be read as JSON ({exc})") from exc
    message = submit_job(payload)
    print(message.message_id)
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from api.client import ApiClient, api_url

    if api_url(args.api):
        with ApiClient.from_env(args.api) as client:
            view = client.dossier(args.dossier)
        report = {
            "dossier_id": args.dossier,
            "state": view["state"],
            "expected_next": [f"{e['action']} (by {e['role']})" for e in view["expected_next"]],
            "events": view["events"],
            "documents": view["documents"],
        }
    else:
        from workflow.state import current_state
        from workflow.tracker import expected_next

        _, tracker = configured()
        history = tracker.history(args.dossier)
        state = current_state(history)
        report = {
            "dossier_id": args.dossier,
            "state": state.to_dict(),
            "expected_next": [str(e) for e in expected_next(state)],
            "events": [e.to_dict() for e in history],
        }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return EXIT_OK
    state_dict = report["state"]
    print(f"dossier {args.dossier}: {state_dict['phase']} ({state_dict['cycle']} audit)")
    print(f"expected next: {', '.join(report['expected_next']) or 'nothing (closed)'}")
    for event in report["events"]:
        what = event["payload"].get("kind") or event["type"]
        print(f"  {event['sequence']:3d}  {event['at']}  {event['actor']:<11} {what:<26} {event['payload'].get('sha256', '')}")
    for deadline in state_dict["deadlines"]:
        print(f"  deadline {deadline['name']}: {deadline['opens'] + ' .. ' if deadline['opens'] else 'by '}{deadline['due']}")
    return EXIT_OK


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    app = create_app()  # reads and checks the settings before the port is opened
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return EXIT_OK


def _submit(args: argparse.Namespace) -> int:
    from api.client import ApiClient

    try:
        payload = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KmopError(f"{args.file}: cannot be read as JSON ({exc})") from exc
    key = args.idempotency_key
    if key is None and isinstance(payload, dict) and payload.get("dossier_id") and payload.get("idempotency_key"):
        key = f"{payload['dossier_id']}:{payload['idempotency_key']}"
    if not key:
        raise KmopError("--idempotency-key: give one (the job has no dossier_id and idempotency_key to derive it from)")
    with ApiClient.from_env(args.api) as client:
        accepted = client.submit_job(payload, key, args.webhook_url)
        print(f"job {accepted['job_id']} queued: dossier {accepted['dossier_id']}, {accepted['kind']}")
        if not args.wait:
            return EXIT_OK
        status = client.wait_for_job(accepted["job_id"], args.timeout)
    if status["status"] == "completed":
        document = status.get("document") or {}
        print(f"job {status['job_id']} completed: {document.get('name', '')}  sha256={document.get('sha256', '')}")
        return EXIT_OK
    if status["status"] == "awaiting_signature":
        print(f"job {status['job_id']} awaiting the signed PDF: {status['signing_request']}")
        return EXIT_OK
    if status["status"] == "failed":
        print(f"job {status['job_id']} failed: {status['error']['type']}: {status['error']['reason']}")
    else:
        print(f"job {status['job_id']} still queued after {args.timeout:g} s")
    return EXIT_FAILED


def _download(args: argparse.Namespace) -> int:
    from api.client import ApiClient

    out = Path(args.out)
    with ApiClient.from_env(args.api) as client:
        documents = client.documents(args.dossier)
        unknown = sorted(set(args.names) - {d["name"] for d in documents})
        if unknown:
            raise KmopError(f"dossier {args.dossier} has no document {', '.join(unknown)}; "
                            f"it has: {', '.join(d['name'] for d in documents) or 'none'}")
        out.mkdir(parents=True, exist_ok=True)
        for document in documents:
            if args.names and document["name"] not in args.names:
                continue
            path = out / f"{document['name']}.pdf"
            path.write_bytes(client.download(args.dossier, document["name"], document["sha256"]))
            print(f"{path}  sha256={document['sha256']}")
    return EXIT_OK


def _record_fact(args: argparse.Namespace) -> int:
    from signing.roles import Role

    try:
        data = json.loads(args.data)
        role = Role(args.role)
    except ValueError as exc:
        raise KmopError(f"--data/--role: {exc}") from exc
    _, tracker = configured()
    event, created = tracker.record_fact(args.dossier, args.fact, role, data, args.idempotency_key)
    print(f"event {event.sequence} {'recorded' if created else 'was already recorded'}: {args.fact}")
    return EXIT_OK


def _deadlines(args: argparse.Namespace) -> int:
    import datetime as dt

    from index.cli import deadlines_from_index
    from kmop.settings import load_settings
    from workflow.deadlines import open_deadlines

    on = dt.date.fromisoformat(args.on) if args.on else dt.date.today()
    settings = load_settings()
    store, tracker = configured()
    if settings.index_url:
        found = deadlines_from_index(settings, store, tracker, on, "overdue" if args.overdue else None)
    else:  # no index: every ledger is read
        found = [{"dossier_id": d.dossier_id, "name": d.deadline.name, "opens": d.deadline.opens,
                  "due": d.deadline.due, "status": d.status, "days_left": d.days_left,
                  "description": d.deadline.description}
                 for d in open_deadlines(tracker, store, on) if not args.overdue or d.status == "overdue"]
    if args.json:
        print(json.dumps(found, indent=2))
        return EXIT_OK
    for d in found:
        print(f"{d['status']:<9} {d['due']}  {d['dossier_id']:<20} {d['name']} ({d['description']})")
    if not found:
        print("no open deadlines")
    return EXIT_OK


def _health(args: argparse.Namespace) -> int:
    from kmop.observability import check_health
    from kmop.settings import load_settings

    settings = load_settings()
    report = check_health(settings, convert=args.convert, timeout=args.timeout)
    if settings.index_url:
        from index.cli import health_check

        report = type(report)([*report.checks, health_check(settings, args.timeout)])
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        for check in report.checks:
            print(f"{check.name:<10} {'ok' if check.ok else 'FAILED':<6} {check.detail}")
    return EXIT_OK if report.ok else EXIT_FAILED


def _init_storage(args: argparse.Namespace) -> int:
    from kmop.settings import load_settings
    from storage.s3 import S3Store
    from workers.factories import store_from_settings

    store = store_from_settings(load_settings())
    if isinstance(store, S3Store):
        deadline = time.monotonic() + args.wait
        while True:
            try:
                store.ensure_bucket()
                break
            except StorageUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
    print("storage ready")
    return EXIT_OK


def _pki(args: argparse.Namespace) -> int:
    from signing.devpki import PASSPHRASE_ENV, generate_dev_pki

    passphrase = os.environ.get(PASSPHRASE_ENV)
    if not passphrase:
        raise KmopError(f"{PASSPHRASE_ENV}: set it to the passphrase that will protect the keys")
    pki = generate_dev_pki(Path(args.out), passphrase.encode())
    print(f"development PKI written to {pki.directory}; trust root {pki.root_path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kmop", description="kmop-docs: signed documents for kmo-portefeuille registration")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a whole dossier on the embedded default (no Redis, no S3)")
    demo.add_argument("--out", required=True, help="folder for the signed PDFs, dossier.json and pki/")
    demo.add_argument("--input", help="applicant data (JSON); default: the example shipped in kmop/examples/")
    demo.add_argument("--scenario", choices=("positive", "conditional", "negative"), default="positive",
                      help="the audit outcome to play through (default: positive)")
    demo.add_argument("--today", help="the day the dossier's timeline ends on, YYYY-MM-DD (default: today in "
                                      "Brussels); every document is dated on or before it")
    demo.set_defaults(handler=_demo)

    verify = commands.add_parser("verify", help="verify every signature of PDF files against trust roots")
    verify.add_argument("files", nargs="+", metavar="FILE")
    verify.add_argument("--trust", action="append", default=[], metavar="PEM", help="trust root certificate (repeatable)")
    verify.add_argument("--json", action="store_true", help="print a JSON report")
    verify.add_argument("--online", action="store_true",
                        help="fetch revocation data the file does not carry (default: the file's own data only)")
    verify.set_defaults(handler=_verify)

    worker = commands.add_parser("worker", help="run dramatiq workers on the configured Redis broker")
    worker.add_argument("--processes", type=int, default=2)
    worker.add_argument("--threads", type=int, default=2)
    worker.add_argument("--shutdown-timeout-ms", type=int, default=300_000)
    worker.set_defaults(handler=_worker)

    submit = commands.add_parser("submit-job", help="validate a job (JSON file) and enqueue it on the broker")
    submit.add_argument("file")
    submit.set_defaults(handler=_submit_job)

    add_ops_commands(commands)
    add_renewal_commands(commands)
    add_signing_commands(commands)
    add_index_commands(commands)

    health = commands.add_parser("health", help="check Redis, storage and the converter; exit 1 naming what is down")
    health.add_argument("--json", action="store_true")
    health.add_argument("--convert", action="store_true", help="also convert a test document with a cold LibreOffice")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds per network check")
    health.set_defaults(handler=_health)

    status = commands.add_parser("status", help="a dossier's step, what is expected next, its events")
    status.add_argument("dossier")
    status.add_argument("--json", action="store_true")
    status.add_argument("--api", metavar="URL", help="ask the HTTP API (token in $KMOP_API_TOKEN) instead of "
                        "reading storage; default $KMOP_API_URL")
    status.set_defaults(handler=_status)

    api = commands.add_parser("api", help="serve the HTTP API (uvicorn)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    api.set_defaults(handler=_api)

    submit_api = commands.add_parser("submit", help="submit a job (JSON file) through the HTTP API")
    submit_api.add_argument("file")
    submit_api.add_argument("--api", metavar="URL", help="the API's URL; default $KMOP_API_URL (token: $KMOP_API_TOKEN)")
    submit_api.add_argument("--idempotency-key", help="default: <dossier_id>:<the job's idempotency_key>")
    submit_api.add_argument("--webhook-url", help="where to POST job.completed / job.failed")
    submit_api.add_argument("--wait", action="store_true", help="wait until the job is completed or failed")
    submit_api.add_argument("--timeout", type=float, default=300.0, help="seconds to --wait (default 300)")
    submit_api.set_defaults(handler=_submit)

    download = commands.add_parser("download", help="download a dossier's signed documents through the HTTP API")
    download.add_argument("dossier")
    download.add_argument("names", nargs="*", metavar="NAME", help="documents to fetch (e.g. 01-sworn_statement-v1); default all")
    download.add_argument("--api", metavar="URL", help="the API's URL; default $KMOP_API_URL (token: $KMOP_API_TOKEN)")
    download.add_argument("--out", default=".", help="folder for the PDFs (default: here)")
    download.set_defaults(handler=_download)

    fact = commands.add_parser("record-fact", help="record a fact without a document (knowledge test, audit visit)")
    fact.add_argument("dossier")
    fact.add_argument("fact", choices=("knowledge_test_passed", "audit_visit_held"))
    fact.add_argument("--role", required=True, help="who records it: applicant, auditor, ...")
    fact.add_argument("--data", default="{}", help='JSON, e.g. \'{"date": "2027-01-12"}\'')
    fact.add_argument("--idempotency-key", required=True)
    fact.set_defaults(handler=_record_fact)

    deadlines = commands.add_parser("deadlines", help="open deadlines of all dossiers: due, overdue, upcoming")
    deadlines.add_argument("--on", help="the day to judge by (YYYY-MM-DD; default today)")
    deadlines.add_argument("--overdue", action="store_true", help="only what is overdue")
    deadlines.add_argument("--json", action="store_true")
    deadlines.set_defaults(handler=_deadlines)

    init = commands.add_parser("init-storage", help="create the configured bucket if it does not exist")
    init.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the endpoint")
    init.set_defaults(handler=_init_storage)

    pki = commands.add_parser("dev-pki", help="generate a development PKI (keys encrypted with $KMOP_PKI_PASSPHRASE)")
    pki.add_argument("--out", required=True)
    pki.set_defaults(handler=_pki)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KmopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
