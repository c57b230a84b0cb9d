"""The main job on the embedded default: one registration dossier through the whole pipeline.

No Redis, no S3: an in-process dramatiq broker, local-folder storage and a development PKI
generated into ``OUT/pki``. Every signed PDF is written to ``OUT`` as ``<step>-<kind>.pdf`` and
``OUT/dossier.json`` lists the documents and the dossier's events with their hashes.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from kmop.errors import InvalidJob
from kmop.jobs import DocumentJob, parse_job
from kmop.pipeline import DOCUMENT_STORED, Pipeline
from kmop.settings import load_settings
from signing.devpki import PASSPHRASE_ENV, DevPki, generate_dev_pki
from signing.identities import IdentityStore
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for

from workflow.ledger import Ledger

EXAMPLE_INPUT = "applicant.json"
_APPLICANT_FIELDS = ("dossier_id", "application", "provider", "signatory")


def example_applicant() -> dict[str, Any]:
    return json.loads(resources.files("kmop.examples").joinpath(EXAMPLE_INPUT).read_text("utf-8"))


def _require(applicant: Any) -> dict[str, Any]:
    if not isinstance(applicant, dict):
        raise InvalidJob("input", "must be a JSON object")
    for name in _APPLICANT_FIELDS:
        if name not in applicant:
            raise InvalidJob(f"input.{name}", "is required")
    unknown = sorted(set(applicant) - set(_APPLICANT_FIELDS) - {"declarations"})
    if unknown:
        raise InvalidJob(f"input.{unknown[0]}", "is not a field of the demo input")
    return applicant


def dossier_jobs(applicant: dict[str, Any]) -> list[DocumentJob]:
    """The document jobs of a registration dossier for this applicant, in step order."""
    applicant = _require(applicant)
    declarations = applicant.get("declarations") or {
        "has_enterprise_number": True,
        "not_an_audit_firm": True,
        "accepts_audit_and_cost": True,
        "information_complete_and_correct": True,
        "no_misuse_or_bankruptcy": True,
        "keeps_project_dossiers": True,
        "accepts_agency_checks": True,
    }
    sworn_statement = {
        "dossier_id": applicant["dossier_id"],
        "kind": "sworn_statement",
        "idempotency_key": f"{applicant['dossier_id']}:sworn_statement:1",
        "requested_by": "applicant",
        "data": {
            "application": applicant["application"],
            "provider": applicant["provider"],
            "declarations": declarations,
            "signatory": applicant["signatory"],
        },
    }
    return [parse_job(sworn_statement)]


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


def run_demo(out: Path, applicant: dict[str, Any], pool_size: int = 1) -> DemoResult:
    import dramatiq

    from conversion import ConverterPool
    from storage.local import LocalFolderStore
    from workers.broker import QUEUE, install_broker
    from workers.runtime import Runtime, install_runtime

    jobs = dossier_jobs(applicant)
    out.mkdir(parents=True, exist_ok=True)
    pki_dir = out / "pki"
    passphrase = _passphrase(pki_dir)
    pki = DevPki(pki_dir) if (pki_dir / "identities.json").exists() else generate_dev_pki(pki_dir, passphrase.encode())
    identities = IdentityStore.from_file(pki.identities_path, {PASSPHRASE_ENV: passphrase})
    settings = load_settings({"KMOP_BROKER": "stub", "KMOP_STORAGE": "local",
                              "KMOP_LOCAL_STORAGE_DIR": str(out / "store")})
    store = LocalFolderStore(settings.local_storage_dir)
    broker = install_broker(settings)
    with ConverterPool(size=pool_size, conversion_timeout=settings.conversion_timeout) as pool:
        signer = DocumentSigner(identities, timestamper_for(None, identities))
        install_runtime(Runtime(store, Pipeline(store, pool, signer, Ledger(store)), pool))
        from workers.submit import submit_job

        worker = dramatiq.Worker(broker, worker_threads=pool_size)
        worker.start()
        try:
            for job in jobs:
                submit_job(job)
            broker.join(QUEUE, fail_fast=True)
        finally:
            worker.stop()
            install_runtime(None)
    dossier_id = jobs[0].dossier_id
    events = [event.to_dict() for event in Ledger(store).history(dossier_id)]
    documents = []
    for event in events:
        if event["type"] != DOCUMENT_STORED:
            continue
        payload = event["payload"]
        target = out / f"{payload['step']:02d}-{payload['kind']}.pdf"
        target.write_bytes(store.get(payload["key"]))
        documents.append({"file": target.name, "kind": payload["kind"], "step": payload["step"],
                          "key": payload["key"], "sha256": payload["sha256"], "size": payload["size"]})
    summary = {"dossier_id": dossier_id, "trust_root": "pki/root.pem", "documents": documents, "events": events}
    (out / "dossier.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return DemoResult(out, documents, events)
