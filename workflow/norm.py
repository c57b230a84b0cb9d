"""The kmop-norm: basic requirements, their indicators, exemptions and the rules applied to them.

The norm is data: one file per version, ``norm_data/kmop-norm-<version>.json``, with the date it
takes effect, its sources and what in it is our assumption. The version shipped today is our
paraphrase (the official annex was not found publicly; docs/domain.md, sections C and
D); the official annex replaces it as a new file, without a code change.

The rules are data of the version too, each with its text and source: ``result_rule`` (the
proposed result of a requirement from its scores), ``outcome_rule`` (the outcome from the
per-requirement results), ``commission_rule`` (which result the commission may give for each
proposed one) and ``disclosure_rule`` (what an involvement declared in the sworn statement asks
of the preparation pack, the audit report and the decision).

Lookups of unknown requirement or indicator ids raise ``InvalidJob`` naming the field, because
the ids always come from a job's data.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from kmop.errors import InvalidJob, KmopError

NORM_DATA_DIR = Path(__file__).resolve().parent / "norm_data"
_FILE_NAME = re.compile(r"^kmop-norm-(?P<version>[A-Za-z0-9][A-Za-z0-9._-]{0,39})\.json$")

PASSED = "geslaagd"
NOT_PASSED = "niet_geslaagd"
EXEMPT = "vrijgesteld"
DELIBERATED = "gedelibereerd"  # only the commission gives this result, never the rule

POSITIVE = "positive"
CONDITIONAL = "conditional"
NEGATIVE = "negative"

# What the commission rule asks of a result that departs from, or keeps, the proposal.
MOTIVATION_OPTIONAL = "optional"
MOTIVATION_REQUIRED = "required"
DELIBERABLE_AND_MOTIVATED = "required_and_deliberable"
_NEEDS = (MOTIVATION_OPTIONAL, MOTIVATION_REQUIRED, DELIBERABLE_AND_MOTIVATED)


class NormDataError(KmopError):
    """A norm data file that cannot be used as it is (a configuration error, not a job error)."""


@dataclass(frozen=True)
class Indicator:
    id: str
    requirement_id: str
    text: str
    source: str


@dataclass(frozen=True)
class Requirement:
    id: str
    title: str
    summary: str
    source: str
    indicators: tuple[Indicator, ...]

    @property
    def indicator_ids(self) -> tuple[str, ...]:
        return tuple(indicator.id for indicator in self.indicators)


@dataclass(frozen=True)
class ExemptionBasis:
    id: str
    label: str
    requirement_ids: tuple[str, ...]


@dataclass(frozen=True)
class ChecklistItem:
    id: str
    text: str
    audit_kinds: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class RequirementResult:
    """The result the rule proposes to the commission for one requirement.

    ``below_passing`` lists the indicators with a score outside the passing scores;
    ``deliberable`` says the commission may deliberate the requirement to passed (every score of
    those indicators is passing or deliberable, e.g. a G but no B).
    """

    requirement_id: str
    result: str
    below_passing: tuple[str, ...] = ()
    exempted: tuple[str, ...] = ()
    deliberable: bool = False


@dataclass(frozen=True)
class OutcomeRule:
    """How the per-requirement results give the outcome of an audit (data: ``outcome_rule``)."""

    max_not_passed_for_conditional: int
    never_conditional: frozenset[str]
    conditional_in: frozenset[str]  # the audit kinds after which an outcome may be conditional
    counts_as_passed: frozenset[str]
    text: str
    source: str

    def outcome(self, results: Mapping[str, str], audit_kind: str) -> str:
        """``results`` maps a requirement id to its result (geslaagd, niet_geslaagd, ...)."""
        not_passed = {r for r, result in results.items() if result not in self.counts_as_passed}
        if not not_passed:
            return POSITIVE
        if (audit_kind in self.conditional_in and len(not_passed) <= self.max_not_passed_for_conditional
                and not not_passed & self.never_conditional):
            return CONDITIONAL
        return NEGATIVE


@dataclass(frozen=True)
class CommissionRule:
    """Which result the commission may give for each proposed result (data: ``commission_rule``)."""

    allowed: dict[str, dict[str, str]]
    text: str
    source: str

    def check(self, proposal: RequirementResult, result: str, motivation: str, field: str) -> None:
        """Raises ``InvalidJob`` on ``field`` when ``result`` is not allowed for the proposal."""
        need = self.allowed.get(proposal.result, {}).get(result)
        if need is None:
            allowed = ", ".join(self.allowed.get(proposal.result, {})) or "none"
            raise InvalidJob(f"{field}.result", f"requirement {proposal.requirement_id} is proposed "
                                                f"{proposal.result} by the audit report; the commission may "
                                                f"give {allowed}, not {result}")
        if need == DELIBERABLE_AND_MOTIVATED and not proposal.deliberable:
            raise InvalidJob(f"{field}.result", f"requirement {proposal.requirement_id} cannot be "
                                                f"deliberated: {', '.join(proposal.below_passing)} score below "
                                                "the deliberable scores in the audit report")
        if need != MOTIVATION_OPTIONAL and not motivation.strip():
            raise InvalidJob(f"{field}.motivation", f"is required for {result} when the audit report proposes "
                                                    f"{proposal.result} (requirement {proposal.requirement_id})")


@dataclass(frozen=True)
class DisclosureRule:
    """What a declared involvement (misuse of the kmo-portefeuille or a bankruptcy) asks of the
    later documents (data: ``disclosure_rule``)."""

    declaration: str  # the sworn statement's declaration that, when false, is a disclosure
    text_field: str  # the sworn statement's field that says which involvement
    requirement_id: str  # the requirement whose audit must assess it
    evidence: tuple[str, ...]  # what the preparation pack asks for
    report_field: str
    decision_field: str
    decision_needs_assessment_for: frozenset[str]  # outcomes a decision cannot have without it
    text: str
    source: str


@dataclass(frozen=True)
class ReportAssessment:
    """An audit report's findings and exemptions, checked against the norm, with the proposed
    result of every requirement in its scope (norm order)."""

    requirements: tuple[Requirement, ...]
    findings: dict[str, Mapping[str, Any]]
    exemptions: dict[str, Mapping[str, Any]]
    results: tuple[RequirementResult, ...]

    @property
    def scores(self) -> dict[str, tuple[str, str]]:
        return {i: (f["conformity"], f["demonstrability"]) for i, f in self.findings.items()}

    @property
    def bases(self) -> dict[str, str]:
        return {i: e["basis"] for i, e in self.exemptions.items()}


@dataclass(frozen=True)
class Norm:
    version: str
    version_label: str  # the version as documents print it (the id may carry an English suffix)
    effective_from: dt.date
    title: str
    status: str
    assumption: str
    sources: tuple[dict[str, str], ...]
    scores: dict[str, str]
    passing_scores: frozenset[str]
    deliberable_scores: frozenset[str]
    result_rule: str
    outcome_rule: OutcomeRule
    commission_rule: CommissionRule
    disclosure_rule: DisclosureRule
    requirements: tuple[Requirement, ...]
    exemption_bases: dict[str, ExemptionBasis]
    exemption_note: str
    checklist: tuple[ChecklistItem, ...]
    checklist_source: str

    @property
    def requirement_ids(self) -> tuple[str, ...]:
        return tuple(requirement.id for requirement in self.requirements)

    def requirement(self, requirement_id: Any, field: str = "requirement_id") -> Requirement:
        for requirement in self.requirements:
            if requirement.id == requirement_id:
                return requirement
        raise InvalidJob(field, f"unknown requirement {requirement_id!r} in kmop-norm {self.version}; "
                                f"expected one of {', '.join(self.requirement_ids)}")

    def indicator(self, indicator_id: Any, field: str = "indicator_id") -> Indicator:
        for requirement in self.requirements:
            for indicator in requirement.indicators:
                if indicator.id == indicator_id:
                    return indicator
        raise InvalidJob(field, f"unknown indicator {indicator_id!r} in kmop-norm {self.version}")

    def requirements_in(self, ids: Iterable[Any], field: str = "requirement_ids") -> list[Requirement]:
        """The named requirements in the norm's order; unknown or repeated ids are refused."""
        seen: set[str] = set()
        for index, requirement_id in enumerate(ids):
            self.requirement(requirement_id, f"{field}[{index}]")
            if requirement_id in seen:
                raise InvalidJob(f"{field}[{index}]", f"requirement {requirement_id} is named twice")
            seen.add(requirement_id)
        return [requirement for requirement in self.requirements if requirement.id in seen]

    def exemption_basis(self, basis: Any, field: str = "basis") -> ExemptionBasis:
        try:
            return self.exemption_bases[basis]
        except (KeyError, TypeError):
            raise InvalidJob(field, f"unknown exemption basis {basis!r}; expected one of "
                                    f"{', '.join(self.exemption_bases)}") from None

    def exempt_requirements(self, bases: Iterable[Any], field: str = "exemptions") -> list[Requirement]:
        """The requirements that the given exemption bases (qfor, iso9001, ...) exempt, in norm order."""
        exempt: set[str] = set()
        for index, basis in enumerate(bases):
            exempt.update(self.exemption_basis(basis, f"{field}[{index}].basis").requirement_ids)
        return [requirement for requirement in self.requirements if requirement.id in exempt]

    def checklist_for(self, audit_kind: str) -> list[ChecklistItem]:
        return [item for item in self.checklist if audit_kind in item.audit_kinds]

    def score_label(self, score: str) -> str:
        return self.scores[score]


