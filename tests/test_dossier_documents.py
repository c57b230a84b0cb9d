"""What a whole dossier's documents say, read from the signed PDFs as the agency, the applicant and
the Audit Commission read them: run with ``kmop demo --input`` for an applicant that shares no
value with the documented example, in each scenario.

- every person, address, theme and number comes from that applicant's dossier, none from the
  example applicant;
- every date a document states is on or before the time it was signed (validity ends and the
  deadlines a document sets excepted), the timeline ends on the demo's today, each document
  states its own date and the documents' dates follow the step order;
- the follow-up and additional cycles cite the initial audit's real numbers, are titled by their
  kind, ask only for the requirements in scope, cite evidence from before their visit; the
  certificates name the follow-up they wait for or rest on;
- each finding's text is the one the findings data gives for its scores.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from kmop.demo import example_applicant
from kmop.errors import InvalidJob
from kmop.jobs import DocumentJob
from kmop.scenario import SCENARIOS, dossier_steps
from templates.catalog import get_kind
from templates.validation import validate_data

pytestmark = pytest.mark.slow  # runs kmop demo for three whole dossiers

REPO = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 27)  # the demo's clock: a day before these tests ever run
BRUSSELS = ZoneInfo("Europe/Brussels")
MONTHS = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
          "november", "december")
DATE = re.compile(r"(?:\b(\d{1,2}) )?\b(" + "|".join(MONTHS) + r") (\d{4})\b")

# Shares no value with kmop/examples/applicant.json: another company, service, themes, people,
# addresses, project dossiers.
OTHER = {
    "dossier_id": "TEST-LEERHUIS-0042",
    "application": {"id": "AANVR-2026-7731", "service": "opleiding", "themes": ["Digitalisering", "Duurzaamheid"],
                    "first_time": True},
    "provider": {
        "name": "Leerhuis Kempenland CommV",
        "legal_form": "CommV",
        "enterprise_number": "0566.988.259",
        "registered_office": {"street": "Grote Markt 7", "postal_code": "2300", "city": "Turnhout",
                              "country": "België"},
        "iban": "BE56 7310 4567 8988",
        "bic": "KREDBEBB",
        "contact": {"name": "Hendrik Vermeulen", "email": "hendrik@leerhuis.example",
                    "function": "opleidingscoördinator"},
    },
    "signatory": {"name": "Mireille Jacobs", "capacity": "bestuurder", "place": "Turnhout"},
    "people": [
        {"name": "Mireille Jacobs", "function": "bestuurder", "requirements": ["V4", "V5"]},
        {"name": "Hendrik Vermeulen", "function": "opleidingscoördinator", "requirements": ["V1", "V2"]},
        {"name": "Sanne Wouters", "function": "kwaliteitsmedewerker", "requirements": ["V3"]},
    ],
    "sites": [
        {"label": "Opleidingscentrum", "address": {"street": "Steenweg op Gierle 120", "postal_code": "2300",
                                                   "city": "Turnhout", "country": "België"}},
        {"label": "Leslokaal Geel", "address": {"street": "Pas 33", "postal_code": "2440", "city": "Geel",
                                                "country": "België"}},
    ],
    "people_delivering_service": 7,
    "project_dossiers": [
        {"reference": "LK-2291", "client": "Opleidingsklant P (schrijnwerkerij)", "subsidised": True,
         "status": "finished"},
        {"reference": "LK-2304", "client": "Opleidingsklant Q (apotheek)", "subsidised": False, "status": "finished"},
        {"reference": "LK-2317", "client": "Opleidingsklant R (drukkerij)", "subsidised": True, "status": "running"},
    ],
}


def _example_values() -> list[str]:
    """The documented example applicant's own values, as documents print them."""
    example = example_applicant()
    provider = example["provider"]
    office = provider["registered_office"]
    values = [
        example["dossier_id"], example["application"]["id"], provider["name"], provider["enterprise_number"],
        provider["enterprise_number"].replace(".", ""), office["street"], f"{office['postal_code']} {office['city']}",
        provider["iban"], provider["iban"].replace(" ", ""), provider["bic"], provider["contact"]["email"],
        provider["contact"]["name"], example["signatory"]["name"], *example["application"]["themes"],
    ]
    values += [person["name"] for person in example["people"]]
    values += [person["function"] for person in example["people"] if person["function"] != "zaakvoerder"]
    values += [site["address"]["street"] for site in example["sites"]]
    values += [d["reference"] for d in example["project_dossiers"]] + [d["client"] for d in example["project_dossiers"]]
    return sorted(set(values))


