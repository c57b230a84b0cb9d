"""What a template shows besides the job's data: values computed from the data and the data files.

``enrich(kind_name, data)`` returns the additions to a kind's render context (the render context
is the data, these additions and the ``doc`` envelope). They are pure functions of the validated
data, the tariff (workflow/tariff_data) and the kmop-norm (workflow/norm_data):

- ``quote``: ``tariff`` (every line of the price and duration computation), ``norm``
  (which requirements are in scope, exempt or out of scope) and ``quote_valid_until``.
- ``preparation_pack``: ``norm`` (the fill-in workbook: every indicator in scope),
  ``checklist`` (the documents to have ready for this audit kind, with the evidence of a
  declared involvement) and ``disclosure``.
- ``audit_report`` / ``follow_up_audit_report``: ``norm``, ``findings_table`` (findings in norm
  order with the indicator texts), ``requirement_results`` (the proposed result per requirement,
  by the norm's result rule), ``conclusion`` (the proposed outcome by its outcome rule, with the
  reason and the requirements per result, in Dutch) and ``disclosure``.
- ``commission_decision`` / ``follow_up_decision``: ``norm``, ``requirement_decisions`` and
  ``disclosure``.
- ``registration_certificate``: ``norm`` and ``condition_requirements``.

``disclosure`` is the involvement the dossier's sworn statement declares, with this document's
assessment of it, or None; it comes from ``dossier`` (what the dossier's history tells the
document, ``DossierState.document_facts``), never from the job's data. Counts printed with a unit
go through ``counted`` (the ``counted`` filter of templates/render.py): ``1 dag``, ``2 dagen``.

Amounts are strings such as ``"2400.00"`` (the ``euro`` filter formats them); hours and days are
strings in Dutch notation (``"3,5"``). Data whose parts contradict each other or the data files
(an unknown indicator, a finding outside the audit's scope, failed requirements that differ from
the results, a stated outcome the scores do not give) raises ``InvalidJob`` naming the field, so
enrich can also serve as a check at job submission.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from kmop.errors import InvalidJob, RenderError
from workflow.norm import CONDITIONAL, NEGATIVE, POSITIVE, Norm, ReportAssessment, assess_report, load_norm
from workflow.tariff import QuoteComputation, compute_quote

Context = dict[str, Any]

OUTCOME_LABELS = {POSITIVE: "positief", CONDITIONAL: "voorwaardelijk", NEGATIVE: "negatief"}

RESULT_LABELS = {
    "geslaagd": "geslaagd",
    "gedelibereerd": "gedelibereerd",
    "niet_geslaagd": "niet geslaagd",
    "vrijgesteld": "vrijgesteld",
}

# Where each tariff input comes from in a quote's data, to name the right field in errors.
_QUOTE_FIELDS = {
    "inputs.audit_kind": "data.audit_kind",
    "inputs.services": "data.scope.services",
    "inputs.belgian_sites": "data.structure.belgian_sites",
    "inputs.foreign_sites": "data.structure.foreign_sites",
    "inputs.people": "data.structure.people",
    "inputs.requirements_in_scope": "data.scope.requirement_ids",
    "inputs.exempt_requirements": "data.structure.exemptions",
    "on": "data.date",
    "inputs": "data",
}


def enrich(kind_name: str, data: Mapping[str, Any], dossier: Mapping[str, Any] | None = None) -> Context:
    """The render-context additions for this kind ({} for a kind that needs none).

    ``dossier``: what the dossier's history tells this document (``DossierState.document_facts``:
    a declared involvement); None where the document is made without its dossier.
    """
    if kind_name in _DOSSIER_ENRICHERS:
        return _DOSSIER_ENRICHERS[kind_name](data, dossier)
    enricher = _ENRICHERS.get(kind_name)
    return {} if enricher is None else enricher(data)


def uses_dossier(kind_name: str) -> bool:
    """Whether this kind's documents show what the dossier tells them (``enrich``'s ``dossier``)."""
    return kind_name in _DOSSIER_ENRICHERS


def quote(data: Mapping[str, Any]) -> Context:
    norm = _norm(data)
    exemptions = data["structure"]["exemptions"]
    exempt = norm.exempt_requirements([e["basis"] for e in exemptions], "data.structure.exemptions")
    inputs: dict[str, Any] = {
        "audit_kind": data["audit_kind"],
        "services": list(data["scope"]["services"]),
        "belgian_sites": data["structure"]["belgian_sites"],
        "foreign_sites": data["structure"]["foreign_sites"],
        "people": data["structure"]["people"],
        "exempt_requirements": [r.id for r in exempt],
    }
    if "requirement_ids" in data["scope"]:
        norm.requirements_in(data["scope"]["requirement_ids"], "data.scope.requirement_ids")
        inputs["requirements_in_scope"] = list(data["scope"]["requirement_ids"])
    try:
        computation = compute_quote(inputs, on=dt.date.fromisoformat(data["date"]))
    except InvalidJob as exc:
        raise _renamed(exc, _QUOTE_FIELDS) from None
    in_scope = set(computation.requirements_in_scope)
    exempt_ids = {r.id for r in exempt}
    requirements = []
    for requirement in norm.requirements:
        if requirement.id in in_scope:
            status, label = "in_scope", "wordt geaudit"
        elif requirement.id in exempt_ids:
            status, label = "exempt", "vrijgesteld"
        else:
            status, label = "out_of_scope", "niet opnieuw geaudit (eerder positief beoordeeld)"
        requirements.append({"id": requirement.id, "title": requirement.title, "status": status,
                             "status_label": label})
    norm_context = _norm_summary(norm)
    norm_context["requirements"] = requirements
    norm_context["exemptions"] = [
        {"basis": e["basis"], "label": norm.exemption_basis(e["basis"]).label, "reference": e["reference"],
         "requirements": ", ".join(norm.exemption_basis(e["basis"]).requirement_ids)}
        for e in exemptions
    ]
    valid_until = dt.date.fromisoformat(data["date"]) + dt.timedelta(days=data["validity_days"] - 1)
    return {"tariff": tariff_context(computation), "norm": norm_context,
            "quote_valid_until": valid_until.isoformat()}


def tariff_context(computation: QuoteComputation) -> Context:
    """A quote computation as template values: amounts as strings, hours in Dutch notation."""
    c = computation
    return {
        "version": c.tariff_version,
        "effective_from": c.tariff_effective_from.isoformat(),
        "currency": c.currency,
        "audit_kind_label": c.audit_kind_label,
        "structure_class": {"id": c.structure_class.id, "label": c.structure_class.label},
        "hourly_rate": str(c.hourly_rate),
        "lines": [
            {
                "component": line.component,
                "component_label": line.component_label,
                "basis": line.basis,
                "label": line.label,
                "quantity": _nl(line.quantity),
                "unit_hours": _nl(line.unit_hours),
                "calculation": _calculation(line.quantity, line.unit_hours),
                "hours": _nl(line.hours),
                "rate": str(line.rate),
                "amount": str(line.amount),
                "source": line.source,
            }
            for line in c.lines
        ],
        "total_hours": _nl(c.total_hours),
        "visit_hours": _nl(c.visit_hours),
        "visit_days": _nl(c.visit_days),
        "audit_days": _nl(c.audit_days),
        "hours_per_day": _nl(c.hours_per_day),
        "requirements_in_scope": list(c.requirements_in_scope),
        "exempt_requirements": list(c.exempt_requirements),
        "scope_share_percent": _nl(c.scope_share * 100),
        "subtotal": str(c.subtotal),
        "vat_rate_percent": _nl(c.vat_rate * 100),
        "vat": str(c.vat),
        "total": str(c.total),
        "travel": None if c.travel is None else {
            "foreign_sites": c.travel.foreign_sites, "label": c.travel.label, "text": c.travel.text,
        },
        "notes": list(c.notes),
        "assumption": c.assumption,
        "sources": [{"tag": s.get("tag", ""), "url": s.get("url", "")} for s in c.sources],
    }


def preparation_pack(data: Mapping[str, Any], dossier: Mapping[str, Any] | None = None) -> Context:
    norm = _norm(data)
    requirements = norm.requirements_in(data["requirement_ids"], "data.requirement_ids")
    norm_context = _norm_summary(norm)
    norm_context["blank_rows"] = data.get("blank_rows_per_indicator", 3)
    norm_context["requirements"] = [
        {"id": r.id, "title": r.title, "summary": r.summary,
         "indicators": [{"id": i.id, "text": i.text} for i in r.indicators]}
        for r in requirements
    ]
    checklist = [{"text": item.text, "source": item.source} for item in norm.checklist_for(data["audit_kind"])]
    checklist += [{"text": text, "source": "auditbureau"} for text in data.get("additional_documents", [])]
    rule = norm.disclosure_rule
    disclosure = None
    if dossier and dossier.get("disclosure") and any(r.id == rule.requirement_id for r in requirements):
        disclosure = _quoted(dossier["disclosure"])
        evidence = [{"text": text, "source": "verklaring op eer"} for text in rule.evidence]
        numbers = [str(n) for n in range(len(checklist) + 1, len(checklist) + len(evidence) + 1)]
        disclosure["evidence"] = ("nr. " if len(numbers) == 1 else "nrs. ") + (
            numbers[0] if len(numbers) == 1 else ", ".join(numbers[:-1]) + " en " + numbers[-1])
        disclosure["requirement"] = f"{rule.requirement_id} {norm.requirement(rule.requirement_id).title}"
        checklist += evidence
    for number, item in enumerate(checklist, 1):
        item["number"] = number
    return {"norm": norm_context, "checklist": checklist, "disclosure": disclosure}


def audit_report(data: Mapping[str, Any], dossier: Mapping[str, Any] | None = None) -> Context:
    norm = _norm(data)
    assessment = assess_report(norm, data)
    scores, bases = assessment.scores, assessment.bases
    table, results = [], []
    for requirement, result in zip(assessment.requirements, assessment.results):
        rows = []
        for indicator in requirement.indicators:
            row: dict[str, Any] = {"id": indicator.id, "text": indicator.text}
            if indicator.id in assessment.exemptions:
                exemption = assessment.exemptions[indicator.id]
                row.update(exempt=True, conformity="", demonstrability="",
                           finding=f"vrijgesteld op basis van {norm.exemption_basis(exemption['basis']).label} "
                                   f"({exemption['reference']})")
            else:
                finding = assessment.findings[indicator.id]
                row.update(exempt=False, conformity=finding["conformity"],
                           demonstrability=finding["demonstrability"], finding=finding["finding"])
            rows.append(row)
        table.append({"id": requirement.id, "title": requirement.title, "indicators": rows})
        results.append({
            "requirement_id": requirement.id,
            "title": requirement.title,
            "result": result.result,
            "result_label": RESULT_LABELS[result.result],
            "deliberable": result.deliberable,
            "explanation": _explanation(norm, result.result, result.below_passing, result.exempted,
                                        result.deliberable, scores, bases),
        })
    conclusion = _conclusion(norm, assessment, data["audit_kind"])
    stated = data.get("proposed_outcome")
    if stated is not None and stated != conclusion["outcome"]:
        raise InvalidJob("data.proposed_outcome",
                         f"the scores give {conclusion['outcome']!r}, not {stated!r} "
                         f"({conclusion['outcome_label']}: {conclusion['reason']})")
    rule = norm.disclosure_rule
    covers = any(r.id == rule.requirement_id for r in assessment.requirements)
    norm_context = _norm_summary(norm)
    norm_context["scores"] = [{"code": code, "label": label} for code, label in norm.scores.items()]
    return {"norm": norm_context, "findings_table": table, "requirement_results": results,
            "conclusion": conclusion,
            "disclosure": _disclosure(norm, data, dossier, rule.report_field, covers, covers, "de auditor")}


def commission_decision(data: Mapping[str, Any], dossier: Mapping[str, Any] | None = None) -> Context:
    norm = _norm(data)
    if "requirement_ids" in data:
        expected = norm.requirements_in(data["requirement_ids"], "data.requirement_ids")
    else:
        expected = list(norm.requirements)
    expected_ids = [r.id for r in expected]
    decided: dict[str, Mapping[str, Any]] = {}
    for index, item in enumerate(data["requirements"]):
        field = f"data.requirements[{index}].requirement_id"
        requirement = norm.requirement(item["requirement_id"], field)
        if requirement.id not in expected_ids:
            raise InvalidJob(field, f"requirement {requirement.id} is not in the scope of this decision "
                                    f"({', '.join(expected_ids)})")
        if requirement.id in decided:
            raise InvalidJob(field, f"requirement {requirement.id} is judged twice")
        decided[requirement.id] = item
    missing = [r for r in expected_ids if r not in decided]
    if missing:
        raise InvalidJob("data.requirements", f"no result for requirement(s) {', '.join(missing)}")
    failed = sorted(r for r, item in decided.items() if item["result"] == "niet_geslaagd")
    if sorted(data["failed_requirements"]) != failed:
        raise InvalidJob("data.failed_requirements", "must list exactly the requirements judged niet_geslaagd "
                                                     f"({', '.join(failed) or 'none'})")
    outcome = norm.outcome_rule.outcome({r: item["result"] for r, item in decided.items()},
                                        data.get("audit_kind", "initial"))
    if data["outcome"] != outcome:
        raise InvalidJob("data.outcome", f"the requirement results give {outcome!r} by the outcome rule of "
                                         f"kmop-norm {norm.version}, not {data['outcome']!r}")
    rows = [
        {"requirement_id": r.id, "title": r.title, "result": decided[r.id]["result"],
         "result_label": RESULT_LABELS[decided[r.id]["result"]],
         "motivation": decided[r.id].get("motivation", "")}
        for r in expected
    ]
    rule = norm.disclosure_rule
    needed = rule.requirement_id in decided and outcome in rule.decision_needs_assessment_for
    norm_context = _norm_summary(norm)
    norm_context["failed"] = [{"id": r.id, "title": r.title} for r in expected if r.id in failed]
    return {"norm": norm_context, "requirement_decisions": rows,
            "disclosure": _disclosure(norm, data, dossier, rule.decision_field, rule.requirement_id in decided,
                                      needed, "de auditcommissie")}


def registration_certificate(data: Mapping[str, Any]) -> Context:
    norm = load_norm(on=dt.date.fromisoformat(data["valid_from"]), field="data.valid_from")
    failed = []
    if "conditions" in data:
        failed = norm.requirements_in(data["conditions"]["failed_requirements"],
                                      "data.conditions.failed_requirements")
    return {"norm": _norm_summary(norm),
            "condition_requirements": [{"id": r.id, "title": r.title} for r in failed]}


def _norm(data: Mapping[str, Any]) -> Norm:
    return load_norm(data["norm_version"], field="data.norm_version")


def _requirement_list(norm: Norm, ids: list[str], note: Mapping[str, str] | None = None) -> str:
    return ", ".join(f"{r.id} {r.title}{note.get(r.id, '') if note else ''}"
                     for r in norm.requirements if r.id in ids)


def _conclusion(norm: Norm, assessment: ReportAssessment, audit_kind: str) -> Context:
    """The report's conclusion, computed from the proposed results by the norm's outcome rule:
    the proposed outcome, why, and the requirements per result, in Dutch."""
    rule = norm.outcome_rule
    proposals = {r.requirement_id: r.result for r in assessment.results}
    outcome = rule.outcome(proposals, audit_kind)
    not_passed = [r.requirement_id for r in assessment.results if r.result not in rule.counts_as_passed]
    deliberable = [r.requirement_id for r in assessment.results if r.deliberable]
    blocking = [r for r in not_passed if r in rule.never_conditional]
    conditional_possible = audit_kind in rule.conditional_in
    if outcome == POSITIVE:
        reason = "alle vereisten van deze audit zijn geslaagd of vrijgesteld"
    elif outcome == CONDITIONAL:
        reason = (f"{_not_passed(len(not_passed))} (een voorwaardelijk resultaat laat er ten hoogste "
                  f"{rule.max_not_passed_for_conditional} toe) en "
                  f"{_requirement_list(norm, sorted(rule.never_conditional))} is daar niet bij")
    elif not conditional_possible:
        reason = ("na een opvolgings- of bijkomende audit is het resultaat positief of negatief, en niet alle "
                  "vereisten zijn geslaagd")
    elif blocking:
        reason = f"{_requirement_list(norm, blocking)} is niet geslaagd; dan is het resultaat altijd negatief"
    else:
        reason = (f"{_not_passed(len(not_passed))}, meer dan de {rule.max_not_passed_for_conditional} die een "
                  "voorwaardelijk resultaat toelaat")
    groups = []
    for result, label in (("geslaagd", "Geslaagd"), ("vrijgesteld", "Vrijgesteld"), ("niet_geslaagd", "Niet geslaagd")):
        ids = [r for r, given in proposals.items() if given == result]
        if ids:
            note = {r: " (deliberatie mogelijk)" for r in deliberable}
            groups.append({"label": label, "requirements": _requirement_list(norm, ids, note)})
    deliberation = ""
    if deliberable:
        after = rule.outcome({**proposals, **{r: "gedelibereerd" for r in deliberable}}, audit_kind)
        which = _requirement_list(norm, deliberable)
        deliberation = (f"De auditcommissie kan {which} delibereren (alleen scores {' of '.join(sorted(norm.deliberable_scores))} "
                        f"onder de norm); doet zij dat, dan is het eindresultaat {OUTCOME_LABELS[after]}.")
    passing = " of ".join(sorted(norm.passing_scores))
    result_rule = (f"Voorstel aan de auditcommissie: een vereiste is geslaagd wanneer elke indicator op beide "
                   f"assen {passing} scoort, en vrijgesteld wanneer al haar indicatoren vrijgesteld zijn; anders "
                   "is ze niet geslaagd.")
    if norm.deliberable_scores:
        result_rule += (" De auditcommissie kan een vereiste delibereren waarvan de scores onder de norm alleen "
                        f"{' of '.join(sorted(norm.deliberable_scores))} zijn.")
    return {"outcome": outcome, "outcome_label": OUTCOME_LABELS[outcome], "reason": reason,
            "groups": groups, "deliberation": deliberation,
            "result_rule": result_rule + " Zij beslist over het resultaat."}


def _not_passed(count: int) -> str:
    return f"{counted(count, 'vereiste', 'vereisten')} {'is' if count == 1 else 'zijn'} niet geslaagd"


def _disclosure(norm: Norm, data: Mapping[str, Any], dossier: Mapping[str, Any] | None, field: str,
                covers: bool, needed: bool, by: str) -> Context | None:
    """The dossier's declared involvement with this document's assessment of it, for a document
    that covers the requirement assessing it (``covers``); one that must assess it (``needed``)
    and does not is refused (the workflow refuses it too, on the dossier's history)."""
    if not dossier or not dossier.get("disclosure") or not covers:
        return None
    assessment = data.get(field)
    if needed and not assessment:
        raise InvalidJob(f"data.{field}", f"is required: the sworn statement declares an involvement that "
                                          f"{by} must assess under requirement {norm.disclosure_rule.requirement_id}")
    return {**_quoted(dossier["disclosure"]), "assessment": assessment or "", "by": by,
            "requirement_id": norm.disclosure_rule.requirement_id}


def _quoted(disclosure: Mapping[str, Any]) -> dict[str, Any]:
    """The disclosure with ``quoted``: its text between quotation marks, ending one sentence."""
    text = str(disclosure["text"]).strip()
    return {**disclosure, "quoted": f"“{text}”" + ("" if text.endswith((".", "!", "?")) else ".")}


def counted(value: int | str, singular: str, plural: str) -> str:
    """A count with its noun in the right number: ``1`` -> ``1 dag``, ``2`` -> ``2 dagen``,
    ``"1,5"`` (Dutch notation, as enrich writes hours and days) -> ``1,5 dagen``."""
    try:
        number = Decimal(str(value).replace(",", "."))
    except InvalidOperation:
        raise RenderError(f"not a count: {value!r}") from None
    return f"{value} {singular if number == 1 else plural}"


def _norm_summary(norm: Norm) -> Context:
    return {"version": norm.version, "version_label": norm.version_label, "title": norm.title, "status": norm.status,
            "is_paraphrase": norm.status == "paraphrase"}


def _explanation(norm: Norm, result: str, below: tuple[str, ...], exempted: tuple[str, ...],
                 deliberable: bool, scores: Mapping[str, tuple[str, str]], bases: Mapping[str, str]) -> str:
    if result == "vrijgesteld":
        labels = sorted({norm.exemption_basis(bases[i]).label for i in exempted})
        return f"alle indicatoren vrijgesteld ({', '.join(labels)})"
    parts = []
    if result == "geslaagd":
        passing = " of ".join(sorted(norm.passing_scores))
        parts.append(f"alle beoordeelde indicatoren scoren {passing} op beide assen")
    else:
        low = ", ".join(f"{i} ({scores[i][0]}/{scores[i][1]})" for i in below)
        parts.append(f"onder de norm: {low}")
        if deliberable:
            parts.append("deliberatie door de auditcommissie mogelijk")
    if exempted:
        parts.append(f"vrijgesteld: {', '.join(exempted)}")
    return "; ".join(parts)


def _renamed(exc: InvalidJob, fields: Mapping[str, str]) -> InvalidJob:
    field = exc.field
    for prefix in sorted(fields, key=len, reverse=True):
        if field == prefix or field.startswith(prefix + "[") or field.startswith(prefix + "."):
            field = fields[prefix] + field[len(prefix):]
            break
    return InvalidJob(field, exc.reason)


def _calculation(quantity: Decimal, unit_hours: Decimal) -> str:
    """``1 × 4 uur``; a reduction (a negative line of one unit) as ``− 3 uur``."""
    if unit_hours < 0 and quantity == 1:
        return f"− {_nl(-unit_hours)} uur"
    return f"{_nl(quantity)} × {_nl(unit_hours)} uur"


def _nl(value: Decimal) -> str:
    """``Decimal('3.50')`` -> ``3,5``; ``Decimal('16.0')`` -> ``16``."""
    return format(value.normalize(), "f").replace(".", ",")


_ENRICHERS: dict[str, Callable[[Mapping[str, Any]], Context]] = {
    "quote": quote,
    "registration_certificate": registration_certificate,
}
_DOSSIER_ENRICHERS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any] | None], Context]] = {
    "preparation_pack": preparation_pack,
    "audit_report": audit_report,
    "follow_up_audit_report": audit_report,
    "commission_decision": commission_decision,
    "follow_up_decision": commission_decision,
}
