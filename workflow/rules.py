"""What each transition requires of its data and what it changes in the dossier's state.

The rules come from docs/domain.md (sections A and D); those the sources leave open
are data of the kmop-norm version the document names (``workflow/norm_data``), each marked there
as our assumption:
- a first-time applicant must have passed the knowledge test before the sworn statement counts;
  an involvement it declares there (misuse of the kmo-portefeuille or a bankruptcy) is kept in
  the dossier as a disclosure (``disclosure_rule``): an audit report that covers integrity must
  assess it, and a decision on integrity cannot be positive or conditional without its own
  assessment;
- a follow-up (conditional) or additional (negative) cycle covers exactly the requirements not
  passed before;
- the audit report's proposed result per requirement follows from its scores (``result_rule``)
  and is kept in the dossier; the commission's result per requirement must be one the
  ``commission_rule`` allows for that proposal, motivated where it says so;
- the decision's outcome follows from the per-requirement results (``outcome_rule``): positive
  when every requirement is passed, deliberated or exempt; conditional when at most two are not
  passed and integrity (requirement 5) is not among them; negative otherwise; a decision after
  a follow-up or additional audit is positive or negative;
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
from .norm import Norm, RequirementResult, assess_report, load_norm
from .state import Deadline, Disclosure, DossierState, Proposal
from .steps import AUDIT_VISIT_HELD, KNOWLEDGE_TEST_PASSED, Cycle, Phase, Transition

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
    return state.with_changes(first_time=first_time, disclosure=_disclosure(data))


def _disclosure(data: dict[str, Any]) -> Disclosure | None:
    """The involvement the sworn statement declares, by the disclosure rule of the norm in effect
    on the application date; None when it declares none."""
    application = _get(data, "application")
    declarations = _get(data, "declarations")
    if False not in declarations.values():
        return None  # every statement affirmed: nothing declared, whatever the norm's rule
    day = _date(data, "application.date")
    rule = load_norm(on=day, field="data.application.date").disclosure_rule
    if declarations.get(rule.declaration, True) is not False:
        return None
    text = declarations.get(rule.text_field)
    if not isinstance(text, str) or not text.strip():
        raise InvalidJob(f"data.declarations.{rule.text_field}", "must say which involvement is declared")
    return Disclosure(text=text, declared_on=day.isoformat(), application_id=str(application.get("id", "")))


def _norm(data: dict[str, Any]) -> Norm:
    return load_norm(_get(data, "norm_version"), field="data.norm_version")


def _assessment_field(state: DossierState, data: dict[str, Any], field: str, needed: bool, what: str) -> None:
    """A disclosure's assessment: required where ``needed``, refused where the dossier has none."""
    given = data.get(field)
    if state.disclosure is None:
        if given is not None:
            raise InvalidJob(f"data.{field}", "the sworn statement of this dossier declares no involvement to assess")
        return
    if needed and not (isinstance(given, str) and given.strip()):
        raise InvalidJob(f"data.{field}", f"is required: the sworn statement of {state.disclosure.declared_on} "
                                          f"declares an involvement ({state.disclosure.text}) that {what}")


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
    return state.with_changes(cycle=cycle, in_scope=in_scope, visit_date=None, proposals={})


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
    norm = _norm(data)
    assessment = assess_report(norm, data)
    rule = norm.disclosure_rule
    covers = any(r.id == rule.requirement_id for r in assessment.requirements)
    _assessment_field(state, data, rule.report_field, covers,
                      f"the audit of requirement {rule.requirement_id} must assess")
    return state.with_changes(proposals={
        r.requirement_id: Proposal(r.result, r.deliberable, r.below_passing) for r in assessment.results})


def decide_outcome(results: dict[str, str], cycle: Cycle, norm: Norm | None = None) -> str:
    """The outcome the results give by the norm's outcome rule (by default the norm in effect today)."""
    return (norm or load_norm()).outcome_rule.outcome(results, cycle.value)


def _check_against_proposals(state: DossierState, norm: Norm, entries: list[dict[str, Any]]) -> None:
    if not state.proposals:
        raise InvalidJob("data.requirements", "the dossier holds no proposals of an audit report to decide on")
    for index, entry in enumerate(entries):
        requirement_id = entry["requirement_id"]
        proposal = state.proposals.get(requirement_id)
        if proposal is None:
            raise InvalidJob(f"data.requirements[{index}].requirement_id",
                             f"the audit report proposes no result for {requirement_id} "
                             f"(it covers {', '.join(state.proposals)})")
        norm.commission_rule.check(
            RequirementResult(requirement_id, proposal.result, proposal.below_passing, (), proposal.deliberable),
            entry["result"], entry.get("motivation", ""), f"data.requirements[{index}]")


def _decision(state: DossierState, data: dict[str, Any], today: dt.date) -> DossierState:
    entries = _get(data, "requirements")
    results = {entry["requirement_id"]: entry["result"] for entry in entries}
    if state.cycle is not Cycle.INITIAL and tuple(sorted(results)) != tuple(sorted(state.in_scope)):
        raise InvalidJob("data.requirements", f"must judge exactly the requirements in scope: {', '.join(state.in_scope)}")
    norm = _norm(data)
    _check_against_proposals(state, norm, entries)
    outcome = _get(data, "outcome")
    expected = decide_outcome(results, state.cycle, norm)
    if outcome != expected:
        raise InvalidJob("data.outcome", f"the requirement results give {expected!r}, not {outcome!r}")
    rule = norm.disclosure_rule
    _assessment_field(state, data, rule.decision_field,
                      rule.requirement_id in results and outcome in rule.decision_needs_assessment_for,
                      f"the commission must assess before a {outcome} decision")
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
    # Absent while a producer's job is checked: the pipeline takes the dossier's number
    # (workflow/registration_numbers.py) before the job is checked again and recorded.
    number = data.get("registration_number")
    if number is not None and state.registration_number not in (None, number):
        raise InvalidJob("data.registration_number",
                         f"the dossier is registered under {state.registration_number}; every certificate carries it")
    return state.with_changes(
        registration_number=number or state.registration_number,
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