def _squash(text: str) -> str:
    """Text without spaces and hyphens: a value wrapped over lines (or split at a hyphen by
    pdftotext) still matches."""
    return re.sub(r"[\s\-\u00ad]", "", text)


def _text(pdf: Path, *options: str) -> str:
    raw = subprocess.run(["pdftotext", "-nopgbrk", *options, str(pdf), "-"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return " ".join(raw.split())


def _dates(text: str) -> list[dt.date]:
    """Every Dutch date ("7 december 2026") and month ("december 2026", as its first day) stated."""
    found = []
    for day, month, year in DATE.findall(text):
        found.append(dt.date(int(year), MONTHS.index(month) + 1, int(day) if day else 1))
    return found


def _signed_on(pdf: Path) -> dt.date:
    """The day (in Brussels) of the file's first signature: when the document was signed."""
    with pdf.open("rb") as handle:
        times = [s.self_reported_timestamp for s in PdfFileReader(handle).embedded_signatures]
    assert times and all(times), f"{pdf.name}: no signing time"
    return min(times).astimezone(BRUSSELS).date()


class Document:
    def __init__(self, entry: dict[str, Any], job: DocumentJob, out: Path) -> None:
        self.kind = entry["kind"]
        self.file = out / entry["file"]
        self.job = job
        self.data = job.data
        self.text = _text(self.file)  # reading order: a table's cells column by column
        self.rows = _text(self.file, "-layout")  # a table's rows line by line
        self.squashed = (_squash(self.text), _squash(self.rows))
        self.signed_on = _signed_on(self.file)

    def says(self, value: str) -> bool:
        return any(_squash(value) in text for text in self.squashed)


def _own_date(document: Document) -> dt.date:
    data = document.data
    own = {
        "sworn_statement": lambda: data["signatory"]["date"],
        "quote": lambda: data["date"],
        "quote_acceptance": lambda: data["date"],
        "preparation_pack": lambda: data["date"],
        "audit_report": lambda: data["provider_approval"]["date"],
        "follow_up_audit_report": lambda: data["provider_approval"]["date"],
        "commission_decision": lambda: data["meeting_date"],
        "follow_up_decision": lambda: data["meeting_date"],
        "registration_certificate": lambda: data["issued_at"],
    }[document.kind]()
    return dt.date.fromisoformat(own)


def _deadlines(document: Document) -> set[dt.date]:
    """Dates a document may state ahead of its signing: the ends of validity and the deadlines it sets."""
    data = document.data
    days = []
    if document.kind == "quote":
        days.append(dt.date.fromisoformat(data["date"]) + dt.timedelta(days=data["validity_days"] - 1))
    for holder in (data, data.get("conditions", {})):
        days += [dt.date.fromisoformat(holder[k]) for k in ("valid_until", "follow_up_from", "follow_up_until",
                                                            "additional_audit_by") if k in holder]
    return set(days)


@pytest.fixture(scope="module")
def dossiers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Document]]:
    folder = tmp_path_factory.mktemp("dossiers")
    applicant_file = folder / "applicant.json"
    applicant_file.write_text(json.dumps(OTHER, ensure_ascii=False), encoding="utf-8")
    result = {}
    for scenario in SCENARIOS:
        out = folder / scenario
        run = subprocess.run([sys.executable, "-m", "kmop.cli", "demo", "--out", str(out), "--input",
                              str(applicant_file), "--scenario", scenario, "--today", TODAY.isoformat()],
                             capture_output=True, text=True, timeout=600, cwd=REPO)
        assert run.returncode == 0, run.stderr
        entries = json.loads((out / "dossier.json").read_text(encoding="utf-8"))["documents"]
        jobs = [s for s in dossier_steps(copy.deepcopy(OTHER), scenario, TODAY) if isinstance(s, DocumentJob)]
        assert [e["kind"] for e in entries] == [j.kind for j in jobs]
        result[scenario] = [Document(entry, job, out) for entry, job in zip(entries, jobs)]
    return result


