"""The main job on the embedded default: one registration dossier through the whole pipeline.

No Redis, no S3: an in-process dramatiq broker, local-folder storage and a development PKI
generated into ``OUT/pki``. Every signed PDF is written to ``OUT`` as ``<step>-<kind>.pdf``
(``-v2`` etc. for a kind's later documents, as in a follow-up cycle) and ``OUT/dossier.json``
lists the documents, the dossier's events in order with their hashes, and its final state.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from kmop.jobs import DocumentJob
from kmop.scenario import Fact, brussels_today, dossier_steps
from kmop.settings import load_settings
from signing.devpki import PASSPHRASE_ENV, DevPki, generate_dev_pki
from signing.identities import IdentityStore
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for
from workflow.ledger import Ledger
from workflow.registration_numbers import RegistrationNumbers
from workflow.tracker import DOCUMENT_STORED, Tracker

EXAMPLE_INPUT = "applicant.json"


def example_applicant() -> dict[str, Any]:
    return json.loads(resources.files("kmop.examples").joinpath(EXAMPLE_INPUT).read_text("utf-8"))


def _passphrase(pki_dir: Path) -> str:
    """The PKI passphrase: from the environment, else the one generated with the demo PKI."""
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    path = pki_dir / "passphrase"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    pki_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value + "\n")
    return value


@dataclass(frozen=True)
class DemoResult:
    out: Path
    documents: list[dict[str, Any]]
    events: list[dict[str, Any]]
    state: dict[str, Any]


def _file_name(step: int, kind: str, seen: dict[str, int]) -> str:
    seen[kind] = seen.get(kind, 0) + 1
    suffix = "" if seen[kind] == 1 else f"-v{seen[kind]}"
    return f"{step:02d}-{kind}{suffix}.pdf"


def run_demo(out: Path, applicant: dict[str, Any], scenario: str = "positive", today: dt.date | None = None) -> DemoResult:
    """The dossier of ``applicant`` through the pipeline; its timeline ends on ``today`` (default:
    today in Brussels), so every date a document states is on or before the day it is signed."""
    import dramatiq

    from conversion import ConverterPool
    from kmop.pipeline import Pipeline
    from storage.local import LocalFolderStore
    from workers.broker import QUEUE, install_broker
    from workers.runtime import Runtime, install_runtime

    today = today or brussels_today()
    steps = dossier_steps(applicant, scenario, today)
    out.mkdir(parents=True, exist_ok=True)
    pki_dir = out / "pki"
    passphrase = _passphrase(pki_dir)
    pki = DevPki(pki_dir) if (pki_dir / "identities.json").exists() else generate_dev_pki(pki_dir, passphrase.encode())
    identities = IdentityStore.from_file(pki.identities_path, {PASSPHRASE_ENV: passphrase})
    settings = load_settings({"KMOP_BROKER": "stub", "KMOP_STORAGE": "local",
                              "KMOP_LOCAL_STORAGE_DIR": str(out / "store")})
    store = LocalFolderStore(settings.local_storage_dir)
    tracker = Tracker(Ledger(store), today=lambda: today)
    broker = install_broker(settings)
    with ConverterPool(size=1, conversion_timeout=settings.conversion_timeout) as pool:
        signer = DocumentSigner(identities, timestamper_for(None, identities))
        numbers = RegistrationNumbers(store, first=settings.registration_number_first)
        install_runtime(Runtime(store, Pipeline(store, pool, signer, tracker, numbers), pool))
        from workers.submit import submit_job

        worker = dramatiq.Worker(broker, worker_threads=1)
        worker.start()
        try:
            for step in steps:
                if isinstance(step, Fact):
                    tracker.record_fact(step.dossier_id, step.name, step.role, step.data, step.idempotency_key)
                else:
                    submit_job(step, store)
                    broker.join(QUEUE, fail_fast=True)
        finally:
            worker.stop()
            install_runtime(None)
    dossier_id = steps[0].dossier_id
    history = tracker.history(dossier_id)
    documents, seen = [], {}
    for event in history:
        if event.type != DOCUMENT_STORED:
            continue
        payload = event.payload
        target = out / _file_name(payload["step"], payload["kind"], seen)
        target.write_bytes(store.get(payload["key"]))
        documents.append({"file": target.name, "kind": payload["kind"], "step": payload["step"],
                          "key": payload["key"], "sha256": payload["sha256"], "size": payload["size"],
                          "event": event.sequence})
    events = [event.to_dict() for event in history]
    state = tracker.state(dossier_id).to_dict()
    summary = {"dossier_id": dossier_id, "scenario": scenario, "today": today.isoformat(), "trust_root": "pki/root.pem",
               "state": state, "documents": documents, "events": events}
    (out / "dossier.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return DemoResult(out, documents, events, state)


def sworn_statement_job(applicant: dict[str, Any]) -> DocumentJob:
    """The first document job of the applicant's dossier (handy for examples and tests)."""
    return next(step for step in dossier_steps(applicant) if isinstance(step, DocumentJob))
