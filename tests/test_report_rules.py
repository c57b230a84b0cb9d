"""Audit reports and decisions that follow from their scores: the printed conclusion is computed,
stated values that contradict the scores are refused, the commission's results must be allowed by
the report's proposals, and every rule is read from the norm's data file."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from kmop.demo import example_applicant
from kmop.errors import InvalidJob
from kmop.jobs import DocumentJob, parse_job
from kmop.scenario import SCENARIOS, Fact, Step, dossier_steps
from storage.local import LocalFolderStore
from templates.catalog import TEMPLATES_DIR, get_kind
from templates.enrich import enrich
from templates.render import render_docx
from templates.validation import validate_data
from tests.pdftools import pdftotext
from workflow import norm as norm_module
from workflow.ledger import Ledger
from workflow.steps import Phase
from workflow.tracker import Tracker

NORM_FILE = "kmop-norm-2016.1-paraphrase.json"
REPORT_KINDS = ("audit_report", "follow_up_audit_report")
OUTCOME_WORDS = {"positive": "positief", "conditional": "voorwaardelijk", "negative": "negatief"}


def example(kind_name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((TEMPLATES_DIR / kind_name / "example.json").read_text(encoding="utf-8")))


def refused(kind_name: str, data: dict[str, Any]) -> InvalidJob:
    with pytest.raises(InvalidJob) as caught:
        validate_data(get_kind(kind_name), data)
        enrich(kind_name, data)
    return caught.value


def expected_outcome(data: dict[str, Any]) -> str:
    """docs/domain.md, section D, written out independently of the code under test: a requirement passes
    when every indicator scores T or V on both axes; positive when all pass; conditional (initial
    audits only) when at most two fail and integrity (V5) is not among them; negative otherwise."""
    failed = {f["indicator_id"].split(".")[0] for f in data["findings"]
              if not {f["conformity"], f["demonstrability"]} <= {"T", "V"}}
    if not failed:
        return "positive"
    if data["audit_kind"] in ("initial", "renewal") and len(failed) <= 2 and "V5" not in failed:
        return "conditional"
    return "negative"


# --- stated values that contradict the scores ---------------------------------------------------


@pytest.mark.parametrize("kind_name", REPORT_KINDS)
def test_a_stated_outcome_must_be_the_one_the_scores_give(kind_name: str) -> None:
    data = example(kind_name)
    given = expected_outcome(data)
    data["proposed_outcome"] = given
    assert enrich(kind_name, data)["conclusion"]["outcome"] == given
    for wrong in {"positive", "conditional", "negative"} - {given}:
        data["proposed_outcome"] = wrong
        error = refused(kind_name, data)
        assert error.field == "data.proposed_outcome" and repr(given) in error.reason


def test_a_report_saying_positive_while_a_requirement_fails_is_refused() -> None:
    data = example("audit_report")
    data["findings"] = [{**f, "conformity": "T", "demonstrability": "T"} for f in data["findings"]]
    data["findings"][-1].update(conformity="B", demonstrability="B")  # V5.3: integrity fails
    data["proposed_outcome"] = "positive"
    error = refused("audit_report", data)
    assert error.field == "data.proposed_outcome" and "'negative'" in error.reason


def test_the_free_conclusion_field_is_gone_and_the_remark_is_printed_as_the_auditors() -> None:
    data = example("audit_report")
    data["conclusion"] = "Positief: alle vereisten zijn geslaagd."
    assert refused("audit_report", data).field.startswith("data")
    data = example("audit_report")
    data["auditor_remark"] = "Een opmerking van de auditor."
    validate_data(get_kind("audit_report"), data)
    from tests.support.documents import text_of
    text = text_of(render_docx(get_kind("audit_report"), data, _envelope("audit_report")))
    assert "Opmerking van de auditor\nEen opmerking van de auditor." in text
    assert "Voorgesteld eindresultaat: voorwaardelijk." in text


def _envelope(kind_name: str) -> dict[str, Any]:
    kind = get_kind(kind_name)
    return {"dossier_id": "DEMO-2026-0001", "document_id": "doc-42", "kind_title": kind.title,
            "template_version": kind.template_version, "issued_at": "2027-01-12 16:05 CET"}


# --- the printed conclusion of each scenario, from the PDF ----------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_printed_conclusion_of_each_scenario_follows_the_scores(scenario: str, converter_pool,
                                                               tmp_path: Path) -> None:
    steps = dossier_steps(example_applicant(), scenario)
    reports = [s for s in steps if isinstance(s, DocumentJob) and s.kind in REPORT_KINDS]
    decisions = [s for s in steps if isinstance(s, DocumentJob) and s.kind.endswith("decision")]
    assert reports and len(reports) == len(decisions)
    for report, decision in zip(reports, decisions):
        outcome = expected_outcome(report.data)
        pdf = tmp_path / f"{report.idempotency_key.replace(':', '-')}.pdf"
        pdf.write_bytes(converter_pool.convert(render_docx(report.document_kind, report.data,
                                                           _envelope(report.kind))))
        text = " ".join(pdftotext(pdf).split())
        assert f"Voorgesteld eindresultaat: {OUTCOME_WORDS[outcome]}." in text
        for other in set(OUTCOME_WORDS) - {outcome}:
            assert f"Voorgesteld eindresultaat: {OUTCOME_WORDS[other]}" not in text
        for result in enrich(report.kind, report.data)["requirement_results"]:
            failing = any(f["indicator_id"].startswith(result["requirement_id"] + ".")
                          and not {f["conformity"], f["demonstrability"]} <= {"T", "V"}
                          for f in report.data["findings"])
            assert result["result"] == ("niet_geslaagd" if failing else "geslaagd"), result
        # the commission keeps the proposals in the scenarios: its outcome is the proposed one
        assert decision.data["outcome"] == outcome


# --- the commission decides within the report's proposals ----------------------------------------


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    return Tracker(Ledger(LocalFolderStore(tmp_path / "store")))


def _apply(tracker: Tracker, step: Step) -> None:
    if isinstance(step, Fact):
        tracker.record_fact(step.dossier_id, step.name, step.role, step.data, step.idempotency_key)
        return
    tracker.record_document(step.dossier_id, step.kind, step.role, step.data, step.idempotency_key,
                            {"kind": step.kind, "step": step.document_kind.step,
                             "key": f"dossiers/{step.dossier_id}/documents/{step.kind}/{step.idempotency_key}.pdf",
                             "sha256": "0" * 64, "size": 1})


def _until(tracker: Tracker, steps: list[Step], kind: str) -> DocumentJob:
    for step in steps:
        if isinstance(step, DocumentJob) and step.kind == kind:
            return step
        _apply(tracker, step)
    raise AssertionError(f"no {kind} step")


def _with(step: DocumentJob, change) -> DocumentJob:
    message = copy.deepcopy(step.to_message())
    change(message["data"])
    return parse_job(message)


def _judge(requirement_id: str, result: str, motivation: str | None = None):
    def change(data: dict[str, Any]) -> None:
        for entry in data["requirements"]:
            if entry["requirement_id"] == requirement_id:
                entry.clear()
                entry.update(requirement_id=requirement_id, result=result)
                if motivation:
                    entry["motivation"] = motivation
        data["failed_requirements"] = sorted(e["requirement_id"] for e in data["requirements"]
                                             if e["result"] == "niet_geslaagd")
    return change


def test_a_decision_cannot_pass_a_requirement_the_report_proposes_not_passed(tracker: Tracker) -> None:
    steps = dossier_steps(example_applicant(), "conditional")
    decision = _until(tracker, steps, "commission_decision")
    index = [e["requirement_id"] for e in decision.data["requirements"]].index("V3")

    def positive(data: dict[str, Any]) -> None:
        _judge("V3", "geslaagd", "De commissie vindt de meting voldoende.")(data)
        data["outcome"] = "positive"
        data.pop("follow_up_from"), data.pop("follow_up_until")

    with pytest.raises(InvalidJob) as caught:
        _apply(tracker, _with(decision, positive))
    assert caught.value.field == f"data.requirements[{index}].result"
    assert tracker.state(decision.dossier_id).phase is Phase.REPORTED

    def deliberated(data: dict[str, Any]) -> None:
        positive(data)
        _judge("V3", "gedelibereerd", "De commissie delibereert.")(data)

    with pytest.raises(InvalidJob) as caught:  # V3 scores a B: it cannot be deliberated
        _apply(tracker, _with(decision, deliberated))
    assert caught.value.field == f"data.requirements[{index}].result" and "deliberated" in caught.value.reason


def _report_with_a_deliberable_requirement(data: dict[str, Any]) -> None:
    for finding in data["findings"]:
        if finding["indicator_id"] == "V2.3":
            finding.update(conformity="G", demonstrability="T")


def test_a_deliberable_requirement_may_be_deliberated_with_its_reason(tracker: Tracker) -> None:
    steps = dossier_steps(example_applicant(), "positive")
    report = _until(tracker, steps, "audit_report")
    _apply(tracker, _with(report, _report_with_a_deliberable_requirement))
    decision = next(s for s in steps if isinstance(s, DocumentJob) and s.kind == "commission_decision")
    assert tracker.state(decision.dossier_id).proposals["V2"].deliberable
    index = [e["requirement_id"] for e in decision.data["requirements"]].index("V2")
    with pytest.raises(InvalidJob) as caught:  # kept as passed: the report proposes not passed
        _apply(tracker, decision)
    assert caught.value.field == f"data.requirements[{index}].result"
    with pytest.raises(InvalidJob) as caught:
        _apply(tracker, _with(decision, _judge("V2", "gedelibereerd")))
    assert caught.value.field == f"data.requirements[{index}].motivation"
    _apply(tracker, _with(decision, _judge("V2", "gedelibereerd", "Functioneringsgesprekken aangetoond.")))
    assert tracker.state(decision.dossier_id).outcome == "positive"


# --- each rule comes from the data file -------------------------------------------------------------


@pytest.fixture
def norm_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the norm's data directory that the code reads instead; ``change(raw)`` edits it."""
    directory = tmp_path / "norm_data"
    shutil.copytree(norm_module.NORM_DATA_DIR, directory)
    monkeypatch.setattr(norm_module, "NORM_DATA_DIR", directory)

    def change(edit) -> None:
        path = directory / NORM_FILE
        raw = json.loads(path.read_text(encoding="utf-8"))
        edit(raw)
        path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
        norm_module._load_all.cache_clear()

    yield change
    norm_module._load_all.cache_clear()