def _of(documents: list[Document], kind: str) -> list[Document]:
    return [d for d in documents if d.kind == kind]


# --- every value from the dossier ---------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_document_prints_a_value_of_the_example_applicant(dossiers: dict[str, list[Document]],
                                                            scenario: str) -> None:
    values = _example_values()
    for document in dossiers[scenario]:
        found = [value for value in values if document.says(value)]
        assert not found, f"{document.file.name} prints the example applicant's {found}"
        assert not re.search(r"\bGent\b", document.text), document.file.name


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_document_prints_the_applicants_values_where_it_needs_them(dossiers: dict[str, list[Document]],
                                                                       scenario: str) -> None:
    documents = dossiers[scenario]
    provider = OTHER["provider"]
    for document in documents:
        assert document.says(provider["name"]) and document.says(provider["enterprise_number"]), document.file.name
    for quote in _of(documents, "quote"):
        assert quote.says(f"{provider['contact']['name']}, {provider['contact']['function']}")
    for sworn in _of(documents, "sworn_statement"):
        assert sworn.says(provider["iban"]) and sworn.says(OTHER["signatory"]["name"])
    sites = [f"{s['address']['street']}, {s['address']['postal_code']} {s['address']['city']}" for s in OTHER["sites"]]
    packs = _of(documents, "preparation_pack")
    reports = _of(documents, "audit_report") + _of(documents, "follow_up_audit_report")
    for document in packs + reports:
        for site in sites:
            assert document.says(site), (document.file.name, site)
    for pack, report in zip(packs, reports, strict=True):
        in_scope = set(pack.data["requirement_ids"])
        expected = {p["name"] for p in OTHER["people"] if in_scope & set(p["requirements"])}
        for person in OTHER["people"]:
            present = person["name"] in expected or person["name"] == OTHER["signatory"]["name"]
            assert pack.says(person["name"]) is present, (pack.file.name, person["name"])
            if person["name"] in expected:
                assert report.says(f"{person['name']} {person['function']}"), (report.file.name, person["name"])
        signatory = OTHER["signatory"]
        assert report.says(f"goedgekeurd door {signatory['name']} ({signatory['capacity']}) namens {provider['name']}")
    for document in _of(documents, "registration_certificate") + _of(documents, "sworn_statement"):
        for theme in OTHER["application"]["themes"]:
            assert document.says(theme), (document.file.name, theme)


def test_a_document_needs_its_values_from_the_job() -> None:
    quote = next(s for s in dossier_steps(copy.deepcopy(OTHER), "positive", TODAY)
                 if isinstance(s, DocumentJob) and s.kind == "quote")
    data = copy.deepcopy(quote.data)
    del data["contact"]
    with pytest.raises(InvalidJob) as refused:
        validate_data(get_kind("quote"), data)
    assert (refused.value.field, refused.value.reason) == ("data.contact", "is required")


@pytest.mark.parametrize(("change", "field"), [
    (lambda a: a.pop("people"), "input.people"),
    (lambda a: a["people"][0].pop("function"), "input.people[0].function"),
    (lambda a: a["sites"][0]["address"].pop("street"), "input.sites[0].address.street"),
    (lambda a: a["provider"]["contact"].pop("function"), "input.provider.contact.function"),
    (lambda a: a["application"].__setitem__("date", "2026-01-05"), "input.application.date"),
    (lambda a: a.__setitem__("colour", "blue"), "input.colour"),
    (lambda a: a["people"].pop(2), "input.people"),  # no one answers for V3
])
def test_demo_input_that_lacks_a_value_is_refused_naming_the_field(change: Any, field: str) -> None:
    applicant = copy.deepcopy(OTHER)
    change(applicant)
    with pytest.raises(InvalidJob) as refused:
        dossier_steps(applicant, "conditional", TODAY)
    assert refused.value.field == field


