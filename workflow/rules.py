"""What each transition requires of its data and what it changes in the dossier's state.

The rules come from ../shared/domain/NOTES.md (sections A and D):
- a first-time applicant must have passed the knowledge test before the sworn statement counts;
- a follow-up (conditional) or additional (negative) cycle covers exactly the requirements not
  passed before;
- the decision's outcome follows from the per-requirement results: positive when every
  requirement is passed, deliberated or exempt; conditional when at most two are not passed and
  integrity (requirement 5) is not among them; negative otherwise; a decision after a follow-up
  or additional audit is positive or negative;
- conditional: the follow-up audit falls between 6 and 12 months after the decision; negative:
  the additional audit at the latest 6 months after the initial audit visit; the agency has 42
  days after a decision to issue the certificate (a timer that flags, never blocks);
- a registration lasts 5 years from its start (ending the day before the anniversary).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from kmop.errors import InvalidJob

from .dates import AGENCY_DECISION_DAYS, add_months, parse_date, registration_end
from .state import Deadline, DossierState
from .steps import AUDIT_VISIT_HELD, KNOWLEDGE_TEST_PASSED, Cycle, Phase, Transition

INTEGRITY_REQUIREMENT = "V5"
MAX_FAILED_FOR_CONDITIONAL = 2
NOT_PASSED = "niet_geslaagd"

FOLLOW_UP_AUDIT = "follow_up_audit"
ADDITIONAL_AUDIT = "additional_audit"
AGENCY_CERTIFICATE = "agency_certificate"


def _get(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise InvalidJob(f"data.{path}", "is required")
        value = value[part]
    return value


def _date(data: dict[str, Any], path: str) -> dt.date:
    return parse_date(_get(data, path), f"data.{path}")


def _without(deadlines: tuple[Deadline, ...], *names: str) -> tuple[Deadline, ...]:
    return tuple(d for d in deadlines if d.name not in names)


def _knowledge_test(state: DossierState, data: dict[str, Any], today: dt.date) -> DossierState:
    return state.with_changes(knowledge_test_passed=True)


def _sworn_statement(state: DossierState, data: dict[str, Any], today: dt.date) -> DossierState:
    first_time = bool(_get(data, "application.first_time"))
    if first_time and not state.knowledge_test_passed:
        raise InvalidJob(
            "data.application.first_time",
            "a first-time applicant must pass the knowledge test first (record knowledge_test_passed)",
        )
    return state.with_changes(first_time=first_time)


def _quote(state: DossierState, data: dict[str, Any], today: dt.date, cycle: Cycle) -> DossierState:
    audit_kind = _get(data, "audit_kind")
    if audit_kind != cycle.value:
        raise InvalidJob("data.audit_kind", f"must be {cycle.value!r} for this dossier, not {audit_kind!r}")
    in_scope: tuple[str, ...] = ()
    if cycle is not Cycle.INITIAL:
        in_scope = tuple(sorted(_get(data, "scope.requirement_ids")))
        if in_scope != tuple(sorted(state.failed_requirements)):
            raise InvalidJob(
                "data.scope.requirement_ids",
                f"must be exactly the requirements not passed before: {', '.join(state.failed_requirements)}",
            )
    return state.with_changes(cycle=cycle, in_scope=in_scope, visit_date=None)


def _visit(state: DossierState, data: dict[str, Any], today: dt.date) -> DossierState:
    visit = _date(data, "date")
    deadlines = state.deadlines
    if state.cycle is Cycle.ADDITIONAL:
        deadlines = _without(deadlines, ADDITIONAL_AUDIT)
    if state.cycle is Cycle.FOLLOW_UP:
        deadlines = _without(deadlines, FOLLOW_UP_AUDIT)
    return state.with_changes(
        visit_date=visit.isoformat(),
        initial_visit_date=state.initial_visit_date or visit.isoformat(),
        deadlines=deadlines,
    )


def _report(state: DossierState, data: dict[str, Any], today: dt.date) -> DossierState:
    if state.cycle is not Cycle.INITIAL:
        covered = tuple(sorted(_get(data, "requirement_ids")))
        if covered != tuple(sorted(state.in_scope)):
            raise InvalidJob(
                "data.requirement_ids",
                f"a follow-up report covers only the requirements in scope: {', '.join(state.in_scope)}",
            )
    return state


def decide_outcome(results: dict[str, str], cycle: Cycle) -> str:
    failed = sorted(r for r, result in results.items() if result == NOT_PASSED)
    if not failed:
        return "positive"
    if cycle is Cycle.INITIAL and len(failed) <= MAX_FAILED_FOR_CONDITIONAL and INTEGRITY_REQUIREMENT not in failed:
        return "conditional"
    return "negative"


def _decision(state: DossierState, data: dict[str, Any], today: dt.date) -> DossierState:
    results = {entry["requirement_id"]: entry["result"] for entry in _get(data, "requirements")}
    if state.cycle is not Cycle.INITIAL and tuple(sorted(results)) != tuple(sorted(state.in_scope)):
        raise InvalidJob("data.requirements", f"must judge exactly the requirements in scope: {', '.join(state.in_scope)}")
    outcome = _get(data, "outcome")
    expected = decide_outcome(results, state.cycle)
    if outcome != expected:
        raise InvalidJob("data.outcome", f"the requirement results give {expected!r}, not {outcome!r}")
    failed = tuple(sorted(r for r, result in results.items() if result == NOT_PASSED))
    if tuple(sorted(_get(data, "failed_requirements"))) != failed:
        raise InvalidJob("data.failed_requirements", f"must list the requirements not passed: {list(failed)}")
    if state.visit_date is not None and _date(data, "audit_date").isoformat() != state.visit_date:
        raise InvalidJob("data.audit_date", f"must be the recorded audit visit date {state.visit_date}")
    decided = _date(data, "meeting_date")
    deadlines = _without(state.deadlines, FOLLOW_UP_AUDIT, ADDITIONAL_AUDIT, AGENCY_CERTIFICATE)
    if outcome == "conditional":
        opens, due = add_months(decided, 6), add_months(decided, 12)
        _expect_date(data, "follow_up_from", opens)
        _expect_date(data, "follow_up_until", due)
        deadlines += (Deadline(FOLLOW_UP_AUDIT, due.isoformat(), opens.isoformat(),
                               "follow-up audit of the requirements not passed"),)
    if outcome == "negative" and state.cycle is Cycle.INITIAL:
        if state.initial_visit_date is None:
            raise InvalidJob("data.outcome", "no initial audit visit is recorded")
        due = add_months(dt.date.fromisoformat(state.initial_visit_date), 6)
        _expect_date(data, "additional_audit_by", due)
        deadlines += (Deadline(ADDITIONAL_AUDIT, due.isoformat(), None,
                               "additional audit of the failed requirements"),)
    if outcome in ("positive", "conditional"):
        deadlines += (Deadline(AGENCY_CERTIFICATE, (decided + dt.timedelta(days=AGENCY_DECISION_DAYS)).isoformat(),
                               None, "the agency issues the registration certificate"),)
    phase = {
        "positive": Phase.DECIDED_POSITIVE,
        "conditional": Phase.DECIDED_CONDITIONAL,
        "negative": Phase.DECIDED_NEGATIVE if state.cycle is Cycle.INITIAL else (
            Phase.LAPSED if state.cycle is Cycle.FOLLOW_UP else Phase.REJECTED),
    }[outcome]
    if phase in (Phase.LAPSED, Phase.REJECTED):
        deadlines = ()
    return state.with_changes(phase=phase, outcome=outcome, failed_requirements=failed,
                              decision_date=decided.isoformat(), deadlines=deadlines)


def _expect_date(data: dict[str, Any], field: str, expected: dt.date) -> None:
    given = _date(data, field)
    if given != expected:
        raise InvalidJob(f"data.{field}", f"must be {expected.isoformat()} (by the procedure's rule), not {given.isoformat()}")


def _certificate(state: DossierState, data: dict[str, Any], today: dt.date) -> DossierState:
    status = _get(data, "status")
    expected_status = "conditional" if state.phase is Phase.DECIDED_CONDITIONAL else "registered"
    if status != expected_status:
        raise InvalidJob("data.status", f"must be {expected_status!r} after a {state.outcome} decision")
    valid_from = _date(data, "valid_from")
    end = registration_end(valid_from)
    _expect_date(data, "valid_until", end)
    return state.with_changes(
        registration_number=_get(data, "registration_number"),
        valid_from=valid_from.isoformat(),
        valid_until=end.isoformat(),
        deadlines=_without(state.deadlines, AGENCY_CERTIFICATE),
    )


_RULES: dict[str, Callable[[DossierState, dict[str, Any], dt.date], DossierState]] = {
    KNOWLEDGE_TEST_PASSED: _knowledge_test,
    "sworn_statement": _sworn_statement,
    AUDIT_VISIT_HELD: _visit,
    "audit_report": _report,
    "follow_up_audit_report": _report,
    "commission_decision": _decision,
    "follow_up_decision": _decision,
    "registration_certificate": _certificate,
}


def apply(transition: Transition, state: DossierState, data: dict[str, Any], today: dt.date) -> DossierState:
    """The state after ``transition``; raises ``InvalidJob`` when the data breaks a rule."""
    if transition.action == "quote":
        assert transition.starts_cycle is not None
        state = _quote(state, data, today, transition.starts_cycle)
    else:
        audit_kind = data.get("audit_kind")
        if audit_kind is not None and audit_kind != state.cycle.value:
            raise InvalidJob("data.audit_kind", f"must be {state.cycle.value!r} in this audit cycle, not {audit_kind!r}")
        rule = _RULES.get(transition.action)
        if rule is not None:
            state = rule(state, data, today)
    if transition.to is not None:
        state = state.with_changes(phase=transition.to)
    return state
