"""The document kinds of steps 2 to 6: schemas, examples, enrichment and rendered text.

Rendering goes to .docx only (no LibreOffice): the text is read back with python-docx.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from docx import Document
from docxtpl import DocxTemplate
from lxml import etree

from kmop.errors import InvalidJob, RenderError
from templates.catalog import TEMPLATES_DIR, get_kind
from templates.enrich import enrich
from templates.package import DocxPackage, tables_reshaped_by
from templates.render import _environment as render_environment
from templates.render import render_docx
from templates.validation import validate_data
from tests.pdftools import page_images
from tests.support.documents import text_of
from workflow.norm import EXEMPT, NOT_PASSED, PASSED, load_norm, norm_versions, proposed_result

KINDS = (
    "quote",
    "preparation_pack",
    "audit_report",
    "commission_decision",
    "registration_certificate",
    "follow_up_audit_report",
    "follow_up_decision",
)
HOSTILE = 'Quote "dubbel" & \'enkel\' <w:t>injectie</w:t></w:r> ]]> Zoë Łódź'
NORM_VERSION = "2016.1-paraphrase"


def example(kind_name: str) -> dict[str, Any]:
    path = TEMPLATES_DIR / kind_name / "example.json"
    return copy.deepcopy(json.loads(path.read_text(encoding="utf-8")))


def envelope(kind_name: str) -> dict[str, Any]:
    kind = get_kind(kind_name)
    return {"dossier_id": "DEMO-2026-0001", "document_id": "doc-42", "kind_title": kind.title,
            "template_version": kind.template_version, "issued_at": "2027-01-12 16:05 CET"}


def render(kind_name: str, data: dict[str, Any]) -> bytes:
    """Validate, enrich and render as templates/render.py will once it calls enrich()."""
    kind = get_kind(kind_name)
    validate_data(kind, data)
    return render_docx(kind, {**data, **enrich(kind.name, data)}, envelope(kind_name))


def invalid(kind_name: str, data: dict[str, Any]) -> InvalidJob:
    """The InvalidJob that validation or enrichment raises for this data."""
    with pytest.raises(InvalidJob) as caught:
        validate_data(get_kind(kind_name), data)
        enrich(kind_name, data)
    return caught.value


# --- every kind -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind_name", KINDS)
def test_kind_manifest_names_title_step_version_and_assumption(kind_name: str) -> None:
    manifest = json.loads((TEMPLATES_DIR / kind_name / "kind.json").read_text(encoding="utf-8"))
    kind = get_kind(kind_name)
    assert kind.title and kind.template_version and 2 <= kind.step <= 6
    assert manifest["assumption"]
    assert kind.template_path.is_file()


@pytest.mark.parametrize("kind_name", KINDS)
def test_example_validates_and_renders_every_tag(kind_name: str) -> None:
    docx = render(kind_name, example(kind_name))
    with zipfile.ZipFile(io.BytesIO(docx)) as archive:
        for name in ("word/document.xml", "word/footer1.xml"):
            etree.fromstring(archive.read(name))
    text = text_of(docx)
    assert "{{" not in text and "{%" not in text
    assert "Dossier DEMO-2026-0001 · document doc-42" in text
    assert get_kind(kind_name).title in text


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


@pytest.mark.parametrize("kind_name", (*KINDS, "sworn_statement"))
def test_documents_are_a4(kind_name: str) -> None:
    for section in Document(str(TEMPLATES_DIR / kind_name / "template.docx")).sections:
        assert (round(section.page_width.cm, 1), round(section.page_height.cm, 1)) == (21.0, 29.7)


@pytest.mark.parametrize("kind_name", KINDS)
def test_every_jinja_tag_sits_in_one_run(kind_name: str) -> None:
    with zipfile.ZipFile(get_kind(kind_name).template_path) as archive:
        parts = [n for n in archive.namelist() if re.fullmatch(r"word/(document|footer\d*|header\d*)\.xml", n)]
        for name in parts:
            for run in etree.fromstring(archive.read(name)).iter(f"{_W}r"):
                text = "".join(t.text or "" for t in run.iter(f"{_W}t"))
                assert text.count("{{") == text.count("}}"), text
                assert text.count("{%") == text.count("%}"), text


KEY_VALUES = {
    "quote": ["CU-OFF-2026-0457", "9 november 2026", "8 december 2026", "CertUp BV", "0880.123.461",
              "0403.170.701", "AANVR-2026-0001", "initiële audit", "16 uur (2 auditdagen van 8 uur)",
              "1 dag ter plaatse", "€ 150,00", "€ 2.400,00", "€ 504,00", "€ 2.904,00",
              "structuurklasse B", "niet in aanmerking voor steun"],
    "preparation_pack": ["CU-VBP-2026-0457", "12 januari 2027", "Pieter De Smet", "verantwoordelijke kwaliteit",
                         "V1.1", "V5.3", "Vereiste V3: Klantentevredenheid", "gecoördineerde statuten",
                         "projectlijst van de voorbije 24 maanden", "Organigram", "KMOP-2025-129902",
                         "5 januari 2027"],
    "audit_report": ["CU-AR-2027-0012", "12 januari 2027", "Pieter De Smet", "Amira El Khatib",
                     "Projectlijst januari 2025 - december 2026", "KMOP-2026-140311", "lopend",
                     "Er wordt geen systematische tevredenheidsmeting gedaan", "V2 Bewijs van ervaring",
                     "onder de norm: V3.1 (B/B), V3.2 (G/B), V3.3 (T/G)",
                     "deliberatie door de auditcommissie mogelijk",
                     "goedgekeurd door Zoë Van den Broeck (zaakvoerder)"],
    "commission_decision": ["CU-AC-2027-0020", "26 januari 2027", "An Claes", "voorzitter",
                            "V2 Bewijs van ervaring", "gedelibereerd", "niet geslaagd",
                            "Voorwaardelijk.", "V3 Klantentevredenheid", "12 juli 2027", "12 januari 2028"],
    "registration_certificate": ["DV.A245871", "advies", "cybersecurity", "0403.170.701",
                                 "voorwaardelijk geregistreerd", "15 februari 2027", "14 februari 2032",
                                 "CU-AR-2027-0012", "CU-AC-2027-0020", "V3 Klantentevredenheid",
                                 "tussen 12 juli 2027 en 12 januari 2028", "CU-AC-2027-0020 van 26 januari 2027",
                                 "vereist tussen 12 juli 2027 en 12 januari 2028 (zie Voorwaarden)"],
    "follow_up_audit_report": ["CU-AR-2027-0101", "opvolgingsaudit", "CU-AR-2027-0012", "CU-AC-2027-0020",
                               "14 september 2027", "V3.2", "Vereiste V3: Klantentevredenheid",
                               "alle beoordeelde indicatoren scoren T of V op beide assen"],
    "follow_up_decision": ["CU-AC-2027-0140", "28 september 2027", "CU-AR-2027-0101", "CU-AC-2027-0020",
                           "V3 Klantentevredenheid", "geslaagd", "Positief.",
                           "voorwaardelijke registratie loopt verder"],
}


@pytest.mark.parametrize("kind_name", KINDS)
def test_rendered_text_contains_the_key_values(kind_name: str) -> None:
    text = text_of(render(kind_name, example(kind_name)))
    for value in KEY_VALUES[kind_name]:
        assert value in text, value
    assert "Raad & Daad <Cyber> BV" in text


HOSTILE_FIELDS = {
    "quote": [("provider", "name"), ("structure", "exemptions")],
    "preparation_pack": [("provider", "name"), ("attendees", 0, "reason"), ("remarks",)],
    "audit_report": [("provider", "name"), ("findings", 4, "finding"), ("sampled_dossiers", 0, "client")],
    "commission_decision": [("provider", "name"), ("requirements", 2, "motivation"), ("members", 0, "name")],
    "registration_certificate": [("provider", "name"), ("themes", 0)],
    "follow_up_audit_report": [("provider", "name"), ("auditor_remark",)],
    "follow_up_decision": [("provider", "name"), ("requirements", 0, "motivation")],
}


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


@pytest.mark.parametrize("kind_name", KINDS)
def test_hostile_value_appears_exactly_and_docx_stays_well_formed(kind_name: str) -> None:
    data = example(kind_name)
    for path in HOSTILE_FIELDS[kind_name]:
        if path == ("structure", "exemptions"):
            _set(data, path, [{"basis": "iso9001", "reference": HOSTILE}])
        else:
            _set(data, path, HOSTILE)
    docx = render(kind_name, data)
    with zipfile.ZipFile(io.BytesIO(docx)) as archive:
        xml = archive.read("word/document.xml")
    etree.fromstring(xml)
    assert b"<w:t>injectie</w:t></w:r>" not in xml
    text = text_of(docx)
    assert text.count(HOSTILE) >= len(HOSTILE_FIELDS[kind_name])


MISSING = {
    "quote": ("structure", "people"),
    "preparation_pack": ("visit", "dates"),
    "audit_report": ("provider_approval", "date"),
    "commission_decision": ("members",),
    "registration_certificate": ("basis", "decision_number"),
    "follow_up_audit_report": ("initial", "decision_number"),
    "follow_up_decision": ("requirement_ids",),
}


@pytest.mark.parametrize("kind_name", KINDS)
def test_missing_required_field_is_named(kind_name: str) -> None:
    data = example(kind_name)
    path = MISSING[kind_name]
    holder: Any = data
    for part in path[:-1]:
        holder = holder[part]
    del holder[path[-1]]
    error = invalid(kind_name, data)
    assert error.field == "data." + ".".join(path)
    assert error.reason == "is required"


@pytest.mark.parametrize("kind_name", KINDS)
def test_unknown_field_is_refused(kind_name: str) -> None:
    data = example(kind_name)
    data["provider"]["iban"] = "BE68539007547034"
    assert invalid(kind_name, data).field == "data.provider.iban"


def _resolve(ref: str, common: dict[str, Any], own: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    target, _, pointer = ref.partition("#")
    root = common if target.endswith("common.schema.json") else own
    node: Any = root
    for part in pointer.strip("/").split("/"):
        node = node[part]
    return node, root


def _walk(schema: Any, root: dict[str, Any], common: dict[str, Any], where: str, seen: set[str],
          problems: list[str]) -> None:
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        key = schema["$ref"] if schema["$ref"].startswith("common") else f"{id(root)}{schema['$ref']}"
        if key not in seen:
            seen.add(key)
            target, target_root = _resolve(schema["$ref"], common, root)
            _walk(target, target_root, common, schema["$ref"], seen, problems)
    kind = schema.get("type")
    if kind == "string" and "enum" not in schema and "const" not in schema:
        pattern = schema.get("pattern", "")
        bounded_pattern = pattern.startswith("^") and pattern.endswith("$") and not re.search(r"[*+]", pattern)
        if "maxLength" not in schema and not bounded_pattern:
            problems.append(f"{where}: string without maxLength")
    if kind == "array" and "maxItems" not in schema:
        problems.append(f"{where}: array without maxItems")
    if kind == "object" and schema.get("additionalProperties") is not False:
        problems.append(f"{where}: object open to extra properties")
    for name, sub in schema.get("properties", {}).items():
        _walk(sub, root, common, f"{where}.{name}", seen, problems)
    for keyword in ("items", "then", "else", "if"):
        _walk(schema.get(keyword), root, common, f"{where}/{keyword}", seen, problems)
    for sub in schema.get("allOf", []):
        _walk(sub, root, common, f"{where}/allOf", seen, problems)


@pytest.mark.parametrize("kind_name", KINDS)
def test_schema_bounds_every_string_and_array_and_closes_every_object(kind_name: str) -> None:
    common = json.loads((TEMPLATES_DIR / "common.schema.json").read_text(encoding="utf-8"))
    schema = get_kind(kind_name).schema
    problems: list[str] = []
    _walk(schema, schema, common, kind_name, set(), problems)
    assert problems == []


# --- quote ------------------------------------------------------------------------------------


def test_quote_shows_every_tariff_line_with_its_source() -> None:
    data = example("quote")
    data["scope"]["services"] = ["advies", "opleiding"]
    data["application_ids"] = ["AANVR-2026-0001", "AANVR-2026-0002"]
    data["structure"]["belgian_sites"] = 3
    context = enrich("quote", data)
    text = text_of(render("quote", data))
    assert len(context["tariff"]["lines"]) == 3 + 3 + 2
    for line in context["tariff"]["lines"]:
        assert line["basis"] in text and line["component_label"] in text
        assert line["source"] not in text  # the data file's row names are not for the client
    assert "2 × bijkomende vestiging in België" in text
    assert "1 × bijkomende dienst" in text
    assert context["tariff"]["total_hours"] == "25"


def test_quote_with_exemption_marks_requirements_exempt_and_costs_less() -> None:
    plain = enrich("quote", example("quote"))["tariff"]
    data = example("quote")
    data["structure"]["exemptions"] = [{"basis": "qfor", "reference": "Qfor-label 2026-118"}]
    context = enrich("quote", data)
    statuses = {r["id"]: r["status"] for r in context["norm"]["requirements"]}
    assert statuses == {"V1": "exempt", "V2": "exempt", "V3": "exempt", "V4": "in_scope", "V5": "in_scope"}
    assert float(context["tariff"]["total"]) < float(plain["total"])
    text = text_of(render("quote", data))
    assert "Qfor-label 2026-118" in text and "V1, V2, V3" in text


def test_quote_with_foreign_site_adds_travel_costs_at_cost_outside_the_total() -> None:
    data = example("quote")
    data["structure"]["foreign_sites"] = 2
    context = enrich("quote", data)
    assert context["tariff"]["total"] == "2904.00"
    assert "2 vestigingen in het buitenland" in text_of(render("quote", data))


def test_follow_up_quote_needs_requirements_and_previous_decision() -> None:
    data = example("quote")
    data["audit_kind"] = "follow_up"
    assert invalid("quote", data).field in {"data.previous_decision_number", "data.scope.requirement_ids"}
    data["previous_decision_number"] = "CU-AC-2027-0020"
    assert invalid("quote", data).field == "data.scope.requirement_ids"
    data["scope"]["requirement_ids"] = ["V3"]
    text = text_of(render("quote", data))
    assert "opvolgingsaudit" in text and "CU-AC-2027-0020" in text
    assert "niet opnieuw geaudit (eerder positief beoordeeld)" in text
    assert "beperking tot de te auditen vereisten (V3" in text


def test_initial_quote_refuses_a_requirement_list() -> None:
    data = example("quote")
    data["scope"]["requirement_ids"] = ["V3"]
    assert invalid("quote", data).field == "data.scope.requirement_ids"


def test_quote_errors_from_norm_and_tariff_name_the_data_field() -> None:
    data = example("quote")
    data["norm_version"] = "1999.1"
    assert invalid("quote", data).field == "data.norm_version"
    data = example("quote")
    data["audit_kind"], data["previous_decision_number"] = "additional", "CU-AC-2027-0020"
    data["scope"]["requirement_ids"] = ["V9"]
    assert invalid("quote", data).field == "data.scope.requirement_ids[0]"
    data = example("quote")
    data["date"] = "2023-05-01"  # before the first tariff version
    error = invalid("quote", data)
    assert error.field == "data.date" and "no tariff" in error.reason


def test_quote_audit_firm_must_be_an_appointed_firm() -> None:
    data = example("quote")
    data["audit_firm"]["appointed_as"] = "Eigen Audit BV"
    assert invalid("quote", data).field == "data.audit_firm.appointed_as"
    data = example("quote")
    data["audit_firm"]["enterprise_number"] = "0123.456.789"
    assert invalid("quote", data).field == "data.audit_firm.enterprise_number"


# --- preparation pack -------------------------------------------------------------------------


def test_pack_workbook_lists_every_indicator_in_scope_with_blank_rows() -> None:
    norm = load_norm(NORM_VERSION)
    data = example("preparation_pack")
    docx = render("preparation_pack", data)
    text = text_of(docx)
    for requirement in norm.requirements:
        for indicator in requirement.indicators:
            assert indicator.text in text
    workbook = next(t for t in Document(io.BytesIO(docx)).tables if t.rows[0].cells[0].text == "Indicator")
    indicators = sum(len(r.indicators) for r in norm.requirements)
    expected = 1 + 2 * len(norm.requirements) + indicators * (1 + data["blank_rows_per_indicator"])
    assert len(workbook.rows) == expected


def test_pack_for_follow_up_holds_only_the_scope_and_its_checklist() -> None:
    data = example("preparation_pack")
    data.update(audit_kind="follow_up", requirement_ids=["V3"])
    data.pop("known_dossiers")
    text = text_of(render("preparation_pack", data))
    assert "V3.1" in text and "V1.1" not in text and "V5.3" not in text
    assert "bewijsstukken voor de te auditen vereisten" in text
    assert "24 maanden" not in text and "Gekende projectdossiers" not in text


def test_pack_checklist_asks_five_years_of_dossiers_for_a_renewal() -> None:
    data = example("preparation_pack")
    data["audit_kind"] = "renewal"
    text = text_of(render("preparation_pack", data))
    assert "kmo-portefeuilledossiers van de voorbije vijf jaar" in text
    assert "24 maanden" not in text


def test_pack_unknown_requirement_is_named() -> None:
    data = example("preparation_pack")
    data["requirement_ids"] = ["V1", "V9"]
    error = invalid("preparation_pack", data)
    assert error.field == "data.requirement_ids[1]" and "V9" in error.reason


def test_long_pack_renders_from_row_loops() -> None:
    data = example("preparation_pack")
    data["blank_rows_per_indicator"] = 10
    data["known_dossiers"] = [
        {"reference": f"KMOP-2024-{100000 + i}", "client": f"Klant {i} & Zonen <BV>", "service": "advies",
         "started_on": "2024-05-01"}
        for i in range(600)
    ]
    text = text_of(render("preparation_pack", data))
    assert "KMOP-2024-100599" in text and "Klant 599 & Zonen <BV>" in text


# --- audit reports ----------------------------------------------------------------------------


def test_audit_report_proposes_a_result_per_requirement() -> None:
    results = {r["requirement_id"]: r for r in enrich("audit_report", example("audit_report"))["requirement_results"]}
    assert {k: r["result"] for k, r in results.items()} == {
        "V1": PASSED, "V2": NOT_PASSED, "V3": NOT_PASSED, "V4": PASSED, "V5": PASSED}
    assert results["V2"]["deliberable"] and not results["V3"]["deliberable"]


def test_audit_report_exempted_indicators_make_an_exempt_requirement() -> None:
    data = example("audit_report")
    data["findings"] = [f for f in data["findings"] if not f["indicator_id"].startswith("V3.")]
    data["exemptions"] = [{"indicator_id": i, "basis": "iso9001", "reference": "ISO 9001 cert. 44-1907"}
                          for i in ("V3.1", "V3.2", "V3.3")]
    results = {r["requirement_id"]: r["result"] for r in enrich("audit_report", data)["requirement_results"]}
    assert results["V3"] == EXEMPT
    text = text_of(render("audit_report", data))
    assert "vrijgesteld op basis van ISO 9001-certificaat (ISO 9001 cert. 44-1907)" in text
    assert "alle indicatoren vrijgesteld (ISO 9001-certificaat)" in text


def test_audit_report_refuses_an_exemption_basis_that_does_not_cover_the_requirement() -> None:
    data = example("audit_report")
    data["findings"] = [f for f in data["findings"] if f["indicator_id"] != "V5.1"]
    data["exemptions"] = [{"indicator_id": "V5.1", "basis": "qfor", "reference": "Qfor 1"}]
    error = invalid("audit_report", data)
    assert error.field == "data.exemptions[0].basis" and "V5" in error.reason


def test_audit_report_needs_a_finding_or_exemption_for_every_indicator() -> None:
    data = example("audit_report")
    data["findings"] = [f for f in data["findings"] if f["indicator_id"] != "V5.3"]
    error = invalid("audit_report", data)
    assert error.field == "data.findings" and "V5.3" in error.reason


def test_audit_report_refuses_unknown_repeated_or_badly_scored_indicators() -> None:
    data = example("audit_report")
    data["findings"][0]["indicator_id"] = "V1.9"
    assert invalid("audit_report", data).field == "data.findings[0].indicator_id"
    data = example("audit_report")
    data["findings"][1]["indicator_id"] = "V1.1"
    assert invalid("audit_report", data).field == "data.findings[1].indicator_id"
    data = example("audit_report")
    data["findings"][0]["conformity"] = "X"
    assert invalid("audit_report", data).field == "data.findings[0].conformity"


def test_follow_up_report_covers_only_the_requirements_in_scope() -> None:
    data = example("follow_up_audit_report")
    assert [r["requirement_id"] for r in enrich("follow_up_audit_report", data)["requirement_results"]] == ["V3"]
    data["findings"].append({"indicator_id": "V1.1", "conformity": "T", "demonstrability": "T", "finding": "x"})
    error = invalid("follow_up_audit_report", data)
    assert error.field == "data.findings[3].indicator_id" and "not in the scope" in error.reason


def test_follow_up_report_kind_is_follow_up_or_additional() -> None:
    data = example("follow_up_audit_report")
    data["audit_kind"] = "initial"
    assert invalid("follow_up_audit_report", data).field == "data.audit_kind"
    data["audit_kind"] = "additional"
    assert "bijkomende audit" in text_of(render("follow_up_audit_report", data))


# --- decisions --------------------------------------------------------------------------------


@pytest.mark.parametrize("index,result", [(2, "niet_geslaagd"), (1, "gedelibereerd")])
def test_decision_motivation_required_for_failed_and_deliberated(index: int, result: str) -> None:
    data = example("commission_decision")
    assert data["requirements"][index]["result"] == result
    del data["requirements"][index]["motivation"]
    error = invalid("commission_decision", data)
    assert error.field == f"data.requirements[{index}].motivation"
    assert error.reason == "is required"


def test_decision_motivation_optional_for_passed() -> None:
    data = example("commission_decision")
    assert "motivation" not in data["requirements"][0]
    validate_data(get_kind("commission_decision"), data)


@pytest.mark.parametrize("missing", ["follow_up_from", "follow_up_until"])
def test_conditional_decision_needs_follow_up_window(missing: str) -> None:
    data = example("commission_decision")
    del data[missing]
    assert invalid("commission_decision", data).field == f"data.{missing}"


def test_negative_decision_needs_additional_audit_deadline_and_renders_it() -> None:
    data = example("commission_decision")
    data["outcome"] = "negative"
    data["failed_requirements"] = ["V3", "V5"]
    data["requirements"][4] = {"requirement_id": "V5", "result": "niet_geslaagd", "motivation": "Geen verklaring."}
    assert invalid("commission_decision", data).field in {"data.follow_up_from", "data.follow_up_until",
                                                          "data.additional_audit_by"}
    del data["follow_up_from"], data["follow_up_until"]
    assert invalid("commission_decision", data).field == "data.additional_audit_by"
    data["additional_audit_by"] = "2027-07-12"
    text = text_of(render("commission_decision", data))
    assert "Negatief." in text and "uiterlijk op 12 juli 2027" in text


def test_positive_decision_has_no_failed_requirements_or_deadlines() -> None:
    data = example("commission_decision")
    data["outcome"] = "positive"
    del data["follow_up_from"], data["follow_up_until"]
    assert invalid("commission_decision", data).field == "data.failed_requirements"
    data["failed_requirements"] = []
    data["requirements"][2] = {"requirement_id": "V3", "result": "geslaagd"}
    text = text_of(render("commission_decision", data))
    assert "Positief." in text and "registratie voor vijf jaar" in text
    data["additional_audit_by"] = "2027-07-12"
    assert invalid("commission_decision", data).field == "data.additional_audit_by"


def test_decision_failed_requirements_must_match_the_results() -> None:
    data = example("commission_decision")
    data["failed_requirements"] = ["V2"]
    error = invalid("commission_decision", data)
    assert error.field == "data.failed_requirements" and "V3" in error.reason


def test_decision_must_judge_every_requirement_once() -> None:
    data = example("commission_decision")
    del data["requirements"][4]
    error = invalid("commission_decision", data)
    assert error.field == "data.requirements" and "V5" in error.reason
    data = example("commission_decision")
    data["requirements"][4]["requirement_id"] = "V1"
    assert invalid("commission_decision", data).field == "data.requirements[4].requirement_id"


def test_follow_up_decision_judges_only_its_scope() -> None:
    data = example("follow_up_decision")
    data["requirements"].append({"requirement_id": "V1", "result": "geslaagd"})
    error = invalid("follow_up_decision", data)
    assert error.field == "data.requirements[1].requirement_id" and "scope" in error.reason


def test_follow_up_decision_outcomes() -> None:
    data = example("follow_up_decision")
    data.update(outcome="conditional", failed_requirements=["V3"], follow_up_from="2028-03-14",
                follow_up_until="2028-09-14")
    data["requirements"][0] = {"requirement_id": "V3", "result": "niet_geslaagd", "motivation": "Nog geen meting."}
    assert invalid("follow_up_decision", data).field == "data.outcome"  # a follow-up audit cannot end conditional
    data["audit_kind"] = "additional"
    assert invalid("follow_up_decision", data).field == "data.outcome"  # nor can an additional audit
    data.update(audit_kind="follow_up", outcome="negative")
    del data["follow_up_from"], data["follow_up_until"]
    assert "de voorwaardelijke registratie eindigt" in text_of(render("follow_up_decision", data))


# --- registration certificate -----------------------------------------------------------------


@pytest.mark.parametrize("number", ["DV.A24587", "DVA245871", "DV.X245871", "dv.a245871", "DV.A2458711", " DV.A245871"])
def test_certificate_registration_number_pattern(number: str) -> None:
    data = example("registration_certificate")
    data["registration_number"] = number
    assert invalid("registration_certificate", data).field == "data.registration_number"


def test_certificate_number_letter_matches_the_service() -> None:
    data = example("registration_certificate")
    data["service"] = "opleiding"
    assert invalid("registration_certificate", data).field == "data.registration_number"
    data["registration_number"] = "DV.O245871"
    assert "DV.O245871" in text_of(render("registration_certificate", data))


def test_conditional_certificate_needs_conditions_and_registered_refuses_them() -> None:
    data = example("registration_certificate")
    del data["conditions"]
    assert invalid("registration_certificate", data).field == "data.conditions"
    data["status"] = "registered"
    text = text_of(render("registration_certificate", data))
    assert "geregistreerd" in text and "voorwaardelijk" not in text and "Voorwaarden" not in text
    data["conditions"] = example("registration_certificate")["conditions"]
    assert invalid("registration_certificate", data).field == "data.conditions"


# --- the kmop-norm ----------------------------------------------------------------------------


def test_norm_has_five_requirements_with_indicators_marked_as_paraphrase() -> None:
    norm = load_norm(NORM_VERSION)
    assert NORM_VERSION in norm_versions()
    assert [r.id for r in norm.requirements] == ["V1", "V2", "V3", "V4", "V5"]
    assert [r.title for r in norm.requirements][4] == "Integriteit"
    for requirement in norm.requirements:
        assert requirement.indicators
        for number, indicator in enumerate(requirement.indicators, 1):
            assert indicator.id == f"{requirement.id}.{number}"
    assert norm.status == "paraphrase" and "paraphrase" in norm.assumption
    assert load_norm(on=dt.date(2026, 11, 30)) is norm


def test_norm_lookups_name_the_field_for_unknown_ids() -> None:
    norm = load_norm(NORM_VERSION)
    assert norm.indicator("V2.3").requirement_id == "V2"
    with pytest.raises(InvalidJob) as caught:
        norm.requirement("V6", "data.requirements[0].requirement_id")
    assert caught.value.field == "data.requirements[0].requirement_id"
    with pytest.raises(InvalidJob) as caught:
        norm.indicator("V1.9", "data.findings[3].indicator_id")
    assert caught.value.field == "data.findings[3].indicator_id"
    with pytest.raises(InvalidJob) as caught:
        load_norm("2099.1", field="data.norm_version")
    assert caught.value.field == "data.norm_version"


@pytest.mark.parametrize("scores,result,deliberable", [
    ({"T", "V"}, PASSED, False),
    ({"T", "G"}, NOT_PASSED, True),
    ({"G"}, NOT_PASSED, True),
    ({"V", "B"}, NOT_PASSED, False),
])
def test_proposed_result_rule(scores: set[str], result: str, deliberable: bool) -> None:
    norm = load_norm(NORM_VERSION)
    requirement = norm.requirement("V3")
    pool = sorted(scores)
    given = {i.id: (pool[n % len(pool)], pool[(n + 1) % len(pool)]) for n, i in enumerate(requirement.indicators)}
    proposal = proposed_result(norm, requirement, given, {})
    assert (proposal.result, proposal.deliberable) == (result, deliberable)


_COMMON_FOR_TEST = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://example.test/schemas/common.json",
    "$defs": {
        "date": {"type": "string", "format": "date"},
        "pair": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/date"}},
        "loop": {"type": "object", "properties": {"next": {"$ref": "#/$defs/loop"}}},
    },
}


def test_inlined_schema_validates_as_the_one_with_references() -> None:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    from templates.validation import format_checker, inline_refs

    schema = {
        "$id": "https://example.test/schemas/kind.json",
        "type": "object",
        "properties": {
            "on": {"description": "annotation only: merged", "$ref": "common.json#/$defs/date"},
            "between": {"$ref": "common.json#/$defs/pair", "minItems": 2},
            "own": {"$ref": "#/$defs/short"},
        },
        "$defs": {"short": {"type": "string", "maxLength": 3}},
    }
    inlined = inline_refs(schema, {_COMMON_FOR_TEST["$id"]: _COMMON_FOR_TEST})
    assert "$ref" not in json.dumps(inlined)
    assert inlined["properties"]["on"] == {"type": "string", "format": "date", "description": "annotation only: merged"}
    registry = Registry().with_resource(_COMMON_FOR_TEST["$id"], Resource.from_contents(_COMMON_FOR_TEST))
    referenced = Draft202012Validator(schema, registry=registry, format_checker=format_checker)
    flat = Draft202012Validator(inlined, format_checker=format_checker)
    for instance in ({"on": "2025-01-31"}, {"on": "2025-02-31"}, {"between": ["2025-01-01"]},
                     {"between": ["2025-01-01", "2025-13-01"]}, {"between": ["2025-01-01", "2025-01-02"]},
                     {"own": "abcd"}, {"own": "abc"}):
        assert ([list(e.absolute_path) for e in flat.iter_errors(instance)]
                == [list(e.absolute_path) for e in referenced.iter_errors(instance)]), instance


def test_recursive_reference_is_refused_when_inlining() -> None:
    from templates.validation import inline_refs

    with pytest.raises(ValueError, match="recursive"):
        inline_refs({"$id": "https://example.test/schemas/kind.json", "$ref": "common.json#/$defs/loop"},
                    {_COMMON_FOR_TEST["$id"]: _COMMON_FOR_TEST})


def test_long_pack_row_error_names_the_row_and_field() -> None:
    data = example("preparation_pack")
    row = {"reference": "R", "client": "C", "service": "advies", "started_on": "2025-03-17"}
    data["known_dossiers"] = [dict(row) for _ in range(500)]
    data["known_dossiers"][417]["started_on"] = "2025-02-30"
    with pytest.raises(InvalidJob) as refused:
        validate_data(get_kind("preparation_pack"), data)
    assert refused.value.field == "data.known_dossiers[417].started_on"


def test_line_breaks_and_tabs_in_a_value_become_word_breaks_and_tabs() -> None:
    """docxtpl's listing pass runs for a part holding a tab or a line break (and is skipped,
    with the same output, for one holding none): a remark over two lines stays two lines."""
    data = example("preparation_pack")
    data["remarks"] = "Eerste regel\nTweede\tregel"
    with zipfile.ZipFile(io.BytesIO(render("preparation_pack", data))) as archive:
        xml = archive.read("word/document.xml").decode()
    etree.fromstring(xml.encode())
    assert re.search(r"Eerste regel</w:t><w:br/><w:t[^>]*>Tweede</w:t></w:r><w:r>(<w:rPr>.*?</w:rPr>)?<w:tab/>", xml)
    assert "\n" not in re.split(r"<w:body[ >]", xml, maxsplit=1)[1] and "\t" not in xml


def docxtpl_render(kind_name: str, data: dict[str, Any]) -> bytes:
    """The .docx as docxtpl's own render and save make it (python-docx opens and saves it all)."""
    kind = get_kind(kind_name)
    reference = DocxTemplate(str(kind.template_path))
    reference.render({**data, **enrich(kind.name, data), "doc": envelope(kind_name)},
                     jinja_env=render_environment(), autoescape=True)
    saved = io.BytesIO()
    reference.save(saved)
    return saved.getvalue()


