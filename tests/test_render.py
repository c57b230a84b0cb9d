"""Rendering: autoescaped values, strict undefined variables, a well-formed .docx."""

from __future__ import annotations

import copy
import io
import zipfile
from typing import Any

import jinja2
import pytest
from docx import Document
from lxml import etree

from kmop.demo import example_applicant, sworn_statement_job
from kmop.errors import RenderError
from templates.catalog import get_kind, kind_names
from templates.render import _CompilingOnceEnvironment, _environment, dutch_date, euro, prepare_template, render_docx

ENVELOPE = {"dossier_id": "D-1", "document_id": "doc-1", "kind_title": "Verklaring op eer",
            "template_version": "1", "issued_at": "2026-11-29 10:00 CET"}
HOSTILE = 'Quote "dubbel" & \'enkel\' <w:t>injectie</w:t></w:r> ]]> Zoë Łódź 東京 مرحبا'


@pytest.fixture
def data() -> dict[str, Any]:
    return copy.deepcopy(sworn_statement_job(example_applicant()).data)


def _text(docx: bytes) -> str:
    document = Document(io.BytesIO(docx))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        parts.extend(cell.text for row in table.rows for cell in row.cells)
    return "\n".join(parts)


def test_every_kind_has_template_and_schema() -> None:
    for name in kind_names():
        kind = get_kind(name)
        assert kind.schema["type"] == "object", name
        if kind.countersigns:
            assert not kind.template_path.exists() and kind.countersigns in kind_names(), name
        else:
            assert kind.template_path.is_file(), name


def test_hostile_value_appears_exactly_and_docx_stays_well_formed(data: dict[str, Any]) -> None:
    data["provider"]["name"] = HOSTILE
    docx = render_docx(get_kind("sworn_statement"), data, ENVELOPE)
    with zipfile.ZipFile(io.BytesIO(docx)) as archive:
        xml = archive.read("word/document.xml")
    etree.fromstring(xml)  # raises on malformed XML
    assert b"<w:t>injectie</w:t></w:r>" not in xml
    assert HOSTILE in _text(docx)


def test_missing_value_fails_instead_of_printing_blank(data: dict[str, Any]) -> None:
    del data["signatory"]["place"]
    with pytest.raises(RenderError, match="place"):
        render_docx(get_kind("sworn_statement"), data, ENVELOPE)


def test_attribute_lookups_on_job_data_resolve_as_jinja2_resolves_them() -> None:
    environment = _environment()
    row = {"client": "Klant 1 BV", "items": ["offerte"], "keys": "sleutels"}
    template = environment.from_string("{{ row.client }}|{{ row.keys is callable }}|{{ row.missing is defined }}")

    assert template.render(row=row) == "Klant 1 BV|True|False"  # a dict's own attribute comes first
    for name in ("client", "items", "keys", "get", "missing"):
        ours, theirs = environment.getattr(row, name), jinja2.Environment.getattr(environment, row, name)
        assert type(ours) is type(theirs) and (name == "missing" or ours == theirs)
    with pytest.raises(jinja2.UndefinedError, match="missing"):
        environment.from_string("{{ row.missing }}").render(row=row)


def test_a_prepared_template_is_rendered_without_compiling(data: dict[str, Any]) -> None:
    """A worker prepares every kind at start; its first document of a kind then compiles nothing
    (a render asks for each part's compiled form with the source docxtpl builds for it)."""
    kind = get_kind("sworn_statement")
    compiled = _CompilingOnceEnvironment._compiled
    compiled.cache_clear()
    prepare_template(kind)
    prepared = compiled.cache_info()
    assert prepared.misses >= 1  # the body, and its headers and footers if it has any

    first = render_docx(kind, data, ENVELOPE)

    after = compiled.cache_info()
    assert after.misses == prepared.misses
    assert after.hits == prepared.hits + prepared.misses  # each prepared part asked for once
    assert "Verklaring op eer" in _text(first)


def test_dutch_formats() -> None:
    assert dutch_date("2026-02-01") == "1 februari 2026"
    assert euro(2400) == "€ 2.400,00"
    assert euro("1234567.5") == "€ 1.234.567,50"