def proposed_result(
    norm: Norm,
    requirement: Requirement,
    scores: Mapping[str, tuple[str, str]],
    exempted: Mapping[str, str],
    field: str = "findings",
) -> RequirementResult:
    """The result rule (docs/domain.md, section D) for one requirement.

    ``scores`` maps an indicator id to its (conformity, demonstrability) scores; ``exempted`` maps
    an indicator id to its exemption basis. Every indicator of the requirement needs one or the
    other. Exempt when every indicator is exempted; passed when every scored indicator has a
    passing score on both axes; not passed otherwise.
    """
    below: list[str] = []
    exempt: list[str] = []
    deliberable = True
    for indicator in requirement.indicators:
        if indicator.id in exempted:
            basis = norm.exemption_basis(exempted[indicator.id], f"{field}: {indicator.id}")
            if requirement.id not in basis.requirement_ids:
                raise InvalidJob(field, f"{basis.label} does not exempt requirement {requirement.id} "
                                        f"({indicator.id}) in kmop-norm {norm.version}")
            exempt.append(indicator.id)
            continue
        if indicator.id not in scores:
            raise InvalidJob(field, f"indicator {indicator.id} of requirement {requirement.id} has "
                                    "neither scores nor an exemption")
        pair = scores[indicator.id]
        for score in pair:
            if score not in norm.scores:
                raise InvalidJob(field, f"indicator {indicator.id}: unknown score {score!r}; expected "
                                        f"one of {', '.join(norm.scores)}")
        if not all(score in norm.passing_scores for score in pair):
            below.append(indicator.id)
            if not all(score in norm.passing_scores | norm.deliberable_scores for score in pair):
                deliberable = False
    if len(exempt) == len(requirement.indicators):
        return RequirementResult(requirement.id, EXEMPT, exempted=tuple(exempt))
    if not below:
        return RequirementResult(requirement.id, PASSED, exempted=tuple(exempt))
    return RequirementResult(requirement.id, NOT_PASSED, tuple(below), tuple(exempt), deliberable)