def with_line_breaks(kind_name: str) -> dict[str, Any]:
    data = example(kind_name)
    if "remarks" in data:  # the listing pass: a line break, a tab, markup characters
        data["remarks"] = "Eerste regel\nTweede\tregel & <meer>"
    validate_data(get_kind(kind_name), data)
    return {**data, **enrich(kind_name, data)}


STYLE_PARTS = ("word/styles.xml", "word/stylesWithEffects.xml")


def canonical(xml: bytes) -> bytes:
    """The XML canonicalized (C14N): the same document gives the same bytes however it is
    written (quoting, escapes, empty elements, repeated namespace declarations)."""
    return etree.tostring(etree.fromstring(xml), method="c14n")


@pytest.mark.parametrize("kind_name", KINDS)
def test_rendered_parts_are_what_docxtpl_itself_makes(kind_name: str) -> None:
    """The package is read once and only the rendered parts are written (templates/package.py):
    those are the XML docxtpl's own render and save make (the footer byte for byte; the document
    canonicalized, as its body goes in as docxtpl's passes leave it: unparsed); the styles keep
    every style the document refers to, and the rest is the template's."""
    kind = get_kind(kind_name)
    data = with_line_breaks(kind_name)
    ours = render_docx(kind, data, envelope(kind_name))
    theirs = docxtpl_render(kind_name, data)
    with zipfile.ZipFile(io.BytesIO(ours)) as mine, zipfile.ZipFile(io.BytesIO(theirs)) as reference, \
            zipfile.ZipFile(kind.template_path) as template:
        assert mine.namelist() == template.namelist()
        rendered = ["word/document.xml", "word/footer1.xml"]
        assert canonical(mine.read("word/document.xml")) == canonical(reference.read("word/document.xml"))
        assert mine.read("word/footer1.xml") == reference.read("word/footer1.xml")
        for name in template.namelist():
            if name not in (*rendered, *STYLE_PARTS):
                assert mine.read(name) == template.read(name), name
        referred = set(re.findall(rb'w:(?:pStyle|rStyle|tblStyle) w:val="([^"]+)"',
                                  b"".join(mine.read(name) for name in rendered)))
        assert referred <= set(re.findall(rb'<w:style [^>]*w:styleId="([^"]+)"', mine.read("word/styles.xml")))
        for name in STYLE_PARTS:
            kept = set(re.findall(rb'<w:style [^>]*w:styleId="([^"]+)"', mine.read(name)))
            full = set(re.findall(rb'<w:style [^>]*w:styleId="([^"]+)"', template.read(name)))
            assert referred & full <= kept < full, name
            assert b"latentStyles" not in mine.read(name)
    assert text_of(ours) == text_of(theirs)


