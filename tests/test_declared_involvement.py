"""An involvement declared in the sworn statement (misuse of the kmo-portefeuille or a bankruptcy)
is a disclosure the dossier keeps: the preparation pack asks for its evidence, the audit report
must assess it under integrity (V5), and the decision cannot be positive without its own
assessment. It comes from the dossier's ledger, not from the later jobs' data."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kmop.demo import example_applicant
from kmop.errors import InvalidJob
from kmop.jobs import DocumentJob, parse_job
from kmop.pipeline import Pipeline
from kmop.scenario import Fact, Step, dossier_steps
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for
from storage.local import LocalFolderStore
from templates.enrich import enrich
from workflow.ledger import Ledger
from workflow import norm as norm_module
from workflow.steps import Phase
from workflow.tracker import Tracker

INVOLVEMENT = ("Bestuurder Ilse Verhaegen was tot maart 2024 zaakvoerder van Drukkerij Verhaegen BV, "
               "failliet verklaard door de ondernemingsrechtbank Gent op 4 maart 2024.")
REPORT_ASSESSMENT = ("Vonnis van faillietverklaring en verslag van de curator ingezien; geen band met de "
                     "kmo-portefeuille; mevrouw Verhaegen heeft geen bestuursfunctie meer.")
DECISION_ASSESSMENT = "De auditcommissie volgt de beoordeling van de auditor: de melding staat registratie niet in de weg."
DISCLOSING_KINDS = ("audit_report", "follow_up_audit_report", "commission_decision", "follow_up_decision")


def _evidence() -> list[str]:
    """The evidence the shipped norm data asks for (read from the file, not from the code)."""
    path = Path(norm_module.__file__).parent / "norm_data" / "kmop-norm-2016.1-paraphrase.json"
    return json.loads(path.read_text(encoding="utf-8"))["disclosure_rule"]["evidence"]


def decided(applicant: dict[str, Any], scenario: str) -> list[Step]:
    """The dossier's steps up to its last decision (the certificate's number comes from the
    pipeline's sequence, which these tests, on the tracker alone, do not run)."""
    return [s for s in dossier_steps(applicant, scenario)
            if not (isinstance(s, DocumentJob) and s.kind == "registration_certificate")]


def applicant(declares: bool = True) -> dict[str, Any]:
    data = copy.deepcopy(example_applicant())
    data["declarations"] = {
        "has_enterprise_number": True, "not_an_audit_firm": True, "accepts_audit_and_cost": True,
        "information_complete_and_correct": True, "no_misuse_or_bankruptcy": not declares,
        "keeps_project_dossiers": True, "accepts_agency_checks": True,
    }
    if declares:
        data["declarations"]["involvement"] = INVOLVEMENT
    return data


def assessed(step: DocumentJob) -> DocumentJob:
    """The step with the assessment a disclosure asks of it (the auditor's or the commission's)."""
    message = copy.deepcopy(step.to_message())
    message["data"]["disclosure_assessment"] = (REPORT_ASSESSMENT if step.kind.endswith("report")
                                               else DECISION_ASSESSMENT)
    return parse_job(message)


def unassessed(step: DocumentJob) -> DocumentJob:
    """The step without an assessment (the demo's scenario gives one where the rule asks for it)."""
    message = copy.deepcopy(step.to_message())
    message["data"].pop("disclosure_assessment", None)
    return parse_job(message)


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    return Tracker(Ledger(LocalFolderStore(tmp_path / "store")))


def _apply(tracker: Tracker, step: Step) -> None:
    if isinstance(step, Fact):
        tracker.record_fact(step.dossier_id, step.name, step.role, step.data, step.idempotency_key)
        return
    tracker.check(step.dossier_id, step.kind, step.role, step.data)
    tracker.record_document(step.dossier_id, step.kind, step.role, step.data, step.idempotency_key,
                            {"kind": step.kind, "step": step.document_kind.step,
                             "key": f"dossiers/{step.dossier_id}/documents/{step.kind}/{step.idempotency_key}.pdf",
                             "sha256": "0" * 64, "size": 1})


def _refused(tracker: Tracker, step: DocumentJob, field: str) -> None:
    before = tracker.history(step.dossier_id)
    with pytest.raises(InvalidJob) as caught:
        _apply(tracker, step)
    assert caught.value.field == field
    assert tracker.history(step.dossier_id) == before


def test_the_pack_lists_the_evidence_of_a_declared_involvement(tracker: Tracker) -> None:
    steps = dossier_steps(applicant(), "positive")
    for step in steps:
        if isinstance(step, DocumentJob) and step.kind == "preparation_pack":
            break
        _apply(tracker, step)
    facts = tracker.check(step.dossier_id, step.kind, step.role, step.data).document_facts()
    assert facts["disclosure"]["text"] == INVOLVEMENT
    listed = [item["text"] for item in enrich("preparation_pack", step.data, facts)["checklist"]]
    assert all(text in listed for text in _evidence())
    # the pack's own data says nothing of it: without the dossier the evidence is not asked for
    plain = [item["text"] for item in enrich("preparation_pack", step.data)["checklist"]]
    assert not set(_evidence()) & set(plain)


