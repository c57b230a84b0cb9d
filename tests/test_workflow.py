"""The state tracker: the order of the six steps, the branches, refusals that change nothing, races."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest

from kmop.demo import example_applicant
from kmop.errors import InvalidJob, StepOutOfOrder
from kmop.jobs import DocumentJob
from kmop.scenario import Fact, Step, dossier_steps
from signing.roles import Role
from storage.local import LocalFolderStore
from workflow.dates import add_months, registration_end
from workflow.ledger import Ledger
from workflow.rules import decide_outcome
from workflow.steps import Cycle, Phase
from workflow.tracker import Tracker


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    return Tracker(Ledger(LocalFolderStore(tmp_path / "store")))


def _numbered(step: Step) -> Step:
    """A certificate's job as the pipeline checks it: with the number its sequence gives."""
    if isinstance(step, DocumentJob) and step.kind == "registration_certificate" \
            and "registration_number" not in step.data:
        letter = "A" if step.data["service"] == "advies" else "O"
        return dataclasses.replace(step, data={**step.data, "registration_number": f"DV.{letter}000001"})
    return step


def _apply(tracker: Tracker, step: Step) -> None:
    """As a worker does: a document's step is checked before the document is made, then recorded."""
    step = _numbered(step)
    if isinstance(step, DocumentJob):
        tracker.check(step.dossier_id, step.kind, step.role, step.data)
    _record(tracker, step)


def _record(tracker: Tracker, step: Step) -> None:
    step = _numbered(step)
    if isinstance(step, Fact):
        tracker.record_fact(step.dossier_id, step.name, step.role, step.data, step.idempotency_key)
    else:
        tracker.record_document(step.dossier_id, step.kind, step.role, step.data, step.idempotency_key,
                                {"kind": step.kind, "step": step.document_kind.step,
                                 "key": f"dossiers/{step.dossier_id}/documents/{step.kind}/{step.idempotency_key}.pdf",
                                 "sha256": "0" * 64, "size": 1})


def _run(tracker: Tracker, steps: list[Step]) -> None:
    for step in steps:
        _apply(tracker, step)


def _name(step: Step) -> str:
    return step.kind if isinstance(step, DocumentJob) else step.name


DOSSIER = "DEMO-2026-0001"


def test_positive_path_registers_for_five_years(tracker: Tracker) -> None:
    steps = dossier_steps(example_applicant(), "positive")
    _run(tracker, steps)
    state = tracker.state(DOSSIER)
    assert state.phase is Phase.REGISTERED and state.outcome == "positive"
    assert state.valid_until == registration_end(dt.date.fromisoformat(state.valid_from)).isoformat()
    assert dt.date.fromisoformat(state.valid_until).year == dt.date.fromisoformat(state.valid_from).year + 5
    assert state.deadlines == ()
    history = tracker.history(DOSSIER)
    assert [e.payload["action"] for e in history] == [_name(s) for s in steps]
    assert all(e.payload.get("sha256") or e.type != "document_stored" for e in history)


def test_conditional_branch_with_follow_up_that_passes(tracker: Tracker) -> None:
    steps = dossier_steps(example_applicant(), "conditional")
    first_certificate = next(i for i, s in enumerate(steps) if _name(s) == "registration_certificate")
    _run(tracker, steps[: first_certificate + 1])
    state = tracker.state(DOSSIER)
    assert state.phase is Phase.REGISTERED_CONDITIONAL
    assert state.failed_requirements == ("V3",)
    [deadline] = state.deadlines
    decided = dt.date.fromisoformat(state.decision_date)
    assert (deadline.name, deadline.opens, deadline.due) == (
        "follow_up_audit", add_months(decided, 6).isoformat(), add_months(decided, 12).isoformat())

    _run(tracker, steps[first_certificate + 1:])
    state = tracker.state(DOSSIER)
    assert state.phase is Phase.REGISTERED and state.cycle is Cycle.FOLLOW_UP
    assert state.in_scope == ("V3",) and state.deadlines == ()


def test_a_later_certificate_keeps_the_dossiers_registration_number(tracker: Tracker) -> None:
    steps = dossier_steps(example_applicant(), "conditional")
    *before, last_certificate = steps
    _run(tracker, before)
    assert tracker.state(DOSSIER).registration_number == "DV.A000001"
    assert isinstance(last_certificate, DocumentJob)
    renumbered = dataclasses.replace(last_certificate, data={**last_certificate.data, "registration_number": "DV.A000002"})

    _refused(tracker, renumbered, InvalidJob, "registered under DV.A000001")
    _apply(tracker, last_certificate)
    assert tracker.state(DOSSIER).registration_number == "DV.A000001"