def test_no_template_reshapes_a_table_so_the_grid_pass_is_left_out() -> None:
    """The byte-for-byte comparison with docxtpl above covers what leaving it out changes."""
    assert not any(DocxPackage.read(name, get_kind(name).template_path.read_bytes()).reshapes_tables
                   for name in KINDS)


def test_cell_tags_are_found_with_words_markup_inside_them() -> None:
    split = '<w:r><w:t>{%</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>tc for c in columns %}</w:t></w:r>'
    assert tables_reshaped_by(split)
    assert tables_reshaped_by("<w:t>{% colspan span %}</w:t>") and tables_reshaped_by("<w:t>{% hm %}</w:t>")
    assert not tables_reshaped_by("<w:t>{%tr for row in rows %}</w:t><w:t>{{ row.tc }} etc </w:t>")


def test_a_table_whose_columns_a_loop_makes_gets_the_grid_docxtpl_gives_it(tmp_path) -> None:
    document = Document()
    table = document.add_table(rows=2, cols=3)
    for row, texts in zip(table.rows, (("{%tc for c in columns %}", "{{ c }}", "{%tc endfor %}"),
                                       ("vast", "{%tc for c in columns[1:] %}", "{%tc endfor %}"))):
        for cell, text in zip(row.cells, texts):
            cell.text = text
    path = tmp_path / "columns.docx"
    document.save(str(path))
    assert DocxPackage.read("columns", path.read_bytes()).reshapes_tables
    xml, theirs = document_parts(path, {"columns": ["a", "b", "c", "d", "e"]})
    assert xml == theirs
    assert xml.count(b"<w:gridCol ") == 5