def assess_report(norm: Norm, data: Mapping[str, Any]) -> ReportAssessment:
    """Check an audit report's findings and exemptions against the norm and propose a result per
    requirement in its scope (``requirement_ids``, else all); errors name the data field."""
    if "requirement_ids" in data:
        requirements = norm.requirements_in(data["requirement_ids"], "data.requirement_ids")
    else:
        requirements = list(norm.requirements)
    in_scope = {i.id for r in requirements for i in r.indicators}
    scope_text = ", ".join(r.id for r in requirements)
    findings: dict[str, Mapping[str, Any]] = {}
    for index, finding in enumerate(data["findings"]):
        field = f"data.findings[{index}].indicator_id"
        indicator = norm.indicator(finding["indicator_id"], field)
        if indicator.id not in in_scope:
            raise InvalidJob(field, f"indicator {indicator.id} is not in the scope of this audit ({scope_text})")
        if indicator.id in findings:
            raise InvalidJob(field, f"indicator {indicator.id} has a finding already")
        findings[indicator.id] = finding
    exemptions: dict[str, Mapping[str, Any]] = {}
    for index, exemption in enumerate(data["exemptions"]):
        field = f"data.exemptions[{index}].indicator_id"
        indicator = norm.indicator(exemption["indicator_id"], field)
        if indicator.id not in in_scope:
            raise InvalidJob(field, f"indicator {indicator.id} is not in the scope of this audit ({scope_text})")
        if indicator.id in findings or indicator.id in exemptions:
            raise InvalidJob(field, f"indicator {indicator.id} has a finding or an exemption already")
        basis = norm.exemption_basis(exemption["basis"], f"data.exemptions[{index}].basis")
        if indicator.requirement_id not in basis.requirement_ids:
            raise InvalidJob(f"data.exemptions[{index}].basis",
                             f"{basis.label} does not exempt requirement {indicator.requirement_id} in kmop-norm "
                             f"{norm.version} (it exempts {', '.join(basis.requirement_ids)})")
        exemptions[indicator.id] = exemption
    scores = {i: (f["conformity"], f["demonstrability"]) for i, f in findings.items()}
    bases = {i: e["basis"] for i, e in exemptions.items()}
    results = tuple(proposed_result(norm, r, scores, bases, "data.findings") for r in requirements)
    return ReportAssessment(tuple(requirements), findings, exemptions, results)