# --- dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_timeline_ends_on_the_demos_today(scenario: str) -> None:
    for today in (TODAY, dt.date(2027, 3, 1), dt.date(2026, 8, 31)):
        jobs = [s for s in dossier_steps(example_applicant(), scenario, today) if isinstance(s, DocumentJob)]
        assert jobs[-1].kind == "registration_certificate" and jobs[-1].data["issued_at"] == today.isoformat()
        for job in jobs:
            stated = [dt.date.fromisoformat(v) for v in re.findall(r"\d{4}-\d{2}-\d{2}", json.dumps(job.data))]
            allowed = {dt.date.fromisoformat(job.data[k]) for k in ("valid_until", "follow_up_from",
                                                                     "follow_up_until", "additional_audit_by")
                       if k in job.data}
            allowed |= {dt.date.fromisoformat(v) for v in job.data.get("conditions", {}).values() if isinstance(v, str)}
            assert all(day <= today or day in allowed for day in stated), (job.kind, stated)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_date_a_document_states_is_on_or_before_its_signing(dossiers: dict[str, list[Document]],
                                                                  scenario: str) -> None:
    for document in dossiers[scenario]:
        deadlines = _deadlines(document)
        late = [day for day in _dates(document.text) if day > document.signed_on and day not in deadlines]
        assert not late, f"{document.file.name} (signed {document.signed_on}) states {late}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_document_states_its_own_date_in_step_order(dossiers: dict[str, list[Document]], scenario: str) -> None:
    documents = dossiers[scenario]
    own = [_own_date(d) for d in documents]
    assert own == sorted(own), [(d.file.name, day) for d, day in zip(documents, own)]
    assert own[-1] == TODAY
    for document, day in zip(documents, own):
        if document.kind != "quote_acceptance":  # a signature on the quote: the quote's text
            assert day in _dates(document.text), (document.file.name, day)


def test_the_certificate_after_the_follow_up_is_issued_after_its_decision(dossiers: dict[str, list[Document]]) -> None:
    documents = dossiers["conditional"]
    conditional, registered = _of(documents, "registration_certificate")
    decision = _of(documents, "follow_up_decision")[0]
    issued = dt.date.fromisoformat(registered.data["issued_at"])
    assert issued >= dt.date.fromisoformat(decision.data["meeting_date"])
    assert registered.data["valid_from"] == conditional.data["valid_from"]
    assert registered.says(decision.data["decision_number"]) and registered.says(decision.data["audit_report_number"])
    assert re.search(r"Na de geslaagde opvolgingsaudit \(beslissing [^)]* van "
                     + re.escape(_dutch(decision.data["meeting_date"])) + r"\)", registered.text), registered.text
    assert "Uitgereikt op " + _dutch(registered.data["issued_at"]) in registered.text


def _dutch(iso: str) -> str:
    day = dt.date.fromisoformat(iso)
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


# --- follow-up and additional paperwork ---------------------------------------------------------


@pytest.mark.parametrize(("scenario", "title", "decision_title", "other"), [
    ("conditional", "Opvolgingsaudit — auditrapport", "Beslissing na opvolgingsaudit", "Bijkomende audit"),
    ("negative", "Bijkomende audit — auditrapport", "Beslissing na bijkomende audit", "Opvolgingsaudit"),
])
def test_a_later_audit_cites_the_initial_numbers_and_is_titled_by_its_kind(
    dossiers: dict[str, list[Document]], scenario: str, title: str, decision_title: str, other: str
) -> None:
    documents = dossiers[scenario]
    initial_report = _of(documents, "audit_report")[0]
    initial_decision = _of(documents, "commission_decision")[0]
    report = _of(documents, "follow_up_audit_report")[0]
    decision = _of(documents, "follow_up_decision")[0]
    number = initial_report.data["report_number"]
    assert initial_report.says(f"Rapportnummer {number}")
    for later in (report, decision):
        assert later.says(f"Initieel auditrapport {number}"), later.file.name
        assert later.says(f"Initiële beslissing {initial_decision.data['decision_number']}"), later.file.name
    assert report.text.startswith(title) and decision.text.startswith(decision_title)
    assert other not in report.text and other not in decision.text