def document_parts(path: Path, context: dict[str, Any]) -> tuple[bytes, bytes]:
    """The document part of the template at ``path`` rendered here, and by docxtpl itself."""
    ours = DocxPackage.read(path.stem, path.read_bytes()).render(DocxTemplate(None), context, render_environment())
    reference = DocxTemplate(str(path))
    reference.render(context, jinja_env=render_environment(), autoescape=True)
    saved = io.BytesIO()
    reference.save(saved)
    with zipfile.ZipFile(io.BytesIO(ours)) as mine, zipfile.ZipFile(saved) as theirs:
        return mine.read("word/document.xml"), theirs.read("word/document.xml")


def _one_pixel_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1 x 1, 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b"")


def test_drawings_in_a_loop_get_the_ids_docxtpl_gives_them(tmp_path) -> None:
    """A body with a drawing is parsed and its drawings renumbered (``fix_docpr_ids``), as docxtpl
    does: the document part is then byte for byte docxtpl's."""
    document = Document()
    document.add_paragraph("{%p for name in names %}")
    paragraph = document.add_paragraph("{{ name }} ")
    paragraph.add_run().add_picture(io.BytesIO(_one_pixel_png()))
    document.add_paragraph("{%p endfor %}")
    path = tmp_path / "drawings.docx"
    document.save(str(path))
    xml, theirs = document_parts(path, {"names": ["een", "twee", "drie"]})
    assert xml == theirs
    assert re.findall(rb'<wp:docPr id="(\d+)"', xml) == [b"1001", b"1002", b"1003"]