def test_negative_branch_with_additional_audit(tracker: Tracker) -> None:
    steps = dossier_steps(example_applicant(), "negative")
    decision = next(i for i, s in enumerate(steps) if _name(s) == "commission_decision")
    _run(tracker, steps[: decision + 1])
    state = tracker.state(DOSSIER)
    assert state.phase is Phase.DECIDED_NEGATIVE and state.failed_requirements == ("V3", "V5")
    [deadline] = state.deadlines
    assert deadline.name == "additional_audit"
    assert deadline.due == add_months(dt.date.fromisoformat(state.initial_visit_date), 6).isoformat()
    _run(tracker, steps[decision + 1:])
    assert tracker.state(DOSSIER).phase is Phase.REGISTERED


def _refused(tracker: Tracker, step: Step, error: type[Exception], match: str) -> None:
    """Refused by ``check`` and, on its own, by ``record_*`` (which a worker calls on a history
    that may have moved since its check), and the dossier's history unchanged. The record is
    tried under a key of its own: under a recorded step's key it is that step's redelivery."""
    before = tracker.history(DOSSIER)
    if isinstance(step, DocumentJob):
        with pytest.raises(error, match=match):
            tracker.check(step.dossier_id, step.kind, step.role, step.data)
        step = DocumentJob(step.dossier_id, step.kind, step.data, f"{step.idempotency_key}:another", step.role)
    with pytest.raises(error, match=match):
        _record(tracker, step)
    assert tracker.history(DOSSIER) == before


def _step(steps: list[Step], name: str, occurrence: int = 0) -> Step:
    return [s for s in steps if _name(s) == name][occurrence]


@pytest.mark.parametrize(
    ("done", "attempt", "match"),
    [
        (1, "quote", "expected next: sworn_statement"),
        (2, "audit_report", "expected next: quote"),
        (5, "audit_report", "expected next: audit_visit_held"),
        (7, "registration_certificate", "expected next: commission_decision"),
        (2, "sworn_statement", "not allowed now"),
        (3, "quote", "expected next: quote_acceptance"),
    ],
)
def test_out_of_order_is_refused_with_the_expected_step_and_changes_nothing(
    tracker: Tracker, done: int, attempt: str, match: str
) -> None:
    steps = dossier_steps(example_applicant(), "positive")
    _run(tracker, steps[:done])
    _refused(tracker, _step(steps, attempt), StepOutOfOrder, match)


def test_certificate_refused_before_a_positive_decision(tracker: Tracker) -> None:
    steps = dossier_steps(example_applicant(), "negative")
    decision = next(i for i, s in enumerate(steps) if _name(s) == "commission_decision")
    _run(tracker, steps[: decision + 1])
    certificate = _step(steps, "registration_certificate")
    _refused(tracker, certificate, StepOutOfOrder, "expected next: quote")


def test_first_time_applicant_needs_the_knowledge_test(tracker: Tracker) -> None:
    steps = dossier_steps(example_applicant(), "positive")
    assert _name(steps[0]) == "knowledge_test_passed"
    _refused(tracker, steps[1], InvalidJob, "knowledge test")


def test_wrong_party_is_refused(tracker: Tracker) -> None:
    steps = dossier_steps(example_applicant(), "positive")
    _run(tracker, steps[:2])
    quote = _step(steps, "quote")
    by_applicant = DocumentJob(quote.dossier_id, quote.kind, quote.data, quote.idempotency_key, Role.APPLICANT)
    _refused(tracker, by_applicant, StepOutOfOrder, "made by audit_firm, not by applicant")


def _mutated(step: DocumentJob, mutate) -> DocumentJob:
    data = copy.deepcopy(step.data)
    mutate(data)
    return DocumentJob(step.dossier_id, step.kind, data, step.idempotency_key, step.role)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.__setitem__("outcome", "positive"), "data.outcome"),
        (lambda d: d.__setitem__("follow_up_until", "2099-01-01"), "data.follow_up_until"),
        (lambda d: d.__setitem__("failed_requirements", ["V1"]), "data.failed_requirements"),
        (lambda d: d.__setitem__("audit_date", "2026-01-01"), "data.audit_date"),
    ],
)
def test_decision_must_follow_the_rules(tracker: Tracker, mutate, field: str) -> None:
    steps = dossier_steps(example_applicant(), "conditional")
    decision_index = next(i for i, s in enumerate(steps) if _name(s) == "commission_decision")
    _run(tracker, steps[:decision_index])
    with pytest.raises(InvalidJob) as caught:
        _apply(tracker, _mutated(steps[decision_index], mutate))
    assert caught.value.field == field
    assert tracker.state(DOSSIER).phase is Phase.REPORTED


def test_follow_up_quote_must_cover_exactly_the_failed_requirements(tracker: Tracker) -> None:
    steps = dossier_steps(example_applicant(), "conditional")
    second_quote = [i for i, s in enumerate(steps) if _name(s) == "quote"][1]
    _run(tracker, steps[:second_quote])
    bad = _mutated(steps[second_quote], lambda d: d["scope"].__setitem__("requirement_ids", ["V1", "V3"]))
    with pytest.raises(InvalidJob) as caught:
        _apply(tracker, bad)
    assert caught.value.field == "data.scope.requirement_ids"


