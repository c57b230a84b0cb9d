"""Authoring aid: writes the .docx templates under templates/<kind>/template.docx.

The .docx files are the source of truth and may be edited in Word or LibreOffice directly; this
script only made their first versions. Run: python tools/build_templates.py [kind ...]
Each Jinja tag is written into a single run, as docxtpl requires.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Cm, Pt

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _base(title: str, subtitle: str) -> Document:
    document = Document()
    style = document.styles["Normal"]
    style.font.name = "Liberation Sans"
    style.font.size = Pt(10.5)
    for section in document.sections:
        section.left_margin = section.right_margin = Cm(2.2)
        section.top_margin = Cm(2.0)
        section.bottom_margin = Cm(2.0)
        footer = section.footer.paragraphs[0]
        footer.text = (
            "Dossier {{ doc.dossier_id }} · document {{ doc.document_id }} · "
            "{{ doc.kind_title }} · sjabloon v{{ doc.template_version }} · uitgegeven {{ doc.issued_at }}"
        )
        footer.runs[0].font.size = Pt(7.5)
    heading = document.add_heading(title, level=0)
    heading.alignment = WD_ALIGN_PARAGRAPH.LEFT
    document.add_paragraph(subtitle).runs[0].italic = True
    return document


def _table(document: Document, rows: list[tuple[str, str]]) -> None:
    table = document.add_table(rows=0, cols=2)
    table.style = "Light Grid Accent 1"
    for label, value in rows:
        cells = table.add_row().cells
        cells[0].text = label
        cells[0].paragraphs[0].runs[0].bold = True
        cells[1].text = value
    document.add_paragraph()


def _signature_space(document: Document, label: str) -> None:
    """Room at the bottom of the last page for the visible signature block."""
    document.add_paragraph()
    document.add_paragraph(label).runs[0].bold = True
    for _ in range(6):
        document.add_paragraph()


def sworn_statement() -> Document:
    d = _base(
        "Verklaring op eer",
        "Registratieaanvraag als dienstverlener in de kmo-portefeuille",
    )
    d.add_heading("1. Aanvraag", level=1)
    _table(d, [
        ("Aanvraagnummer", "{{ application.id }}"),
        ("Datum aanvraag", "{{ application.date|dutch_date }}"),
        ("Dienst", "{{ application.service }}"),
        ("Thema's", "{{ application.themes|join(', ') }}"),
        ("Eerste aanvraag", "{% if application.first_time %}ja{% else %}nee (hernieuwing){% endif %}"),
        ("Kennistest", "{% if not application.first_time %}niet vereist{% elif application.knowledge_test.passed %}geslaagd{% if application.knowledge_test.passed_on is defined %} op {{ application.knowledge_test.passed_on|dutch_date }}{% endif %}{% else %}nog niet geslaagd{% endif %}"),
    ])
    d.add_heading("2. Dienstverlener", level=1)
    _table(d, [
        ("Naam", "{{ provider.name }}"),
        ("Rechtsvorm", "{{ provider.legal_form }}"),
        ("Ondernemingsnummer", "{{ provider.enterprise_number|enterprise_number }}"),
        ("Maatschappelijke zetel", "{{ provider.registered_office.street }}, {{ provider.registered_office.postal_code }} {{ provider.registered_office.city }} ({{ provider.registered_office.country }})"),
        ("Rekeningnummer", "{{ provider.iban|iban }} (BIC {{ provider.bic }})"),
        ("Contactpersoon", "{{ provider.contact.name }} <{{ provider.contact.email }}>"),
    ])
    d.add_heading("3. Verklaring", level=1)
    d.add_paragraph(
        "Ondergetekende, {{ signatory.name }}, handelend als {{ signatory.capacity }} van "
        "{{ provider.name }}, verklaart op eer dat:"
    )
    for text in (
        "de onderneming over een ondernemingsnummer beschikt;",
        "de onderneming zelf geen auditbureau is;",
        "de onderneming de audit volgens de kmop-norm en de kosten ervan aanvaardt;",
        "de verstrekte informatie volledig en juist is;",
        "de onderneming voor elke opdracht een projectdossier bijhoudt;",
        "de onderneming controles door het Agentschap Innoveren & Ondernemen aanvaardt;",
    ):
        d.add_paragraph(text, style="List Bullet")
    d.add_paragraph(
        "{% if declarations.no_misuse_or_bankruptcy %}de bestuurders, aandeelhouders en het management "
        "van de voorbije drie jaar niet betrokken waren bij misbruik van de kmo-portefeuille of bij een "
        "faillissement.{% else %}de volgende betrokkenheid bij misbruik van de kmo-portefeuille of bij een "
        "faillissement gemeld wordt: {{ declarations.involvement }}{% endif %}",
        style="List Bullet",
    )
    d.add_paragraph(
        "Opgemaakt te {{ signatory.place }} op {{ signatory.date|dutch_date }}."
    )
    note = d.add_paragraph(
        "Tekst van kmop-docs; de officiële formulering van het agentschap wordt overgenomen zodra die beschikbaar is."
    )
    note.runs[0].font.size = Pt(7.5)
    _signature_space(d, "Handtekening van de aanvrager ({{ signatory.name }}, {{ signatory.capacity }})")
    return d


BUILDERS: dict[str, Callable[[], Document]] = {
    "sworn_statement": sworn_statement,
}


def main(argv: list[str]) -> None:
    for kind in argv or list(BUILDERS):
        path = TEMPLATES / kind / "template.docx"
        BUILDERS[kind]().save(path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
