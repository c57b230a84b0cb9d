"""A whole registration dossier as a sequence of steps, built from an applicant's data.

Used by the demo and the tests. Every value a document prints comes from three sources and
nowhere else: the applicant (``kmop/examples/applicant.json`` documents the input, checked by
``applicant.schema.json`` beside it), the audit firm's data set (``audit_firm.json``: the firm,
its auditors and commission) and the scenario's audit findings (``audit_findings.json``: per
indicator a passing and a failing text with the scores each goes with, so that a finding always
agrees with its scores). The kinds' ``example.json`` files document the kinds; the dossier does
not read them.

The timeline ends on ``today`` (the clock is the caller's): it is computed backwards so that
the last certificate is dated ``today`` and every earlier document before it, in step order.
Scenarios:

- ``positive``: every requirement passed; registered for 5 years;
- ``conditional``: requirement V3 (client satisfaction) not passed; conditional registration,
  a follow-up audit of V3 within 6-12 months that passes, then full registration;
- ``negative``: V3 and V5 (integrity) not passed; an additional audit of both within 6 months
  of the initial audit that passes, then registration.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from kmop.errors import InvalidJob
from kmop.jobs import DocumentJob, parse_job
from signing.roles import Role
from templates.catalog import TEMPLATES_DIR
from templates.render import dutch_date
from templates.validation import format_checker, inline_refs
from workflow.dates import add_months, registration_end
from workflow.norm import load_norm
from workflow.steps import AUDIT_VISIT_HELD, KNOWLEDGE_TEST_PASSED

SCENARIOS = ("positive", "conditional", "negative")
_FAILED = {"positive": (), "conditional": ("V3",), "negative": ("V3", "V5")}
_BRUSSELS = ZoneInfo("Europe/Brussels")
_DECLARATIONS = {
    "has_enterprise_number": True,
    "not_an_audit_firm": True,
    "accepts_audit_and_cost": True,
    "information_complete_and_correct": True,
    "no_misuse_or_bankruptcy": True,
    "keeps_project_dossiers": True,
    "accepts_agency_checks": True,
}
# Dates the timeline sets; given in the input they would contradict it.
_TIMELINE_FIELDS = ("application.date", "application.knowledge_test", "signatory.date")
_BELGIUM = {"belgië", "belgie", "belgium", "belgique", "belgien"}
_MONTHS_NL = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september",
              "oktober", "november", "december")
_SAMPLE_INITIAL = 6
_SAMPLE_LATER = 2


@dataclass(frozen=True)
class Fact:
    dossier_id: str
    name: str
    role: Role
    data: dict[str, Any]
    idempotency_key: str


Step = DocumentJob | Fact


def brussels_today() -> dt.date:
    """The default clock of the demo: today where the documents are issued."""
    return dt.datetime.now(_BRUSSELS).date()


def _demo_data(name: str) -> dict[str, Any]:
    return json.loads(resources.files("kmop.examples").joinpath(name).read_text("utf-8"))


@cache
def _input_validator() -> Draft202012Validator:
    common = json.loads((TEMPLATES_DIR / "common.schema.json").read_text(encoding="utf-8"))
    schema = inline_refs(_demo_data("applicant.schema.json"), {common["$id"]: common})
    return Draft202012Validator(schema, format_checker=format_checker)


def _input_field(error: ValidationError) -> str:
    path = "input" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    if error.validator == "required" and isinstance(error.validator_value, list):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            path += f".{missing[0]}"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(str(key) for key in error.instance if key not in allowed)
        if extra:
            path += f".{extra[0]}"
    return path


def _require(applicant: Any) -> dict[str, Any]:
    if not isinstance(applicant, dict):
        raise InvalidJob("input", "must be a JSON object")
    for dotted in _TIMELINE_FIELDS:
        holder: Any = applicant
        *parents, last = dotted.split(".")
        for part in parents:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and last in holder:
            raise InvalidJob(f"input.{dotted}", "is set by the demo's timeline (it ends on the demo's today), "
                                                "not by the input")
    error = best_match(_input_validator().iter_errors(applicant))
    if error is not None:
        field = _input_field(error)
        if error.validator == "required":
            reason = "is required"
        elif error.validator == "additionalProperties":
            reason = "is not a field of the demo input"
        else:
            reason = error.message
        raise InvalidJob(field, reason)
    return applicant


# --- the timeline -----------------------------------------------------------------------------


def _easter(year: int) -> dt.date:
    """Easter Sunday (the anonymous Gregorian computus)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * n + 114, 31)
    return dt.date(year, month, day + 1)