def test_report_and_decision_must_assess_the_disclosure(tracker: Tracker) -> None:
    steps = decided(applicant(), "positive")
    for step in steps:
        if isinstance(step, DocumentJob) and step.kind in DISCLOSING_KINDS:
            _refused(tracker, unassessed(step), "data.disclosure_assessment")
            step = assessed(step)
        _apply(tracker, step)
    state = tracker.state(steps[0].dossier_id)
    assert state.phase is Phase.DECIDED_POSITIVE and state.outcome == "positive"


def test_a_negative_decision_on_integrity_needs_no_assessment_but_the_additional_audit_does(
        tracker: Tracker) -> None:
    steps = decided(applicant(), "negative")  # V3 and V5 fail, an additional audit passes
    for step in steps:
        if isinstance(step, DocumentJob) and step.kind in DISCLOSING_KINDS:
            if step.kind == "commission_decision":
                assert step.data["outcome"] == "negative"
                step = unassessed(step)
            else:
                _refused(tracker, unassessed(step), "data.disclosure_assessment")
                step = assessed(step)
        _apply(tracker, step)
    assert tracker.state(steps[0].dossier_id).phase is Phase.DECIDED_POSITIVE


def test_an_assessment_without_a_declared_involvement_is_refused(tracker: Tracker) -> None:
    steps = dossier_steps(applicant(declares=False), "positive")
    for step in steps:
        if isinstance(step, DocumentJob) and step.kind == "audit_report":
            _refused(tracker, assessed(step), "data.disclosure_assessment")
            return
        _apply(tracker, step)


def _flat(text: str) -> str:
    """Text on one line, as a PDF's words read across its line breaks (``kmo-`` ``portefeuille``)."""
    return " ".join(text.split()).replace("- ", "-")


def pdftotext(pdf: Path) -> str:
    """The text in reading order (a table cell's lines together, not beside the next column's)."""
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout


@pytest.fixture
def pipeline(tmp_path: Path, converter_pool, identities) -> Pipeline:
    store = LocalFolderStore(tmp_path / "pipeline-store")
    signer = DocumentSigner(identities, timestamper_for(None, identities))
    return Pipeline(store, converter_pool, signer, Tracker(Ledger(store)))


def test_the_rendered_documents_show_the_involvement_and_its_assessments(pipeline: Pipeline,
                                                                          tmp_path: Path) -> None:
    texts: dict[str, str] = {}
    for step in dossier_steps(applicant(), "positive"):
        if isinstance(step, Fact):
            pipeline.tracker.record_fact(step.dossier_id, step.name, step.role, step.data, step.idempotency_key)
            continue
        if step.kind in DISCLOSING_KINDS:
            step = assessed(step)
        result = pipeline.run(step)
        path = tmp_path / f"{step.kind}.pdf"
        path.write_bytes(pipeline.store.get(result.key))
        texts[step.kind] = _flat(pdftotext(path))
    for kind in ("sworn_statement", "preparation_pack", "audit_report", "commission_decision"):
        assert INVOLVEMENT in texts[kind], kind
    for evidence in _evidence():
        assert _flat(evidence) in texts["preparation_pack"]
    assert f"Beoordeling door de auditor (vereiste V5): {REPORT_ASSESSMENT}" in texts["audit_report"]
    assert f"Beoordeling door de auditcommissie (vereiste V5): {DECISION_ASSESSMENT}" in texts["commission_decision"]
    assert INVOLVEMENT not in texts["quote"] and INVOLVEMENT not in texts["registration_certificate"]


@pytest.fixture
def norm_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the norm's data directory that the code reads instead; ``change(edit)`` edits it."""
    directory = tmp_path / "norm_data"
    shutil.copytree(norm_module.NORM_DATA_DIR, directory)
    monkeypatch.setattr(norm_module, "NORM_DATA_DIR", directory)

    def change(edit) -> None:
        path = directory / "kmop-norm-2016.1-paraphrase.json"
        raw = json.loads(path.read_text(encoding="utf-8"))
        edit(raw["disclosure_rule"])
        path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
        norm_module._load_all.cache_clear()

    yield change
    norm_module._load_all.cache_clear()


def test_the_disclosure_rule_comes_from_the_data(norm_copy, tracker: Tracker) -> None:
    norm_copy(lambda rule: rule.update(evidence=["Het vonnis van faillietverklaring."],
                                       decision_needs_assessment_for=[]))
    for step in decided(applicant(), "positive"):
        if isinstance(step, DocumentJob) and step.kind == "preparation_pack":
            facts = tracker.check(step.dossier_id, step.kind, step.role, step.data).document_facts()
            listed = [item["text"] for item in enrich("preparation_pack", step.data, facts)["checklist"]]
            assert listed[-1] == "Het vonnis van faillietverklaring." and not set(_evidence()) & set(listed)
        if isinstance(step, DocumentJob) and step.kind == "audit_report":
            step = assessed(step)
        if isinstance(step, DocumentJob) and step.kind == "commission_decision":
            step = unassessed(step)  # a positive decision needs none by the changed rule
        _apply(tracker, step)
    assert tracker.state(step.dossier_id).phase is Phase.DECIDED_POSITIVE