def norm_versions(directory: Path | None = None) -> list[str]:
    return [norm.version for norm in _load_all(directory or NORM_DATA_DIR)]


def load_norm(
    version: str | None = None,
    *,
    on: dt.date | None = None,
    directory: Path | None = None,
    field: str = "norm_version",
) -> Norm:
    """The norm of that version, or the one in effect on that date (the latest one started by then)."""
    norms = _load_all(directory or NORM_DATA_DIR)
    if version is not None:
        for norm in norms:
            if norm.version == version:
                return norm
        raise InvalidJob(field, f"unknown kmop-norm version {version!r}; known: "
                                f"{', '.join(n.version for n in norms) or 'none'}")
    day = on or dt.date.today()
    in_effect = [norm for norm in norms if norm.effective_from <= day]
    if not in_effect:
        raise InvalidJob(field, f"no kmop-norm version is in effect on {day.isoformat()}")
    return in_effect[-1]


@cache
def _load_all(directory: Path) -> tuple[Norm, ...]:
    norms = []
    for path in sorted(directory.glob("kmop-norm-*.json")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise NormDataError(f"{path.name}: file name must be kmop-norm-<version>.json")
        try:
            norm = _parse(json.loads(path.read_text(encoding="utf-8")))
        except (KeyError, TypeError, ValueError) as exc:
            raise NormDataError(f"{path.name}: {exc!r}") from exc
        if norm.version != match.group("version"):
            raise NormDataError(f"{path.name}: holds version {norm.version!r}")
        norms.append(norm)
    return tuple(sorted(norms, key=lambda n: n.effective_from))


def _parse(raw: dict[str, Any]) -> Norm:
    requirements = []
    indicator_ids: set[str] = set()
    for item in raw["requirements"]:
        indicators = tuple(
            Indicator(i["id"], item["id"], i["text"], i.get("source", "")) for i in item["indicators"]
        )
        if not indicators:
            raise ValueError(f"requirement {item['id']} has no indicators")
        for indicator in indicators:
            if indicator.id in indicator_ids:
                raise ValueError(f"indicator {indicator.id} appears twice")
            indicator_ids.add(indicator.id)
        requirements.append(Requirement(item["id"], item["title"], item["summary"],
                                        item.get("source", ""), indicators))
    requirement_ids = {r.id for r in requirements}
    if len(requirement_ids) != len(requirements):
        raise ValueError("a requirement id appears twice")
    bases = {}
    for basis_id, basis in raw["exemption_bases"].items():
        unknown = set(basis["requirements"]) - requirement_ids
        if unknown:
            raise ValueError(f"exemption basis {basis_id} names unknown requirements {sorted(unknown)}")
        bases[basis_id] = ExemptionBasis(basis_id, basis["label"], tuple(basis["requirements"]))
    scores = dict(raw["scores"])
    rule = raw["result_rule"]
    passing = frozenset(rule["passing_scores"])
    deliberable = frozenset(rule["deliberable_scores"])
    if not passing or not passing | deliberable <= set(scores):
        raise ValueError("result_rule names scores that are not in scores")
    checklist = raw["documents_checklist"]
    outcome = raw["outcome_rule"]
    outcome_rule = OutcomeRule(
        int(outcome["max_not_passed_for_conditional"]), frozenset(outcome["never_conditional"]),
        frozenset(outcome["conditional_in"]), frozenset(outcome["counts_as_passed"]),
        outcome["text"], outcome.get("source", ""))
    results = {PASSED, NOT_PASSED, EXEMPT, DELIBERATED}
    if not outcome_rule.never_conditional <= requirement_ids or not outcome_rule.counts_as_passed <= results:
        raise ValueError("outcome_rule names unknown requirements or results")
    commission = raw["commission_rule"]
    allowed = {proposal: dict(given) for proposal, given in commission["allowed"].items()}
    for proposal, given in allowed.items():
        if proposal not in results or not set(given) <= results or not set(given.values()) <= set(_NEEDS):
            raise ValueError(f"commission_rule.allowed.{proposal} names unknown results or needs")
    disclosure = raw["disclosure_rule"]
    if disclosure["requirement_id"] not in requirement_ids:
        raise ValueError("disclosure_rule names an unknown requirement")
    disclosure_rule = DisclosureRule(
        disclosure["declaration"], disclosure["text_field"], disclosure["requirement_id"],
        tuple(disclosure["evidence"]), disclosure["report_field"], disclosure["decision_field"],
        frozenset(disclosure["decision_needs_assessment_for"]), disclosure["text"], disclosure.get("source", ""))
    return Norm(
        version=raw["version"],
        version_label=raw.get("version_label", raw["version"]),
        effective_from=dt.date.fromisoformat(raw["effective_from"]),
        title=raw["title"],
        status=raw["status"],
        assumption=raw["assumption"],
        sources=tuple(raw["sources"]),
        scores=scores,
        passing_scores=passing,
        deliberable_scores=deliberable,
        result_rule=rule["text"],
        outcome_rule=outcome_rule,
        commission_rule=CommissionRule(allowed, commission["text"], commission.get("source", "")),
        disclosure_rule=disclosure_rule,
        requirements=tuple(requirements),
        exemption_bases=bases,
        exemption_note=raw.get("exemption_note", ""),
        checklist=tuple(ChecklistItem(i["id"], i["text"], tuple(i["audit_kinds"]), i.get("source", ""))
                        for i in checklist["items"]),
        checklist_source=checklist.get("source", ""),
    )
