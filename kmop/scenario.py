"""A whole registration dossier as a sequence of steps, built from an applicant's data.

Used by the demo and the tests. The document data starts from each kind's documented example
(``templates/<kind>/example.json``) with the applicant's identity, the dates of this dossier's
timeline and the scenario's audit results put in. Scenarios:

- ``positive``: every requirement passed; registered for 5 years;
- ``conditional``: requirement V3 (client satisfaction) not passed; conditional registration,
  a follow-up audit of V3 within 6-12 months that passes, then full registration;
- ``negative``: V3 and V5 (integrity) not passed; an additional audit of both within 6 months
  of the initial audit that passes, then registration.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from kmop.errors import InvalidJob
from kmop.jobs import DocumentJob, parse_job
from signing.roles import Role
from templates.catalog import get_kind
from workflow.dates import add_months, registration_end
from workflow.steps import AUDIT_VISIT_HELD, KNOWLEDGE_TEST_PASSED

SCENARIOS = ("positive", "conditional", "negative")
_FAILED = {"positive": (), "conditional": ("V3",), "negative": ("V3", "V5")}
_APPLICANT_FIELDS = ("dossier_id", "application", "provider", "signatory")
_DECLARATIONS = {
    "has_enterprise_number": True,
    "not_an_audit_firm": True,
    "accepts_audit_and_cost": True,
    "information_complete_and_correct": True,
    "no_misuse_or_bankruptcy": True,
    "keeps_project_dossiers": True,
    "accepts_agency_checks": True,
}


@dataclass(frozen=True)
class Fact:
    dossier_id: str
    name: str
    role: Role
    data: dict[str, Any]
    idempotency_key: str


Step = DocumentJob | Fact


def _example(kind: str) -> dict[str, Any]:
    path = get_kind(kind).directory / "example.json"
    return json.loads(path.read_text(encoding="utf-8"))


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


class _Builder:
    def __init__(self, applicant: dict[str, Any], scenario: str) -> None:
        if scenario not in SCENARIOS:
            raise InvalidJob("scenario", f"must be one of {', '.join(SCENARIOS)}")
        self.applicant = applicant
        self.scenario = scenario
        self.dossier_id = applicant["dossier_id"]
        self.provider = applicant["provider"]
        application = applicant["application"]
        self.application_ids = [application["id"]]
        self.services = [application["service"]]
        try:
            self.start = dt.date.fromisoformat(application["date"])
        except (TypeError, ValueError):
            raise InvalidJob("data.application.date", "is not a date (YYYY-MM-DD)") from None
        self.steps: list[Step] = []
        self.counter = 0

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

    def common(self, kind: str) -> dict[str, Any]:
        data = copy.deepcopy(_example(kind))
        if "provider" in data:
            data["provider"] = {k: copy.deepcopy(self.provider[k]) for k in data["provider"] if k in self.provider}
        for key, value in (("application_ids", self.application_ids), ("services", self.services)):
            if key in data:
                data[key] = list(value)
        if "scope" in data and "services" in data["scope"]:
            data["scope"]["services"] = list(self.services)
        return data

    # -- one audit cycle -------------------------------------------------------------------

    def cycle(self, audit_kind: str, quoted: dt.date, visit: dt.date, failed: tuple[str, ...],
              in_scope: tuple[str, ...], previous_decision: str | None) -> tuple[str, str, dt.date]:
        suffix = {"initial": "", "follow_up": "-F", "additional": "-B"}[audit_kind]
        quote_number = f"CU-OFF-{quoted.year}-0457{suffix}"
        quote = self.common("quote")
        quote.update(quote_number=quote_number, date=quoted.isoformat(), audit_kind=audit_kind)
        if previous_decision:
            quote["previous_decision_number"] = previous_decision
            quote["scope"]["requirement_ids"] = list(in_scope)
        self.job("quote", quote, audit_kind)
        self.job("quote_acceptance", {
            "quote_number": quote_number,
            "accepted_by": {"name": self.applicant["signatory"]["name"],
                            "capacity": self.applicant["signatory"]["capacity"]},
            "date": (quoted + dt.timedelta(days=3)).isoformat(),
        }, audit_kind)

        pack = self.common("preparation_pack")
        pack.update(pack_number=f"CU-VBP-{quoted.year}-0457{suffix}", quote_number=quote_number,
                    date=(quoted + dt.timedelta(days=10)).isoformat(), audit_kind=audit_kind,
                    requirement_ids=list(in_scope or ("V1", "V2", "V3", "V4", "V5")),
                    return_by=(visit - dt.timedelta(days=7)).isoformat())
        pack["visit"]["dates"] = [visit.isoformat()]
        self.job("preparation_pack", pack, audit_kind)
        self.fact(AUDIT_VISIT_HELD, Role.AUDITOR, {"date": visit.isoformat()})

        report_kind = "audit_report" if audit_kind == "initial" else "follow_up_audit_report"
        report = self.common(report_kind)
        report_number = f"CU-AR-{visit.year}-0012{suffix}"
        report.update(report_number=report_number, quote_number=quote_number, audit_kind=audit_kind)
        report["visit"]["dates"] = [visit.isoformat()]
        report["provider_approval"]["date"] = visit.isoformat()
        if audit_kind != "initial":
            report["requirement_ids"] = list(in_scope)
            report["initial"] = {"report_number": "CU-AR-0012", "decision_number": previous_decision}
            report["findings"] = [f for f in _example("audit_report")["findings"]
                                  if f["indicator_id"].split(".")[0] in in_scope]
        for finding in report["findings"]:
            failing = finding["indicator_id"].split(".")[0] in failed
            finding["conformity"], finding["demonstrability"] = ("B", "G") if failing else ("T", "T")
        self.job(report_kind, report, audit_kind)

        decision_kind = "commission_decision" if audit_kind == "initial" else "follow_up_decision"
        meeting = visit + dt.timedelta(days=14)
        decision = self.common(decision_kind)
        decision_number = f"CU-AC-{meeting.year}-0020{suffix}"
        judged = in_scope or ("V1", "V2", "V3", "V4", "V5")
        decision.update(
            decision_number=decision_number, meeting_date=meeting.isoformat(), audit_date=visit.isoformat(),
            audit_report_number=report_number, failed_requirements=list(failed),
            requirements=[
                {"requirement_id": r, "result": "niet_geslaagd",
                 "motivation": "De indicatoren van deze vereiste scoren B of G op beide assen."}
                if r in failed else {"requirement_id": r, "result": "geslaagd"}
                for r in judged
            ],
        )
        for key in ("follow_up_from", "follow_up_until", "additional_audit_by", "remarks"):
            decision.pop(key, None)
        if audit_kind != "initial":
            decision.update(audit_kind=audit_kind, requirement_ids=list(in_scope),
                            initial={"report_number": "CU-AR-0012", "decision_number": previous_decision})
        outcome = "positive" if not failed else ("conditional" if self.scenario == "conditional" else "negative")
        decision["outcome"] = outcome
        if outcome == "conditional":
            decision["follow_up_from"] = add_months(meeting, 6).isoformat()
            decision["follow_up_until"] = add_months(meeting, 12).isoformat()
        if outcome == "negative":
            decision["additional_audit_by"] = add_months(visit, 6).isoformat()
        self.job(decision_kind, decision, audit_kind)
        return decision_number, report_number, meeting

    def certificate(self, status: str, valid_from: dt.date, decision_number: str, report_number: str,
                    conditions: dict[str, Any] | None, cycle: str) -> None:
        certificate = self.common("registration_certificate")
        service = self.services[0]
        certificate.update(
            registration_number=f"DV.{'A' if service == 'advies' else 'O'}{int(self.start.strftime('%y%m%d')) % 1_000_000:06d}",
            service=service, status=status, valid_from=valid_from.isoformat(),
            valid_until=registration_end(valid_from).isoformat(), issued_at=valid_from.isoformat(),
        )
        certificate["basis"].update(audit_report_number=report_number, decision_number=decision_number)
        certificate.pop("conditions", None)
        if conditions:
            certificate["conditions"] = conditions
        self.job("registration_certificate", certificate, cycle)

    def build(self) -> list[Step]:
        application = self.applicant["application"]
        if application.get("first_time"):
            passed_on = application.get("knowledge_test", {}).get("passed_on", application["date"])
            self.fact(KNOWLEDGE_TEST_PASSED, Role.APPLICANT, {"passed_on": passed_on})
        self.job("sworn_statement", copy.deepcopy({
            "application": application,
            "provider": self.provider,
            "declarations": self.applicant.get("declarations") or _DECLARATIONS,
            "signatory": self.applicant["signatory"],
        }))
        failed = _FAILED[self.scenario]
        initial_visit = self.start + dt.timedelta(days=70)
        decision, report, meeting = self.cycle("initial", self.start + dt.timedelta(days=7), initial_visit,
                                               failed, (), None)
        valid_from = meeting + dt.timedelta(days=20)
        if self.scenario == "positive":
            self.certificate("registered", valid_from, decision, report, None, "initial")
        elif self.scenario == "conditional":
            self.certificate("conditional", valid_from, decision, report, {
                "failed_requirements": list(failed),
                "follow_up_from": add_months(meeting, 6).isoformat(),
                "follow_up_until": add_months(meeting, 12).isoformat(),
            }, "initial")
            decision, report, _ = self.cycle("follow_up", add_months(meeting, 5), add_months(meeting, 7), (),
                                             failed, decision)
            self.certificate("registered", valid_from, decision, report, None, "follow_up")
        else:
            decision, report, meeting = self.cycle("additional", meeting + dt.timedelta(days=10),
                                                   add_months(initial_visit, 4), (), failed, decision)
            self.certificate("registered", meeting + dt.timedelta(days=20), decision, report, None, "additional")
        return self.steps


def dossier_steps(applicant: Any, scenario: str = "positive") -> list[Step]:
    """Every step of the dossier, in order; raises ``InvalidJob`` naming the bad input field."""
    return _Builder(_require(applicant), scenario).build()
