"""Operations commands of ``kmop``: failed jobs, stuck jobs, and handing them back to the queue."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from typing import Any

from kmop.errors import KmopError

EXIT_OK = 0


def configured() -> tuple[Any, Any]:
    from kmop.settings import load_settings
    from workers.factories import store_from_settings, tracker_from_settings

    settings = load_settings()
    store = store_from_settings(settings)
    return store, tracker_from_settings(settings, store)


def dead_letters(args: argparse.Namespace) -> int:
    from workers.dead_letters import list_dead_letters
    from workers.submit import requeue

    store, _ = configured()
    letters = list_dead_letters(store)
    if args.requeue:
        letter = next((entry for entry in letters if entry["message_id"] == args.requeue), None)
        if letter is None:
            raise KmopError(f"--requeue: no dead letter with message id {args.requeue}")
        message = requeue(letter["args"][0])
        print(f"requeued {args.requeue} as {message.message_id}")
        return EXIT_OK
    if args.json:
        print(json.dumps(letters, indent=2, ensure_ascii=False))
        return EXIT_OK
    for letter in letters:
        job = letter["args"][0] if letter.get("args") and isinstance(letter["args"][0], dict) else {}
        print(f"{letter['failed_at']}  {letter['message_id']}  {job.get('dossier_id', '?')}/{job.get('kind', '?')}"
              f"  {letter['error_type']}: {letter['reason']}")
    if not letters:
        print("no dead letters")
    return EXIT_OK


def stuck(args: argparse.Namespace) -> int:
    from kmop.signing_requests import issued_request_id
    from workers.submit import requeue
    from workers.sweep import sweep

    store, tracker = configured()
    recorded = _recorded_in_index(store, tracker)
    while True:
        found = sweep(store, tracker, dt.timedelta(seconds=args.older_than), recorded=recorded)
        for entry in found:
            record = entry.record
            request = (issued_request_id(store, record.dossier_id, record.idempotency_key)
                       if entry.status == "stuck" and record.job.get("signature") == "external" else None)
            if request is not None:
                print(f"waiting {record.dossier_id}/{record.job['kind']} {record.idempotency_key}: "
                      f"issued to be signed elsewhere (signing request {request}); not resumed")
                continue
            print(f"{entry.status:<7} {record.dossier_id}/{record.job['kind']} {record.idempotency_key}: {entry.reason}")
            if args.resume and entry.status == "stuck":
                print(f"        resumed as {requeue(record.job).message_id}")
        if not found:
            print("nothing stuck")
        if not args.every:
            return EXIT_OK
        time.sleep(args.every)


def _recorded_in_index(store: Any, tracker: Any) -> Any:
    """Where a job is recorded, as the dossier index says (``workers.sweep``); None without an
    index, or when it cannot be reached (the sweep then reads the ledgers)."""
    import sys

    from kmop.settings import load_settings

    settings = load_settings()
    if not settings.index_url:
        return None
    from index.cli import index_engine
    from index.queries import recorded_keys

    try:
        engine = index_engine(settings, store, tracker)
    except Exception as exc:  # noqa: BLE001 - the sweep works without the index
        print(f"index unavailable ({type(exc).__name__}: {exc}); reading the ledgers", file=sys.stderr)
        return None

    def recorded(dossier_ids: list[str]) -> dict[str, set[str]]:
        with engine.connect() as connection:
            return recorded_keys(connection, dossier_ids)

    return recorded


def add_commands(commands: argparse._SubParsersAction) -> None:
    dead = commands.add_parser("dead-letters", help="list jobs that failed for good, with their reasons; requeue one")
    dead.add_argument("--json", action="store_true")
    dead.add_argument("--requeue", metavar="MESSAGE_ID", help="send that failed job to the queue again")
    dead.set_defaults(handler=dead_letters)

    sweep = commands.add_parser("stuck", help="jobs neither done nor visibly failed (lost or interrupted)")
    sweep.add_argument("--older-than", type=float, default=600.0, help="seconds since submission (default 600)")
    sweep.add_argument("--resume", action="store_true", help="hand stuck jobs back to the queue")
    sweep.add_argument("--every", type=float, default=0.0, help="repeat every N seconds (a sweeper service)")
    sweep.set_defaults(handler=stuck)