@pytest.mark.parametrize("scenario", ["conditional", "negative"])
def test_a_later_pack_asks_only_for_the_requirements_in_scope(dossiers: dict[str, list[Document]],
                                                              scenario: str) -> None:
    later = _of(dossiers[scenario], "preparation_pack")[1]
    in_scope = set(later.data["requirement_ids"])
    assert in_scope == {"conditional": {"V3"}, "negative": {"V3", "V5"}}[scenario]
    for requirement in ("V1", "V2", "V3", "V4", "V5"):
        assert (f"Vereiste {requirement}:" in later.text) is (requirement in in_scope), requirement
    for attendee in later.data["attendees"]:
        named = set(re.findall(r"V\d+", attendee["reason"]))
        assert named <= in_scope, attendee
    assert not later.says("Hendrik Vermeulen")  # answers for V1 and V2 only


def test_a_conditional_certificate_names_the_follow_up_it_waits_for(dossiers: dict[str, list[Document]]) -> None:
    conditional = _of(dossiers["conditional"], "registration_certificate")[0]
    conditions = conditional.data["conditions"]
    assert "niet van toepassing" not in conditional.text
    assert conditional.says(f"Opvolgingsaudit vereist tussen {_dutch(conditions['follow_up_from'])} en "
                            f"{_dutch(conditions['follow_up_until'])}")
    registered = _of(dossiers["negative"], "registration_certificate")[0]
    additional = _of(dossiers["negative"], "follow_up_decision")[0]
    assert registered.says(f"Bijkomende audit rapport {additional.data['audit_report_number']}")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_report_cites_no_evidence_from_after_its_visit(dossiers: dict[str, list[Document]], scenario: str) -> None:
    for report in _of(dossiers[scenario], "audit_report") + _of(dossiers[scenario], "follow_up_audit_report"):
        visit = max(dt.date.fromisoformat(day) for day in report.data["visit"]["dates"])
        late = [day for day in _dates(report.text) if day > visit]
        assert not late, f"{report.file.name} (visit {visit}) cites {late}"
        for entry in report.data["documents_presented"]:
            years = [int(y) for y in re.findall(r"\b(20\d\d)\b", entry["document"])]
            assert all(year <= visit.year for year in years), entry


# --- findings that agree with their scores ------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_finding_is_the_text_for_its_scores(scenario: str) -> None:
    texts = json.loads((REPO / "kmop" / "examples" / "audit_findings.json").read_text(encoding="utf-8"))["indicators"]
    reports = [s for s in dossier_steps(copy.deepcopy(OTHER), scenario, TODAY)
               if isinstance(s, DocumentJob) and s.kind in ("audit_report", "follow_up_audit_report")]
    assert reports
    for report in reports:
        for finding in report.data["findings"]:
            passing = {finding["conformity"], finding["demonstrability"]} <= {"T", "V"}
            entry = texts[finding["indicator_id"]]["pass" if passing else "fail"]
            assert (finding["conformity"], finding["demonstrability"]) == (entry["conformity"],
                                                                           entry["demonstrability"])
            pattern = re.escape(entry["finding"]).replace(r"\{", "{").replace(r"\}", "}")
            assert re.fullmatch(re.sub(r"\{[a-z_]+\}", ".+", pattern), finding["finding"]), finding


def test_the_findings_data_agrees_with_its_scores() -> None:
    data = json.loads((REPO / "kmop" / "examples" / "audit_findings.json").read_text(encoding="utf-8"))
    for indicator, entries in data["indicators"].items():
        assert {entries["pass"]["conformity"], entries["pass"]["demonstrability"]} <= {"T", "V"}, indicator
        if "fail" in entries:
            assert not {entries["fail"]["conformity"], entries["fail"]["demonstrability"]} <= {"T", "V"}, indicator