@pytest.mark.parametrize(
    ("results", "cycle", "outcome"),
    [
        ({"V1": "geslaagd", "V2": "gedelibereerd", "V3": "vrijgesteld"}, Cycle.INITIAL, "positive"),
        ({"V1": "niet_geslaagd", "V2": "niet_geslaagd", "V5": "geslaagd"}, Cycle.INITIAL, "conditional"),
        ({"V1": "niet_geslaagd", "V2": "niet_geslaagd", "V3": "niet_geslaagd"}, Cycle.INITIAL, "negative"),
        ({"V5": "niet_geslaagd"}, Cycle.INITIAL, "negative"),
        ({"V3": "niet_geslaagd"}, Cycle.FOLLOW_UP, "negative"),
    ],
)
def test_outcome_rule(results: dict[str, str], cycle: Cycle, outcome: str) -> None:
    assert decide_outcome(results, cycle) == outcome


def test_month_arithmetic_clamps_to_month_end() -> None:
    assert add_months(dt.date(2026, 8, 31), 6) == dt.date(2027, 2, 28)
    assert add_months(dt.date(2027, 8, 31), 6) == dt.date(2028, 2, 29)
    assert registration_end(dt.date(2027, 3, 1)) == dt.date(2032, 2, 29)


def _race(tracker: Tracker, steps: list[Step], contenders: int) -> list[Any]:
    """Many workers try the same transition at once, each under its own idempotency key."""
    quote = _step(steps, "quote")
    outcomes: list[Any] = []
    barrier = threading.Barrier(contenders)

    def attempt(i: int) -> None:
        job = DocumentJob(quote.dossier_id, quote.kind, quote.data, f"race-{i}", quote.role)
        barrier.wait()
        try:
            _apply(tracker, job)
            outcomes.append("won")
        except StepOutOfOrder as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_race_for_one_transition_has_exactly_one_winner_on_local_storage(tracker: Tracker) -> None:
    steps = dossier_steps(example_applicant(), "positive")
    _run(tracker, steps[:2])
    outcomes = _race(tracker, steps, 12)
    assert outcomes.count("won") == 1 and len(outcomes) == 12
    assert [e.payload["action"] for e in tracker.history(DOSSIER)].count("quote") == 1


def test_race_for_one_transition_has_exactly_one_winner_on_s3_with_redis(s3_store, redis_client) -> None:
    from workflow.locks import RedisDossierLock

    lock = RedisDossierLock(redis_client, namespace=f"test-{s3_store.bucket}")
    tracker = Tracker(Ledger(s3_store, lock=lock))
    steps = dossier_steps(example_applicant(), "positive")
    _run(tracker, steps[:2])
    outcomes = _race(tracker, steps, 12)
    assert outcomes.count("won") == 1 and len(outcomes) == 12
    assert [e.payload["action"] for e in tracker.history(DOSSIER)].count("quote") == 1


def _kmop_env(store_dir: Path) -> dict[str, str]:
    import os

    return {**os.environ, "KMOP_BROKER": "stub", "KMOP_STORAGE": "local", "KMOP_LOCAL_STORAGE_DIR": str(store_dir)}


def test_kmop_deadlines_lists_due_and_overdue(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    store_dir = tmp_path / "store"
    tracker = Tracker(Ledger(LocalFolderStore(store_dir)))
    steps = dossier_steps(example_applicant(), "conditional")
    first_certificate = next(i for i, s in enumerate(steps) if _name(s) == "registration_certificate")
    _run(tracker, steps[: first_certificate + 1])
    [deadline] = tracker.state(DOSSIER).deadlines

    def listed(on: str) -> list[dict[str, Any]]:
        result = subprocess.run([sys.executable, "-m", "kmop.cli", "deadlines", "--json", "--on", on],
                                capture_output=True, text=True, env=_kmop_env(store_dir), check=True)
        return json.loads(result.stdout)

    before = dt.date.fromisoformat(deadline.opens) - dt.timedelta(days=1)
    [upcoming] = listed(before.isoformat())
    assert (upcoming["dossier_id"], upcoming["name"], upcoming["status"]) == (DOSSIER, "follow_up_audit", "upcoming")
    assert listed(deadline.opens)[0]["status"] == "due"
    late = dt.date.fromisoformat(deadline.due) + dt.timedelta(days=1)
    assert listed(late.isoformat())[0]["status"] == "overdue"


def test_kmop_status_says_what_is_expected_next(tmp_path: Path) -> None:
    import subprocess
    import sys

    store_dir = tmp_path / "store"
    tracker = Tracker(Ledger(LocalFolderStore(store_dir)))
    _run(tracker, dossier_steps(example_applicant(), "positive")[:2])
    result = subprocess.run([sys.executable, "-m", "kmop.cli", "status", DOSSIER], capture_output=True,
                            text=True, env=_kmop_env(store_dir), check=True)
    assert "submitted" in result.stdout and "expected next: quote (by audit_firm)" in result.stdout
