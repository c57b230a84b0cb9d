"""Whole dossiers made as the service makes them, for the tests that read the signed documents
(tests/test_signature_placement.py, tests/test_pdfa.py): every step of a scenario through the
pipeline (render, LibreOffice, signing with the kind's signature layout, storage, ledger), with
the example applicant's data or with very long data (long names and addresses, many themes,
people and sites, long findings and motivations). Each dossier is made once per test session.
"""

from __future__ import annotations

import copy
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmop.demo import example_applicant
from kmop.errors import InvalidJob
from kmop.jobs import DocumentJob, parse_job
from kmop.pipeline import Pipeline
from kmop.scenario import Fact, dossier_steps
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for
from storage.local import LocalFolderStore
from workflow.ledger import Ledger
from workflow.tracker import DOCUMENT_STORED, Tracker


@dataclass(frozen=True)
class SignedDocument:
    name: str  # <step>-<kind>, as the demo names its files
    kind: str
    pdf: bytes

    @property
    def first_revision(self) -> bytes:
        """The document as LibreOffice made it, before any signature."""
        return revisions(self.pdf)[0]


def revisions(pdf: bytes) -> list[bytes]:
    """Each revision of ``pdf``: the file up to each of its end-of-file markers."""
    return [pdf[:end.end()] for end in re.finditer(rb"%%EOF\r?\n?", pdf)]


_MADE: dict[tuple[str, bool], list[SignedDocument]] = {}


def signed_dossier(scenario: str, long: bool, converter: Any, identities: Any) -> list[SignedDocument]:
    """Every document of a ``scenario`` dossier, in the order they were recorded."""
    key = (scenario, long)
    if key not in _MADE:
        _MADE[key] = _make(scenario, long, converter, identities)
    return _MADE[key]


def _make(scenario: str, long: bool, converter: Any, identities: Any) -> list[SignedDocument]:
    applicant = long_applicant(example_applicant()) if long else example_applicant()
    directory = Path(tempfile.mkdtemp(prefix=f"kmop-{scenario}-"))
    store = LocalFolderStore(directory)
    tracker = Tracker(Ledger(store))
    pipeline = Pipeline(store, converter, DocumentSigner(identities, timestamper_for(None, identities)), tracker)
    for step in dossier_steps(applicant, scenario):
        if isinstance(step, Fact):
            tracker.record_fact(step.dossier_id, step.name, step.role, step.data, step.idempotency_key)
        else:
            pipeline.run(longer_prose(step) if long else step)
    documents = []
    for event in tracker.history(applicant["dossier_id"]):
        if event.type == DOCUMENT_STORED:
            payload = event.payload
            documents.append(SignedDocument(f"{payload['step']:02d}-{payload['kind']}", payload["kind"],
                                            store.get(payload["key"])))
    return documents


def _tokens(prefix: str, length: int) -> str:
    """``length`` characters of numbered words with Latin accents: ``prefix Zoë-Ærø001 ...``."""
    text, number = prefix, 1
    while len(text) < length:
        text += f" Zoë-Łódź{number:03d}"
        number += 1
    return text[:length].rstrip()


def long_applicant(applicant: dict[str, Any]) -> dict[str, Any]:
    """The applicant with every name and address near its limit and many themes, people and sites."""
    data = copy.deepcopy(applicant)
    provider = data["provider"]
    provider["name"] = _tokens("Vennootschap", 240)
    provider["registered_office"]["street"] = _tokens("Steenweg", 150) + " 1001"
    provider["registered_office"]["city"] = _tokens("Gent", 90)
    provider["contact"]["name"] = _tokens("Contact", 150)
    provider["contact"]["function"] = _tokens("Functie", 110)
    data["signatory"] = {"name": _tokens("Ondertekenaar", 190), "capacity": "gedelegeerd bestuurder",
                         "place": _tokens("Plaats", 95)}
    data["application"]["themes"] = [_tokens(f"Thema {i}", 38) for i in range(1, 7)]
    for number, person in enumerate(data["people"], start=1):
        person["name"] = _tokens(f"Persoon {number}", 150)
        person["function"] = _tokens("Functie", 110)
    data["people"] += [{**copy.deepcopy(person), "name": _tokens(f"Extra {number}", 150)}
                       for number, person in enumerate(data["people"], start=1)]
    for number, site in enumerate(data.get("sites", []), start=1):
        site["label"] = _tokens(f"Vestiging {number}", 110)
    for number, dossier in enumerate(data.get("project_dossiers", []), start=1):
        dossier["client"] = _tokens(f"Klant {number}", 180)
    return data


def longer_prose(job: DocumentJob) -> DocumentJob:
    """``job`` with each sentence of its data (a finding, a motivation, a remark: any text of
    more than 60 characters) as long as validation lets it be, up to 1,500 characters."""
    message = job.to_message()
    for path in _prose_paths(message["data"]):
        trial = copy.deepcopy(message)
        holder = trial["data"]
        for part in path[:-1]:
            holder = holder[part]
        original = str(holder[path[-1]])
        for length in (1500, 600, 250):
            holder[path[-1]] = _tokens(original, max(length, len(original)))
            try:
                parse_job(trial)
            except InvalidJob:
                continue
            message = copy.deepcopy(trial)
            break
    return parse_job(message)


def _prose_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _prose_paths(item, (*path, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _prose_paths(item, (*path, index))]
    if isinstance(value, str) and len(value) > 60 and " " in value:
        return [path]
    return []
