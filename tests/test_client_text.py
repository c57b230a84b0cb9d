"""Every word a recipient reads is Dutch: no internal identifiers, no English, counts with their
nouns in the right number, column headers whole. Read from each kind's example as a PDF."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from kmop.demo import example_applicant, sworn_statement_job
from templates.catalog import TEMPLATES_DIR, get_kind
from templates.render import render_docx

KINDS = ("sworn_statement", "quote", "preparation_pack", "audit_report", "commission_decision",
         "registration_certificate", "follow_up_audit_report", "follow_up_decision")

# Words of our data files, code and identifiers that are English, not Dutch.
ENGLISH = {
    "the", "and", "scope", "tariff", "structure", "class", "classes", "hours", "preparation", "visit",
    "reporting", "source", "assumption", "paraphrase", "positive", "negative", "conditional", "initial",
    "additional", "passed", "failed", "exempt", "true", "false", "none", "requirement", "requirements",
    "finding", "findings", "line", "lines", "outcome", "result", "registered", "decision",
}
PLURAL_AFTER_ONE = re.compile(
    r"(?<![\d,.])1 (dagen|auditdagen|vestigingen|vereisten|personen|uren|documenten|maanden|jaren)\b")
HEDGED_PLURAL = re.compile(r"\w\((en|s|n)\)")
IDENTIFIER = re.compile(r"\b[A-Za-z]+_[A-Za-z_]+\b|[\[\]{}]")
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def data_of(kind_name: str) -> dict[str, Any]:
    if kind_name == "sworn_statement":
        return copy.deepcopy(sworn_statement_job(example_applicant()).data)
    return json.loads((TEMPLATES_DIR / kind_name / "example.json").read_text(encoding="utf-8"))


def pdf_text(pdf: Path, *options: str) -> str:
    return subprocess.run(["pdftotext", *options, str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def header_cells(kind_name: str) -> list[str]:
    """The texts of the template's repeated table header rows (those without template tags)."""
    with zipfile.ZipFile(get_kind(kind_name).template_path) as archive:
        body = etree.fromstring(archive.read("word/document.xml"))
    cells = []
    for row in body.iter(f"{_W}tr"):
        if row.find(f"{_W}trPr/{_W}tblHeader") is None:
            continue
        for cell in row.iter(f"{_W}tc"):
            text = "".join(t.text or "" for t in cell.iter(f"{_W}t")).strip()
            if text and "{" not in text:
                cells.append(text)
    return cells


@pytest.fixture(scope="module")
def pdfs(converter_pool, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("client-text")
    result = {}
    for kind_name in KINDS:
        kind = get_kind(kind_name)
        envelope = {"dossier_id": "DEMO-2026-0001", "document_id": "0193c2a4-7d2e-7c1a-9e1f-2b3c4d5e6f70",
                    "kind_title": kind.title, "template_version": kind.template_version,
                    "issued_at": "2027-01-12 16:05 CET"}
        path = directory / f"{kind_name}.pdf"
        path.write_bytes(converter_pool.convert(render_docx(kind, data_of(kind_name), envelope)))
        result[kind_name] = path
    return result


@pytest.fixture(scope="module")
def texts(pdfs: dict[str, Path]) -> dict[str, str]:
    return {kind_name: pdf_text(path) for kind_name, path in pdfs.items()}


@pytest.mark.parametrize("kind_name", KINDS)
def test_no_internal_identifiers(kind_name: str, texts: dict[str, str]) -> None:
    found = sorted(set(IDENTIFIER.findall(texts[kind_name])))
    assert not found, f"{kind_name}: {found}"


@pytest.mark.parametrize("kind_name", KINDS)
def test_no_english_words(kind_name: str, texts: dict[str, str]) -> None:
    words = {w.lower() for w in re.findall(r"[A-Za-zÀ-ÿ]+", texts[kind_name])}
    english = sorted(words & ENGLISH)
    assert not english, f"{kind_name}: {english}"
    assert "in scope" not in texts[kind_name].lower()


@pytest.mark.parametrize("kind_name", KINDS)
def test_counts_agree_with_their_nouns(kind_name: str, texts: dict[str, str]) -> None:
    flat = " ".join(texts[kind_name].split())
    assert not PLURAL_AFTER_ONE.findall(flat), f"{kind_name}: {PLURAL_AFTER_ONE.findall(flat)}"
    assert not HEDGED_PLURAL.findall(flat), f"{kind_name}: {sorted(set(HEDGED_PLURAL.findall(flat)))}"


@pytest.mark.parametrize("kind_name", KINDS)
def test_column_headers_are_not_broken_inside_a_word(kind_name: str, texts: dict[str, str]) -> None:
    flat = " ".join(texts[kind_name].split())
    for header in header_cells(kind_name):
        for word in re.findall(r"\w+", header):
            assert re.search(rf"(?<!\w){re.escape(word)}(?!\w)", flat), f"{kind_name}: {word!r} of {header!r}"


def test_the_quote_says_one_day_and_two_audit_days(texts: dict[str, str]) -> None:
    flat = " ".join(texts["quote"].split())
    assert "16 uur (2 auditdagen van 8 uur)" in flat and "8 uur, 1 dag ter plaatse" in flat
    assert "structuurklasse B" in flat and "wordt geaudit" in flat


def test_no_page_starts_with_a_repeated_header_over_nothing_but_blank_rows(pdfs: dict[str, Path]) -> None:
    """The workbook's header repeats on every page; below it an indicator or a requirement must
    follow, not the last blank rows of an indicator left behind on the previous page."""
    pages = pdf_text(pdfs["preparation_pack"], "-layout").split("\f")
    continued = [page for page in pages if page.lstrip().startswith("Indicator")]
    assert continued
    for page in continued:
        lines = [line.strip() for line in page.splitlines() if line.strip()]
        after = lines[next(i for i, line in enumerate(lines) if line.startswith("registratie, dossier)")) + 1]
        assert re.match(r"V\d\.\d+ |Vereiste V\d:", after), f"a page continues the workbook with {after!r}"