def _holidays(year: int) -> set[dt.date]:
    """Belgium's public holidays."""
    easter = _easter(year)
    fixed = {(1, 1), (5, 1), (7, 21), (8, 15), (11, 1), (11, 11), (12, 25)}
    return {dt.date(year, m, d) for m, d in fixed} | {easter + dt.timedelta(days=n) for n in (1, 39, 50)}


def _weekday(day: dt.date) -> dt.date:
    """The audit firm's documents, visits and commission meetings fall on working days."""
    while day.weekday() >= 5 or day in _holidays(day.year):
        day += dt.timedelta(days=1)
    return day


@dataclass(frozen=True)
class CycleDates:
    quoted: dt.date
    accepted: dt.date
    packed: dt.date
    return_by: dt.date
    visit: dt.date
    meeting: dt.date

    @classmethod
    def starting(cls, quoted: dt.date, visit: dt.date) -> CycleDates:
        quoted, visit = _weekday(quoted), _weekday(visit)
        return cls(quoted=quoted, accepted=quoted + dt.timedelta(days=3), packed=_weekday(quoted + dt.timedelta(days=10)),
                   return_by=visit - dt.timedelta(days=7), visit=visit,
                   meeting=_weekday(visit + dt.timedelta(days=14)))


@dataclass(frozen=True)
class Timeline:
    """Every date of the dossier, in step order; ``issued`` is the last certificate's date."""

    application: dt.date
    knowledge_test: dt.date
    initial: CycleDates
    registered: dt.date | None  # the first certificate (positive or conditional decision)
    later: CycleDates | None  # the follow-up or additional audit
    issued: dt.date

    @staticmethod
    def _earliest_end(scenario: str, start: dt.date) -> tuple[CycleDates, dt.date | None, CycleDates | None, dt.date]:
        initial = CycleDates.starting(start + dt.timedelta(days=7), start + dt.timedelta(days=56))
        if scenario == "positive":
            return initial, None, None, initial.meeting + dt.timedelta(days=21)
        if scenario == "conditional":
            registered = initial.meeting + dt.timedelta(days=21)
            visit = _weekday(add_months(initial.meeting, 6) + dt.timedelta(days=7))
            later = CycleDates.starting(visit - dt.timedelta(days=35), visit)
            return initial, registered, later, later.meeting + dt.timedelta(days=14)
        later = CycleDates.starting(initial.meeting + dt.timedelta(days=10), add_months(initial.visit, 3))
        return initial, None, later, later.meeting + dt.timedelta(days=21)

    @classmethod
    def ending(cls, scenario: str, today: dt.date) -> Timeline:
        """The latest timeline whose last certificate can be issued on ``today``."""
        start = today - dt.timedelta(days=400)
        while cls._earliest_end(scenario, start)[3] > today:
            start -= dt.timedelta(days=1)
        while cls._earliest_end(scenario, start + dt.timedelta(days=1))[3] <= today:
            start += dt.timedelta(days=1)
        initial, registered, later, _ = cls._earliest_end(scenario, start)
        if scenario == "negative":
            registered = None
        return cls(application=start, knowledge_test=start - dt.timedelta(days=5), initial=initial,
                   registered=registered, later=later, issued=today)


# --- words ------------------------------------------------------------------------------------