def test_the_outcome_rule_comes_from_the_data(norm_copy) -> None:
    data = example("audit_report")  # V2 and V3 not passed
    assert enrich("audit_report", data)["conclusion"]["outcome"] == "conditional"
    norm_copy(lambda raw: raw["outcome_rule"].update(max_not_passed_for_conditional=1))
    conclusion = enrich("audit_report", data)["conclusion"]
    assert conclusion["outcome"] == "negative" and "meer dan de 1" in conclusion["reason"]
    norm_copy(lambda raw: raw["outcome_rule"].update(max_not_passed_for_conditional=2, never_conditional=["V3"]))
    assert enrich("audit_report", data)["conclusion"]["outcome"] == "negative"


def test_the_commission_rule_comes_from_the_data(norm_copy, tracker: Tracker) -> None:
    steps = dossier_steps(example_applicant(), "conditional")
    decision = _until(tracker, steps, "commission_decision")

    def positive(data: dict[str, Any]) -> None:
        _judge("V3", "geslaagd", "De commissie vindt de meting voldoende.")(data)
        data["outcome"] = "positive"
        data.pop("follow_up_from"), data.pop("follow_up_until")

    with pytest.raises(InvalidJob):
        _apply(tracker, _with(decision, positive))
    norm_copy(lambda raw: raw["commission_rule"]["allowed"]["niet_geslaagd"].update(geslaagd="required"))
    _apply(tracker, _with(decision, positive))
    assert tracker.state(decision.dossier_id).outcome == "positive"