@pytest.mark.parametrize("kind_name", ("quote", "audit_report"))
def test_dropping_the_unused_styles_changes_no_pixel(kind_name: str, converter_pool, tmp_path) -> None:
    data = with_line_breaks(kind_name)
    ours = page_images(converter_pool.convert(render_docx(get_kind(kind_name), data, envelope(kind_name))),
                       tmp_path / "ours")
    theirs = page_images(converter_pool.convert(docxtpl_render(kind_name, data)), tmp_path / "theirs")
    assert len(ours) == len(theirs) >= 2
    assert ours == theirs


def test_a_template_tag_outside_body_headers_and_footers_is_refused() -> None:
    with zipfile.ZipFile(get_kind("quote").template_path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    entries["docProps/core.xml"] = entries["docProps/core.xml"].replace(b"</cp:coreProperties>",
                                                                          b"<dc:title>{{ doc.kind_title }}</dc:title></cp:coreProperties>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, blob in entries.items():
            archive.writestr(name, blob)
    with pytest.raises(RenderError, match="docProps/core.xml holds template tags"):
        DocxPackage.read("quote", out.getvalue())
    with pytest.raises(RenderError, match="is not a .docx"):
        DocxPackage.read("quote", b"PK not really")
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("_rels/.rels", "<Relationships")
    with pytest.raises(RenderError, match="is not a .docx"):
        DocxPackage.read("quote", broken.getvalue())