def _and(items: Iterable[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " en " + items[-1]


def _month(day: dt.date) -> str:
    return f"{_MONTHS_NL[day.month - 1]} {day.year}"


def _requirements_text(ids: list[str]) -> str:
    return ("vereiste " if len(ids) == 1 else "vereisten ") + _and(ids)


# --- the dossier ------------------------------------------------------------------------------


class _Builder:
    def __init__(self, applicant: dict[str, Any], scenario: str, today: dt.date) -> None:
        if scenario not in SCENARIOS:
            raise InvalidJob("scenario", f"must be one of {', '.join(SCENARIOS)}")
        self.applicant = applicant
        self.scenario = scenario
        self.dossier_id = applicant["dossier_id"]
        self.dates = Timeline.ending(scenario, today)
        self.start = self.dates.application
        application = applicant["application"]
        self.application_ids = [application["id"]]
        self.services = [application["service"]]
        self.provider = applicant["provider"]
        self.signatory = applicant["signatory"]
        self.firm = _demo_data("audit_firm.json")
        self.findings = _demo_data("audit_findings.json")
        self.steps: list[Step] = []
        self.counter = 0

    # -- what every document of the audit firm names -----------------------------------------

    def job(self, kind: str, data: dict[str, Any], cycle: str = "initial") -> None:
        self.counter += 1
        self.steps.append(parse_job({
            "dossier_id": self.dossier_id,
            "kind": kind,
            "data": data,
            "idempotency_key": f"{self.dossier_id}:{self.counter:02d}:{kind}:{cycle}",
        }))

    def fact(self, name: str, role: Role, data: dict[str, Any]) -> None:
        self.counter += 1
        self.steps.append(Fact(self.dossier_id, name, role, data, f"{self.dossier_id}:{self.counter:02d}:{name}"))

    def provider_block(self) -> dict[str, Any]:
        return {key: copy.deepcopy(self.provider[key])
                for key in ("name", "legal_form", "enterprise_number", "registered_office") if key in self.provider}

    def number(self, kind: str, day: dt.date, cycle: int) -> str:
        """The audit firm's number of one of its documents: its own per dossier (the dossier id's
        digest) and audit cycle, so two demo dossiers do not share numbers."""
        digest = int(hashlib.sha256(self.dossier_id.encode()).hexdigest()[:8], 16) % 9000 + 1000
        return f"{self.firm['number_prefix']}-{kind}-{day.year}-{digest}{cycle}"

    def common(self, on: dt.date) -> dict[str, Any]:
        return {"audit_firm": copy.deepcopy(self.firm["audit_firm"]), "provider": self.provider_block(),
                "application_ids": list(self.application_ids), "services": list(self.services),
                "norm_version": load_norm(on=on, field="date").version}

    def sites(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.applicant["sites"])

    def attendees(self, in_scope: list[str]) -> list[dict[str, str]]:
        """The applicant's people answering for a requirement in scope, and the signatory, who
        opens and closes the visit and approves the report."""
        signatory, people = self.signatory, self.applicant["people"]
        for requirement in in_scope:
            if not any(requirement in person["requirements"] for person in people):
                raise InvalidJob("input.people", f"no one answers for requirement {requirement}, which the "
                                                 "audit covers")
        attending = []
        if not any(person["name"] == signatory["name"] for person in people):
            attending.append({"role": signatory["capacity"], "name": signatory["name"],
                              "reason": "opening en slotvergadering, goedkeuring van het rapport"})
        for person in people:
            answers = [r for r in in_scope if r in person["requirements"]]
            parts = []
            if person["name"] == signatory["name"]:
                parts.append("opening en slotvergadering, goedkeuring van het rapport")
            if answers:
                parts.append(_requirements_text(answers))
            if parts:
                attending.append({"role": person["function"], "name": person["name"], "reason": "; ".join(parts)})
        return attending

    def words(self) -> dict[str, str]:
        """The dossier's values the findings' texts name."""
        application = self.applicant["application"]
        count = self.applicant["people_delivering_service"]
        knowledge_test = ""
        if application["first_time"]:
            knowledge_test = f"; de kennistest werd op {dutch_date(self.dates.knowledge_test)} afgelegd"
        return {
            "service": application["service"],
            "themes": _and(application["themes"]),
            "activities": "opleidingen" if application["service"] == "opleiding" else "adviesopdrachten",
            "people_delivering": f"{count} persoon levert de dienst" if count == 1
            else f"{count} personen leveren de dienst",
            "signatory": self.signatory["name"],
            "signatory_function": self.signatory["capacity"],
            "knowledge_test": knowledge_test,
        }

    # -- one audit cycle -----------------------------------------------------------------------

    def cycle(self, audit_kind: str, dates: CycleDates, failed: tuple[str, ...], in_scope: list[str],
              initial: dict[str, str] | None) -> dict[str, Any]:
        """Quote to decision; returns the decision's number and date and the report's number."""
        cycle_number = 1 if audit_kind == "initial" else 2
        norm = load_norm(on=dates.quoted, field="date")
        judged = in_scope or [r.id for r in norm.requirements]
        quote_number = self.number("OFF", dates.quoted, cycle_number)
        structure_sites = [s["address"]["country"].casefold() in _BELGIUM for s in self.applicant["sites"]]
        quote = {
            "quote_number": quote_number, "date": dates.quoted.isoformat(),
            "validity_days": self.firm["quote_validity_days"], **self.common(dates.quoted),
            "contact": {"name": self.provider["contact"]["name"], "role": self.provider["contact"]["function"]},
            "audit_kind": audit_kind, "scope": {"services": list(self.services)},
            "structure": {"belgian_sites": max(1, sum(structure_sites)),
                          "foreign_sites": len(structure_sites) - sum(structure_sites),
                          "people": self.applicant["people_delivering_service"], "exemptions": []},
        }
        del quote["services"]
        if initial:
            quote["previous_decision_number"] = initial["decision_number"]
            quote["scope"]["requirement_ids"] = list(in_scope)
        self.job("quote", quote, audit_kind)
        self.job("quote_acceptance", {
            "quote_number": quote_number,
            "accepted_by": {"name": self.signatory["name"], "capacity": self.signatory["capacity"]},
            "date": dates.accepted.isoformat(),
        }, audit_kind)

        attendees = self.attendees(judged)
        visit = {"dates": [dates.visit.isoformat()], "sites": self.sites()}
        pack = {
            "pack_number": self.number("VBP", dates.packed, cycle_number), "date": dates.packed.isoformat(),
            "quote_number": quote_number, **self.common(dates.packed), "audit_kind": audit_kind,
            "requirement_ids": list(judged), "visit": visit, "auditors": copy.deepcopy(self.firm["auditors"]),
            "attendees": attendees, "return_by": dates.return_by.isoformat(),
            "remarks": self.firm["pack_remarks"],
        }
        if initial:
            since = _month(dt.date.fromisoformat(initial["decision_date"]))
            pack["additional_documents"] = [
                f"Bewijsstukken van de werkwijze voor vereiste {r.id} ({r.title}) sinds {since}"
                for r in norm.requirements_in(in_scope, "scope")]
        else:
            pack["additional_documents"] = list(self.firm["pack_additional_documents"])
        self.job("preparation_pack", pack, audit_kind)
        self.fact(AUDIT_VISIT_HELD, Role.AUDITOR, {"date": dates.visit.isoformat()})

        report_kind = "audit_report" if audit_kind == "initial" else "follow_up_audit_report"
        report_number = self.number("AR", dates.visit, cycle_number)
        findings = self.scored_findings(norm, judged, failed)
        report = {
            "report_number": report_number, "audit_kind": audit_kind, "quote_number": quote_number,
            **self.common(dates.visit), "visit": visit, "auditors": copy.deepcopy(self.firm["auditors"]),
            "persons_interviewed": [{"name": a["name"], "role": a["role"]} for a in attendees],
            "scope_validated": True,
            "documents_presented": self.documents_presented(dates, in_scope, initial),
            "sampled_dossiers": self.sampled_dossiers(initial is not None),
            "findings": findings, "exemptions": [],
            "provider_approval": {"name": self.signatory["name"], "role": self.signatory["capacity"],
                                  "date": dates.visit.isoformat()},
        }
        rule = norm.disclosure_rule
        if self.declares_involvement(rule.declaration) and rule.requirement_id in judged:
            report[rule.report_field] = self.findings["disclosure_assessment"]["report"][
                "fail" if rule.requirement_id in failed else "pass"]
        if initial:
            report["requirement_ids"] = list(in_scope)
            report["initial"] = {"report_number": initial["report_number"],
                                 "decision_number": initial["decision_number"]}
        self.job(report_kind, report, audit_kind)

        decision_kind = "commission_decision" if audit_kind == "initial" else "follow_up_decision"
        decision_number = self.number("AC", dates.meeting, cycle_number)
        outcome = "positive" if not failed else ("conditional" if self.scenario == "conditional" else "negative")
        decision = {
            "decision_number": decision_number, "meeting_date": dates.meeting.isoformat(),
            **self.common(dates.meeting), "audit_report_number": report_number,
            "audit_date": dates.visit.isoformat(), "members": copy.deepcopy(self.firm["commission"]),
            "requirements": [self.requirement_decision(r, findings, failed) for r in judged],
            "outcome": outcome, "failed_requirements": list(failed),
        }
        if initial:
            decision.update(audit_kind=audit_kind, requirement_ids=list(in_scope),
                            initial={"report_number": initial["report_number"],
                                     "decision_number": initial["decision_number"]})
        if self.declares_involvement(rule.declaration) and rule.requirement_id in judged \
                and outcome in rule.decision_needs_assessment_for:
            decision[rule.decision_field] = self.findings["disclosure_assessment"]["decision"]
        if outcome == "conditional":
            decision["follow_up_from"] = add_months(dates.meeting, 6).isoformat()
            decision["follow_up_until"] = add_months(dates.meeting, 12).isoformat()
        if outcome == "negative":
            decision["additional_audit_by"] = add_months(dates.visit, 6).isoformat()
        self.job(decision_kind, decision, audit_kind)
        return {"report_number": report_number, "decision_number": decision_number,
                "decision_date": dates.meeting.isoformat(), **{k: decision[k] for k in decision
                                                               if k in ("follow_up_from", "follow_up_until")}}

    # -- the audit's contents ------------------------------------------------------------------

    def declares_involvement(self, declaration: str) -> bool:
        """The sworn statement declares an involvement in misuse or a bankruptcy: the reports and
        decisions that cover its requirement assess it (the norm's disclosure rule)."""
        return (self.applicant.get("declarations") or _DECLARATIONS).get(declaration) is False

    def scored_findings(self, norm: Any, judged: list[str], failed: tuple[str, ...]) -> list[dict[str, Any]]:
        words = self.words()
        findings = []
        for requirement in norm.requirements_in(judged, "scope"):
            for indicator in requirement.indicators:
                texts = self.findings["indicators"][indicator.id]
                chosen = texts.get("fail", texts["pass"]) if requirement.id in failed else texts["pass"]
                findings.append({"indicator_id": indicator.id, "conformity": chosen["conformity"],
                                 "demonstrability": chosen["demonstrability"],
                                 "finding": chosen["finding"].format_map(words)})
        return findings

    def requirement_decision(self, requirement: str, findings: list[dict[str, Any]],
                             failed: tuple[str, ...]) -> dict[str, str]:
        if requirement not in failed:
            return {"requirement_id": requirement, "result": "geslaagd"}
        scores = ", ".join(f"{f['indicator_id']} ({f['conformity']}/{f['demonstrability']})" for f in findings
                           if f["indicator_id"].split(".")[0] == requirement
                           and not {f["conformity"], f["demonstrability"]} <= {"T", "V"})
        summary = self.findings["requirements"][requirement]["not_met"]
        motivation = self.findings["motivation"]["not_met"].format(summary=summary[0].upper() + summary[1:],
                                                                   scores=scores)
        return {"requirement_id": requirement, "result": "niet_geslaagd", "motivation": motivation}

    def documents_presented(self, dates: CycleDates, in_scope: list[str],
                            initial: dict[str, str] | None) -> list[dict[str, Any]]:
        """What the applicant showed at the visit, every period in it ending before the visit."""
        visit = dates.visit
        if initial:
            since = _month(dt.date.fromisoformat(initial["decision_date"]))
            until = _month(add_months(visit.replace(day=1), -1))
            texts = [text.format(since=since, until=until)
                     for r in in_scope for text in self.findings["requirements"][r]["evidence"]]
        else:
            last_accounts = visit.year - 1 if visit.month > 6 else visit.year - 2
            values = {**self.words(), "seats_from": str(visit.year - 3), "seats_until": str(visit.year),
                      "accounts": _and([str(last_accounts - 2), str(last_accounts - 1), str(last_accounts)]),
                      "projects_from": _month(add_months(visit.replace(day=1), -24)),
                      "projects_until": _month(add_months(visit.replace(day=1), -1))}
            texts = [text.format_map(values) for text in self.findings["initial_documents"]]
        return [{"document": text, "presented": True} for text in texts]

    def sampled_dossiers(self, later: bool) -> list[dict[str, Any]]:
        dossiers = self.applicant["project_dossiers"]
        chosen = dossiers[-_SAMPLE_LATER:] if later else dossiers[:_SAMPLE_INITIAL]
        return [{**copy.deepcopy(d), "service": self.services[0]} for d in chosen]

    # -- the certificates ----------------------------------------------------------------------

    def certificate(self, status: str, valid_from: dt.date, issued: dt.date, initial: dict[str, str],
                    later: tuple[str, dict[str, str]] | None, conditions: dict[str, Any] | None,
                    cycle: str) -> None:
        service = self.services[0]
        firm = self.firm["audit_firm"]
        certificate: dict[str, Any] = {
            "service": service, "themes": list(self.applicant["application"]["themes"]),
            "provider": self.provider_block(), "status": status, "valid_from": valid_from.isoformat(),
            "valid_until": registration_end(valid_from).isoformat(),
            "basis": {"audit_report_number": initial["report_number"], "decision_number": initial["decision_number"],
                      "decision_date": initial["decision_date"],
                      "audit_firm": {k: firm[k] for k in ("name", "appointed_as", "enterprise_number")}},
            "issued_at": issued.isoformat(),
        }
        if later:
            kind, result = later
            certificate["basis"]["later_audit"] = {"audit_kind": kind, "report_number": result["report_number"],
                                                   "decision_number": result["decision_number"],
                                                   "decision_date": result["decision_date"]}
        if conditions:
            certificate["conditions"] = conditions
        self.job("registration_certificate", certificate, cycle)

    def build(self) -> list[Step]:
        application = self.applicant["application"]
        dates = self.dates
        if application["first_time"]:
            self.fact(KNOWLEDGE_TEST_PASSED, Role.APPLICANT, {"passed_on": dates.knowledge_test.isoformat()})
        provider = copy.deepcopy(self.provider)
        provider["contact"].pop("function", None)
        knowledge_test = {"passed": True, "passed_on": dates.knowledge_test.isoformat()} \
            if application["first_time"] else {"passed": False}
        self.job("sworn_statement", {
            "application": {**copy.deepcopy(application), "date": dates.application.isoformat(),
                            "knowledge_test": knowledge_test},
            "provider": provider,
            "declarations": copy.deepcopy(self.applicant.get("declarations") or _DECLARATIONS),
            "signatory": {**copy.deepcopy(self.signatory), "date": dates.application.isoformat()},
        })
        failed = _FAILED[self.scenario]
        initial = self.cycle("initial", dates.initial, failed, [], None)
        if self.scenario == "positive":
            self.certificate("registered", dates.issued, dates.issued, initial, None, None, "initial")
        elif self.scenario == "conditional":
            assert dates.registered is not None and dates.later is not None
            self.certificate("conditional", dates.registered, dates.registered, initial, None, {
                "failed_requirements": list(failed),
                "follow_up_from": initial["follow_up_from"],
                "follow_up_until": initial["follow_up_until"],
            }, "initial")
            later = self.cycle("follow_up", dates.later, (), list(failed), initial)
            self.certificate("registered", dates.registered, dates.issued, initial, ("follow_up", later), None,
                             "follow_up")
        else:
            assert dates.later is not None
            later = self.cycle("additional", dates.later, (), list(failed), initial)
            self.certificate("registered", dates.issued, dates.issued, initial, ("additional", later), None,
                             "additional")
        return self.steps


def dossier_steps(applicant: Any, scenario: str = "positive", today: dt.date | None = None) -> list[Step]:
    """Every step of the dossier, in order, its timeline ending on ``today`` (default: today in
    Brussels); raises ``InvalidJob`` naming the bad input field."""
    return _Builder(_require(applicant), scenario, today or brussels_today()).build()
