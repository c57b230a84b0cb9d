"""Authoring aid: writes the .docx templates under templates/<kind>/template.docx.

The .docx files are the source of truth and may be edited in Word or LibreOffice directly; this
script only made their first versions. Run: python tools/build_templates.py [kind ...]
Each Jinja tag is written into a single run, as docxtpl requires.
"""

from __future__ import annotations

import re
import sys
from copy import deepcopy
from collections.abc import Callable
from pathlib import Path

from docx import Document
from docx.enum.table import WD_ROW_HEIGHT_RULE
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _base(title: str, subtitle: str) -> Document:
    document = Document()
    style = document.styles["Normal"]
    style.font.name = "Liberation Sans"
    style.font.size = Pt(10.5)
    for section in document.sections:
        section.page_width, section.page_height = Cm(21.0), Cm(29.7)  # A4, not python-docx's Letter
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


def _signature_space(document: Document, *labels: str) -> None:
    """The signature block: per signer a bold label over the empty space its stamp goes in.

    Signing finds each label by its first words (``signatures`` in the kind's ``kind.json``)
    and puts the signature field in the space below it. The labels sit side by side in one
    table row that cannot split, so a label never leaves its space; the paragraphs before the
    row are kept with it (back to the last two that are always printed, ``_keep_with_block``),
    so the block never stands alone on a page. A last paragraph of 1 pt closes the body (Writer adds one after a
    final table), so nothing but the block can move to a new page.
    """
    _keep_with_block(document)
    table = document.add_table(rows=1, cols=len(labels))
    table.autofit = False
    row = table.rows[0]
    row._tr.get_or_add_trPr().append(_on("w:cantSplit"))
    width = (21.0 - 2 * 2.2) / len(labels)
    for cell, label in zip(row.cells, labels):
        cell.width = Cm(width)
        heading = cell.paragraphs[0]
        heading.add_run(label).bold = True
        heading.paragraph_format.space_before = Pt(14)
        heading.paragraph_format.space_after = Pt(0)
        heading.paragraph_format.keep_with_next = True
        space = cell.add_paragraph()
        space.paragraph_format.line_spacing_rule = WD_LINE_SPACING.EXACTLY
        space.paragraph_format.line_spacing = Pt(_STAMP_SPACE)
        space.paragraph_format.space_before = space.paragraph_format.space_after = Pt(0)
    end = document.add_paragraph()
    end.paragraph_format.line_spacing_rule = WD_LINE_SPACING.EXACTLY
    end.paragraph_format.line_spacing = Pt(1)
    end.paragraph_format.space_before = end.paragraph_format.space_after = Pt(0)


#: Height of the empty space under a signature label, in points: the stamp (44 pt) and margins.
_STAMP_SPACE = 60
_TEMPLATE_TAG = re.compile(r"^\s*\{%[pr]\s+(if|for|endif|endfor|else|elif)\b")
_TABLE_LOOP = re.compile(r"\{%tr\s+for\b")


def _on(tag: str) -> OxmlElement:
    element = OxmlElement(tag)
    element.set(qn("w:val"), "true")
    return element


def _keep_with_block(document: Document, lead: int = 2) -> None:
    """Keep-with-next on the paragraphs before the signature block, back to (and including) the
    last ``lead`` ones printed whatever the data (the place and date of a statement, the
    sentence before a decision's signature), through ``{%p if %}`` blocks, which may print
    nothing. Of a ``{%p for %}`` list only the last item is kept with what follows (every item
    kept with the next would tie the whole list to the block): its body is written twice, for
    the other items and, kept, for the last. A table is kept with what follows by its last row
    when that is not a repeated one."""
    elements = list(document.element.body.iterchildren())
    depth = 0
    index = len(elements)
    while index > 0:
        index -= 1
        element = elements[index]
        if element.tag == qn("w:tbl"):
            rows = element.findall(qn("w:tr"))
            repeated = any(_TABLE_LOOP.search("".join(row.itertext())) for row in rows)
            for paragraph in rows[-1].iter(qn("w:p")) if rows and not repeated else ():
                paragraph.get_or_add_pPr().keepNext_val = True
            if depth <= 0:
                return
            continue
        if element.tag != qn("w:p"):
            continue
        text = "".join(element.itertext())
        tag = _TEMPLATE_TAG.match(text)
        if tag and tag.group(1) == "endfor":
            index = _keep_last_item(elements, index)
            continue
        if tag:
            depth += {"endif": 1, "if": -1}.get(tag.group(1), 0)
            continue
        element.get_or_add_pPr().keepNext_val = True
        if text.strip() and depth <= 0:
            lead -= 1
            if lead == 0:
                return


def _keep_last_item(elements: list, end: int) -> int:  # type: ignore[type-arg]
    """Rewrite the ``{%p for %}`` list that ends at ``elements[end]`` so that its last item is
    kept with what follows and the others are not; the index of its ``{%p for %}``."""
    nested, start = 0, end
    while start > 0:
        start -= 1
        tag = _TEMPLATE_TAG.match("".join(elements[start].itertext()))
        if tag and tag.group(1) == "endfor":
            nested += 1
        elif tag and tag.group(1) == "for":
            if nested == 0:
                break
            nested -= 1
    body = elements[start + 1:end]
    if not body or any(item.tag != qn("w:p") or _TEMPLATE_TAG.match("".join(item.itertext())) for item in body):
        return start  # not a plain list of paragraphs: left as it is, and not kept
    first = body[0]
    first.addprevious(_tag_paragraph("{%p if not loop.last %}"))
    for item in body:
        other = deepcopy(item)
        other.get_or_add_pPr().keepNext_val = None
        first.addprevious(other)
        item.get_or_add_pPr().keepNext_val = True
    first.addprevious(_tag_paragraph("{%p else %}"))
    elements[end].addprevious(_tag_paragraph("{%p endif %}"))
    return start


def _tag_paragraph(text: str):  # type: ignore[no-untyped-def]
    paragraph = OxmlElement("w:p")
    run = OxmlElement("w:r")
    text_element = OxmlElement("w:t")
    text_element.text = text
    run.append(text_element)
    paragraph.append(run)
    return paragraph


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
        "faillissement.{% else %}de bestuurders, aandeelhouders of het management van de voorbije drie jaar "
        "betrokken waren bij misbruik van de kmo-portefeuille of bij een faillissement, als volgt: "
        "“{{ declarations.involvement }}”; de stukken daarover worden bij de audit voorgelegd.{% endif %}",
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


# --- Steps 2 to 6: quote, preparation pack, audit reports, decisions, certificate -------------
#
# Table rows that repeat come from docxtpl row loops: a row whose first cell holds
# ``{%tr for ... %}`` (or ``{%tr endfor %}``, ``{%tr else %}``, ``{%tr if ... %}``) is replaced by
# that tag, so the rows between repeat. Optional blocks use paragraph tags (``{%p if ... %}``).

_AUDIT_KIND_LABELS = (
    "{% if audit_kind == 'initial' %}initiële audit{% elif audit_kind == 'renewal' %}hernieuwingsaudit"
    "{% elif audit_kind == 'follow_up' %}opvolgingsaudit (na een voorwaardelijk resultaat)"
    "{% else %}bijkomende audit (na een negatief resultaat){% endif %}"
)
_OFFICE = (
    "{{ provider.registered_office.street }}, {{ provider.registered_office.postal_code }} "
    "{{ provider.registered_office.city }} ({{ provider.registered_office.country }})"
)
_NORM = "{{ norm.version_label }}{% if norm.is_paraphrase %} (parafrase van kmop-docs, niet de officiële bijlage){% endif %}"
_SMALL = Pt(7.5)


def _set_widths(row_cells, widths: list[float] | None) -> None:
    if widths:
        for cell, width in zip(row_cells, widths):
            cell.width = Cm(width)


def _fix_grid(table, widths: list[float] | None, first_column: bool = False) -> None:
    """Fixed column widths (LibreOffice reads the grid, Word the cells) and no first-column emphasis."""
    tbl_pr = table._tbl.tblPr
    look = tbl_pr.find(qn("w:tblLook"))
    if look is None:
        look = OxmlElement("w:tblLook")
        tbl_pr.append(look)
    look.set(qn("w:firstColumn"), "1" if first_column else "0")
    look.set(qn("w:firstRow"), "1")
    look.set(qn("w:val"), "04A0" if first_column else "0420")
    if not widths:
        return
    table.autofit = False
    for col, width in zip(table._tbl.tblGrid.findall(qn("w:gridCol")), widths):
        col.set(qn("w:w"), str(int(Cm(width).twips)))


def _repeat_header(row) -> None:
    tr_pr = row._tr.get_or_add_trPr()
    header = OxmlElement("w:tblHeader")
    header.set(qn("w:val"), "true")
    tr_pr.append(header)


def _shade(cell, fill: str) -> None:
    shading = OxmlElement("w:shd")
    shading.set(qn("w:val"), "clear")
    shading.set(qn("w:color"), "auto")
    shading.set(qn("w:fill"), fill)
    cell._tc.get_or_add_tcPr().append(shading)


def _tag_row(table, tag: str) -> None:
    """A row holding only a docxtpl row tag; docxtpl replaces the whole row by the tag."""
    table.add_row().cells[0].text = tag


def _header_row(table, headers: list[str], widths: list[float] | None, size=None) -> None:
    row = table.add_row()
    for cell, text in zip(row.cells, headers):
        cell.text = text
        cell.paragraphs[0].runs[0].bold = True
        if size is not None:
            cell.paragraphs[0].runs[0].font.size = size
    _set_widths(row.cells, widths)
    _repeat_header(row)


def _fill_row(table, values: list[str], widths: list[float] | None, size=None) -> None:
    row = table.add_row()
    for cell, text in zip(row.cells, values):
        cell.text = text
        if size is not None and cell.paragraphs[0].runs:
            cell.paragraphs[0].runs[0].font.size = size
    _set_widths(row.cells, widths)


def _merged_row(table, text: str, bold: bool = False, italic: bool = False, fill: str | None = None) -> None:
    row = table.add_row()
    cell = row.cells[0].merge(row.cells[-1])
    cell.text = text
    run = cell.paragraphs[0].runs[0]
    run.bold, run.italic = bold, italic
    if fill:
        _shade(cell, fill)


def _loop_table(
    document: Document,
    headers: list[str],
    cells: list[str],
    loop: str,
    empty: str | None = None,
    widths: list[float] | None = None,
    size=None,
) -> None:
    """A header row, then one row per item of ``loop`` (a Jinja ``for`` clause); ``empty`` shows when none."""
    table = document.add_table(rows=0, cols=len(headers))
    table.style = "Light Grid Accent 1"
    _header_row(table, headers, widths, size)
    _tag_row(table, "{%tr for " + loop + " %}")
    _fill_row(table, cells, widths, size)
    if empty is not None:
        _tag_row(table, "{%tr else %}")
        _merged_row(table, empty, italic=True)
    _tag_row(table, "{%tr endfor %}")
    _fix_grid(table, widths)
    document.add_paragraph()


def _loop_list(document: Document, headers: list[str], cells: list[str], loop: str, widths: list[float]) -> None:
    """Like ``_loop_table`` but one tab-aligned paragraph per item, for lists that may run to
    hundreds of items: LibreOffice lays a table out cell by cell, a 720-row table taking 3-4
    times as long to convert as the same rows as paragraphs."""

    def line(texts: list[str], bold: bool = False) -> None:
        paragraph = document.add_paragraph()
        position = 0.0
        for width in widths[:-1]:
            position += width
            paragraph.paragraph_format.tab_stops.add_tab_stop(Cm(position))
        paragraph.paragraph_format.space_after = Pt(1)
        run = paragraph.add_run("\t".join(texts))
        run.bold = bold
        run.font.size = Pt(9)

    line(headers, bold=True)
    document.add_paragraph("{%p for " + loop + " %}")
    line(cells)
    document.add_paragraph("{%p endfor %}")
    document.add_paragraph()


def _blank_row(table, widths: list[float]):
    blank = table.add_row()
    blank.height = Cm(0.9)
    blank.height_rule = WD_ROW_HEIGHT_RULE.AT_LEAST
    _set_widths(blank.cells, widths)
    return blank


def _keep_row_with_next(row) -> None:
    """Keep a table row on the page of the next one (keep-with-next on its paragraphs, which
    Word and LibreOffice apply to the row) and never split it: an indicator of the workbook
    moves to the next page with its blank rows, leaving no repeated header over a lone row."""
    row._tr.get_or_add_trPr().append(_cant_split())
    for cell in row.cells:
        for paragraph in cell.paragraphs:
            paragraph.paragraph_format.keep_with_next = True


def _cant_split():
    element = OxmlElement("w:cantSplit")
    element.set(qn("w:val"), "true")
    return element


def _small(document: Document, text: str) -> None:
    document.add_paragraph(text).runs[0].font.size = _SMALL


def _provider_rows() -> list[tuple[str, str]]:
    return [
        ("Dienstverlener", "{{ provider.name }}{% if provider.legal_form is defined %} ({{ provider.legal_form }}){% endif %}"),
        ("Ondernemingsnummer", "{{ provider.enterprise_number|enterprise_number }}"),
        ("Maatschappelijke zetel", _OFFICE),
    ]


def _firm_rows(prefix: str = "audit_firm") -> list[tuple[str, str]]:
    return [
        ("Auditbureau", "{{ " + prefix + ".name }} (aangesteld auditbureau: {{ " + prefix + ".appointed_as }})"),
        ("Ondernemingsnummer auditbureau", "{{ " + prefix + ".enterprise_number|enterprise_number }}"),
    ]


def _firm_address_row() -> tuple[str, str]:
    return ("Adres auditbureau", "{% if audit_firm.address is defined %}{{ audit_firm.address.street }}, "
            "{{ audit_firm.address.postal_code }} {{ audit_firm.address.city }}{% else %}—{% endif %}")


def quote() -> Document:
    d = _base("Offerte kmop-audit", "Audit volgens de kmop-norm voor de registratie als dienstverlener in de kmo-portefeuille")
    d.add_heading("1. Offerte", level=1)
    _table(d, [
        ("Offertenummer", "{{ quote_number }}"),
        ("Datum", "{{ date|dutch_date }}"),
        ("Geldig tot en met", "{{ quote_valid_until|dutch_date }} ({{ validity_days|counted('dag', 'dagen') }})"),
        ("Soort audit", _AUDIT_KIND_LABELS),
        ("Registratieaanvraag", "{{ application_ids|join(', ') }}"),
        ("{% if scope.services|length == 1 %}Dienst{% else %}Diensten{% endif %}", "{{ scope.services|join(', ') }}"),
        ("Vorige beslissing", "{% if previous_decision_number is defined %}{{ previous_decision_number }}{% else %}niet van toepassing{% endif %}"),
    ])
    d.add_heading("2. Partijen", level=1)
    _table(d, _firm_rows() + [_firm_address_row()] + _provider_rows() + [
        ("Contactpersoon", "{{ contact.name }}, {{ contact.role }}"),
    ])
    d.add_heading("3. Omvang van de audit en structuur", level=1)
    d.add_paragraph("Kmop-norm: " + _NORM + ".")
    _loop_table(d, ["Vereiste", "Omschrijving", "In deze audit"],
                ["{{ r.id }}", "{{ r.title }}", "{{ r.status_label }}"],
                "r in norm.requirements", widths=[2.2, 9.0, 5.4])
    _table(d, [
        ("Personen die de dienst leveren", "{{ structure.people }}"),
        ("Vestigingen in België", "{{ structure.belgian_sites }}"),
        ("Vestigingen in het buitenland", "{{ structure.foreign_sites }}"),
        ("Structuurklasse", "{{ tariff.structure_class.id }}: {{ tariff.structure_class.label }}"),
    ])
    d.add_paragraph("Ingeroepen vrijstellingen:").paragraph_format.keep_with_next = True
    _loop_table(d, ["Grond", "Bewijs", "Vrijgestelde vereisten"],
                ["{{ e.label }}", "{{ e.reference }}", "{{ e.requirements }}"],
                "e in norm.exemptions", empty="Geen vrijstellingen ingeroepen.", widths=[4.5, 7.0, 5.1])
    d.add_heading("4. Prijs en duur", level=1)
    d.add_paragraph(
        "Prijs en duur volgen uit het tijdrooster van het Agentschap Innoveren & Ondernemen: "
        "{{ tariff.hourly_rate|euro }} per uur (tijdrooster {{ tariff.version }}, van kracht sinds "
        "{{ tariff.effective_from|dutch_date }})."
    )
    _loop_table(d, ["Onderdeel", "Grondslag in het tijdrooster", "Berekening", "Uren", "Bedrag"],
                ["{{ line.component_label }}", "{{ line.basis }}", "{{ line.calculation }}",
                 "{{ line.hours }}", "{{ line.amount|euro }}"],
                "line in tariff.lines", widths=[2.8, 7.0, 2.6, 1.6, 2.6], size=Pt(9))
    _table(d, [
        ("Totaal aantal uren", "{{ tariff.total_hours }} uur ({{ tariff.audit_days|counted('auditdag', 'auditdagen') }} van {{ tariff.hours_per_day }} uur)"),
        ("Auditbezoek", "{{ tariff.visit_hours }} uur, {{ tariff.visit_days|counted('dag', 'dagen') }} ter plaatse"),
        ("Subtotaal (excl. btw)", "{{ tariff.subtotal|euro }}"),
        ("Btw {{ tariff.vat_rate_percent }} %", "{{ tariff.vat|euro }}"),
        ("Totaal (incl. btw)", "{{ tariff.total|euro }}"),
        ("Reiskosten buitenland", "{% if tariff.travel %}{{ tariff.travel.text }} ({{ tariff.travel.foreign_sites|counted('vestiging', 'vestigingen') }} in het buitenland){% else %}niet van toepassing{% endif %}"),
    ])
    d.add_paragraph("{%p for note in tariff.notes %}")
    d.add_paragraph("{{ note }}", style="List Bullet")
    d.add_paragraph("{%p endfor %}")
    d.add_heading("5. Voorwaarden", level=1)
    d.add_paragraph(
        "De audit toetst de organisatie van de dienstverlener aan de kmop-norm; ze doet geen uitspraak over de "
        "kwaliteit van de aangeboden opleidingen of adviezen. De auditor plant het auditbezoek in overleg met de "
        "dienstverlener en bezorgt vooraf het voorbereidingspakket. Door deze offerte te ondertekenen aanvaardt "
        "de aanvrager de audit en de kosten ervan."
    )
    _signature_space(d, "Voor het auditbureau: {{ audit_firm.name }}", "Voor akkoord, de aanvrager: {{ provider.name }}")
    return d


def preparation_pack() -> Document:
    d = _base("Voorbereidingspakket kmop-audit", "Invuldocument en lijst van de voor te leggen documenten")
    d.add_heading("1. Audit", level=1)
    _table(d, [
        ("Kenmerk", "{{ pack_number }}"),
        ("Datum", "{{ date|dutch_date }}"),
        ("Offerte", "{{ quote_number }}"),
        ("Soort audit", _AUDIT_KIND_LABELS),
        ("Registratieaanvraag", "{{ application_ids|join(', ') }}"),
        ("{% if services|length == 1 %}Dienst{% else %}Diensten{% endif %}", "{{ services|join(', ') }}"),
        ("Kmop-norm", _NORM),
        ("Te auditen vereisten", "{{ requirement_ids|join(', ') }}"),
    ] + _firm_rows() + _provider_rows())
    d.add_heading("2. Auditbezoek", level=1)
    d.add_paragraph("Gepland op {{ visit.dates|map('dutch_date')|join(', ') }}, op de volgende "
                    "{% if visit.sites|length == 1 %}vestiging{% else %}vestigingen{% endif %}:")
    _loop_table(d, ["Vestiging", "Adres", "Vestigingseenheid"],
                ["{{ s.label }}", "{{ s.address.street }}, {{ s.address.postal_code }} {{ s.address.city }} ({{ s.address.country }})",
                 "{% if s.establishment_unit_number is defined %}{{ s.establishment_unit_number }}{% else %}—{% endif %}"],
                "s in visit.sites", widths=[3.8, 8.6, 4.2])
    d.add_paragraph("{% if auditors|length == 1 %}Auditor{% else %}Auditors{% endif %}:")
    _loop_table(d, ["Naam", "Rol"], ["{{ a.name }}", "{% if a.role is defined %}{{ a.role }}{% else %}auditor{% endif %}"],
                "a in auditors", widths=[8.3, 8.3])
    d.add_paragraph("Wij vragen de volgende personen aanwezig te zijn:")
    _loop_table(d, ["Functie", "Naam", "Waarvoor"],
                ["{{ p.role }}", "{{ p.name }}", "{{ p.reason }}"],
                "p in attendees", widths=[4.5, 4.5, 7.6])
    d.add_paragraph("{%p if return_by is defined %}")
    d.add_paragraph("Gelieve het ingevulde invuldocument terug te bezorgen uiterlijk op {{ return_by|dutch_date }}.")
    d.add_paragraph("{%p endif %}")
    d.add_heading("3. Invuldocument kmop-norm", level=1)
    d.add_paragraph(
        "Noteer per indicator hoe en met welke middelen u aantoont dat u eraan voldoet, en welke medewerkers "
        "daarvoor aanwezig moeten zijn. Dit is een werkdocument voor uzelf; de auditor beoordeelt elke indicator "
        "op overeenstemming en aantoonbaarheid."
    )
    d.add_paragraph("{%p if norm.is_paraphrase %}")
    _small(d, "De indicatorteksten zijn een parafrase door kmop-docs (kmop-norm {{ norm.version_label }}); de officiële "
              "bijlage van de kmop-norm heeft voorrang.")
    d.add_paragraph("{%p endif %}")
    widths = [2.0, 5.4, 4.6, 4.6]
    table = d.add_table(rows=0, cols=4)
    table.style = "Table Grid"
    _header_row(table, ["Indicator", "Bewijs (document, registratie, dossier)", "Middelen", "Aanwezige personen"], widths)
    _tag_row(table, "{%tr for req in norm.requirements %}")
    _merged_row(table, "Vereiste {{ req.id }}: {{ req.title }}", bold=True, fill="D9E2F3")
    _keep_row_with_next(table.rows[-1])
    _merged_row(table, "{{ req.summary }}", italic=True)
    _keep_row_with_next(table.rows[-1])
    _tag_row(table, "{%tr for ind in req.indicators %}")
    row = table.add_row()
    row.cells[0].text = "{{ ind.id }}"
    row.cells[0].paragraphs[0].runs[0].bold = True
    text_cell = row.cells[1].merge(row.cells[3])
    text_cell.text = "{{ ind.text }}"
    _shade(row.cells[0], "F2F2F2")
    _shade(text_cell, "F2F2F2")
    _keep_row_with_next(row)
    _tag_row(table, "{%tr for _ in range(norm.blank_rows - 1) %}")
    _keep_row_with_next(_blank_row(table, widths))
    _tag_row(table, "{%tr endfor %}")
    _blank_row(table, widths)
    _tag_row(table, "{%tr endfor %}")
    _tag_row(table, "{%tr endfor %}")
    _fix_grid(table, widths)
    d.add_paragraph()
    d.add_heading("4. Voor te leggen documenten", level=1)
    d.add_paragraph("Leg de volgende documenten klaar bij het begin van het auditbezoek:")
    d.add_paragraph("{%p if disclosure %}")
    d.add_paragraph(
        "In uw verklaring op eer van {{ disclosure.declared_on|dutch_date }} meldt u een betrokkenheid bij misbruik "
        "van de kmo-portefeuille of bij een faillissement: {{ disclosure.quoted }} De auditor onderzoekt die melding "
        "onder vereiste {{ disclosure.requirement }}; leg daarvoor ook de documenten {{ disclosure.evidence }} "
        "hieronder klaar."
    )
    d.add_paragraph("{%p endif %}")
    _loop_table(d, ["Nr.", "Document", "Klaar", "Opmerking"],
                ["{{ item.number }}", "{{ item.text }}", "☐", ""],
                "item in checklist", widths=[1.2, 10.4, 1.4, 3.6])
    # two lines always printed: the signature block's keep-together chain (``_keep_with_block``, two
    # printed lines back) ends on them, so the list above is free to continue on a next page
    d.add_paragraph("Vink een document aan zodra het klaarligt.")
    d.add_paragraph("Vermeld bij Opmerking wat ontbreekt of later volgt.")
    d.add_paragraph("{%p if known_dossiers is defined and known_dossiers %}")
    d.add_heading("5. Gekende projectdossiers", level=1)
    d.add_paragraph("Houd voor de volgende opdrachten het volledige projectdossier ter beschikking:")
    _loop_list(d, ["Nr.", "Referentie", "Klant", "Dienst", "Gestart op"],
               ["{{ loop.index }}", "{{ k.reference }}", "{{ k.client }}", "{{ k.service }}", "{{ k.started_on|dutch_date }}"],
               "k in known_dossiers", widths=[1.2, 3.8, 6.2, 2.2, 3.2])
    d.add_paragraph("{%p endif %}")
    d.add_paragraph("{%p if remarks is defined %}")
    d.add_heading("Opmerkingen", level=1)
    d.add_paragraph("{{ remarks }}")
    d.add_paragraph("{%p endif %}")
    _signature_space(d, "Voor het auditbureau: {{ audit_firm.name }}")
    return d


def _audit_report(title: str, follow_up: bool) -> Document:
    d = _base(title, "Vaststellingen van de audit volgens de kmop-norm")
    d.add_heading("1. Audit", level=1)
    rows = [
        ("Rapportnummer", "{{ report_number }}"),
        ("Soort audit", _AUDIT_KIND_LABELS),
    ]
    if follow_up:
        rows += [
            ("Initieel auditrapport", "{{ initial.report_number }}"),
            ("Initiële beslissing", "{{ initial.decision_number }}"),
            ("Te auditen vereisten", "{{ requirement_ids|join(', ') }}"),
        ]
    rows += [
        ("Offerte", "{{ quote_number }}"),
        ("Registratieaanvraag", "{{ application_ids|join(', ') }}"),
        ("{% if services|length == 1 %}Dienst{% else %}Diensten{% endif %}", "{{ services|join(', ') }}"),
        ("Kmop-norm", _NORM),
    ] + _firm_rows() + _provider_rows()
    _table(d, rows)
    d.add_heading("2. Auditbezoek", level=1)
    d.add_paragraph("Datum: {{ visit.dates|map('dutch_date')|join(', ') }}. "
                    "Omvang van de audit bevestigd met de dienstverlener: {% if scope_validated %}ja{% else %}nee{% endif %}.")
    _loop_table(d, ["Bezochte vestiging", "Adres"],
                ["{{ s.label }}", "{{ s.address.street }}, {{ s.address.postal_code }} {{ s.address.city }} ({{ s.address.country }})"],
                "s in visit.sites", widths=[5.0, 11.6])
    _loop_table(d, ["Auditor", "Rol"], ["{{ a.name }}", "{% if a.role is defined %}{{ a.role }}{% else %}auditor{% endif %}"],
                "a in auditors", widths=[8.3, 8.3])
    _loop_table(d, ["Gesproken personen", "Functie"],
                ["{{ p.name }}", "{{ p.role }}"],
                "p in persons_interviewed", widths=[8.3, 8.3])
    d.add_heading("3. Voorgelegde documenten", level=1)
    _loop_table(d, ["Document", "Voorgelegd", "Opmerking"],
                ["{{ x.document }}", "{% if x.presented %}ja{% else %}nee{% endif %}",
                 "{% if x.remark is defined %}{{ x.remark }}{% endif %}"],
                "x in documents_presented", empty="Geen documenten geregistreerd.", widths=[7.6, 2.9, 6.1])
    d.add_heading("4. Steekproef projectdossiers", level=1)
    _loop_table(d, ["Referentie", "Klant", "Dienst", "Gesubsidieerd", "Status", "Opmerking"],
                ["{{ s.reference }}", "{{ s.client }}", "{{ s.service }}",
                 "{% if s.subsidised %}ja{% else %}nee{% endif %}",
                 "{% if s.status == 'finished' %}afgerond{% else %}lopend{% endif %}",
                 "{% if s.remark is defined %}{{ s.remark }}{% endif %}"],
                "s in sampled_dossiers", empty="Geen projectdossiers in de steekproef.",
                widths=[3.5, 3.0, 1.6, 2.7, 1.8, 4.0], size=Pt(9))
    d.add_heading("5. Vaststellingen per indicator", level=1)
    d.add_paragraph(
        "Elke indicator krijgt twee waarderingen: overeenstemming (O, de beschreven werkwijze) en aantoonbaarheid "
        "(A, de toepassing in de praktijk): "
        "{% for s in norm.scores %}{{ s.code }} = {{ s.label }}{% if not loop.last %}, {% endif %}{% endfor %}."
    )
    widths = [1.9, 5.0, 0.8, 0.8, 8.1]
    table = d.add_table(rows=0, cols=5)
    table.style = "Table Grid"
    _header_row(table, ["Indicator", "Omschrijving", "O", "A", "Vaststelling"], widths, Pt(9))
    _tag_row(table, "{%tr for req in findings_table %}")
    _merged_row(table, "Vereiste {{ req.id }}: {{ req.title }}", bold=True, fill="D9E2F3")
    _tag_row(table, "{%tr for f in req.indicators %}")
    _fill_row(table, ["{{ f.id }}", "{{ f.text }}",
                      "{% if f.exempt %}—{% else %}{{ f.conformity }}{% endif %}",
                      "{% if f.exempt %}—{% else %}{{ f.demonstrability }}{% endif %}",
                      "{{ f.finding }}"], widths, size=Pt(9))
    _tag_row(table, "{%tr endfor %}")
    _tag_row(table, "{%tr endfor %}")
    _fix_grid(table, widths)
    d.add_paragraph()
    _disclosure_section(d)
    d.add_heading("6. Voorgesteld resultaat per vereiste", level=1)
    d.add_paragraph("{{ conclusion.result_rule }}")
    _loop_table(d, ["Vereiste", "Voorstel", "Toelichting"],
                ["{{ r.requirement_id }} {{ r.title }}", "{{ r.result_label }}", "{{ r.explanation }}"],
                "r in requirement_results", widths=[5.0, 2.8, 8.8])
    d.add_heading("7. Algemene conclusie", level=1)
    # the conclusion stays on one page: each paragraph kept with the next, up to the closing one
    conclusion = d.add_paragraph("Voorgesteld eindresultaat: {{ conclusion.outcome_label }}.")
    conclusion.runs[0].bold = True
    conclusion.paragraph_format.keep_with_next = True
    d.add_paragraph("Volgens de uitkomstregel van de kmop-norm: {{ conclusion.reason }}."
                    ).paragraph_format.keep_with_next = True
    d.add_paragraph("{%p for g in conclusion.groups %}")
    d.add_paragraph("{{ g.label }}: {{ g.requirements }}.", style="List Bullet").paragraph_format.keep_with_next = True
    d.add_paragraph("{%p endfor %}")
    d.add_paragraph("{%p if conclusion.deliberation %}")
    d.add_paragraph("{{ conclusion.deliberation }}").paragraph_format.keep_with_next = True
    d.add_paragraph("{%p endif %}")
    d.add_paragraph("De auditcommissie beslist over het resultaat per vereiste en over het eindresultaat.")
    d.add_paragraph("{%p if auditor_remark is defined %}")
    d.add_heading("Opmerking van de auditor", level=2)
    d.add_paragraph("{{ auditor_remark }}")
    d.add_paragraph("{%p endif %}")
    d.add_heading("Goedkeuring door de dienstverlener", level=1)
    d.add_paragraph(
        "De auditor heeft dit rapport op het einde van het auditbezoek voorgelezen. Het werd goedgekeurd door "
        "{{ provider_approval.name }} ({{ provider_approval.role }}) namens {{ provider.name }} op "
        "{{ provider_approval.date|dutch_date }}."
    )
    _signature_space(d, "Handtekening van de auditor ({{ auditors[0].name }})")
    return d


def _disclosure_section(d: Document) -> None:
    """The involvement declared in the sworn statement, with this document's assessment of it
    (``disclosure`` from templates/enrich.py: only when the dossier has one and the document
    covers the requirement that assesses it)."""
    d.add_paragraph("{%p if disclosure %}")
    d.add_heading("Gemelde betrokkenheid (verklaring op eer)", level=2)
    d.add_paragraph(
        "In de verklaring op eer van {{ disclosure.declared_on|dutch_date }} (aanvraag {{ disclosure.application_id }}) "
        "meldt de dienstverlener een betrokkenheid bij misbruik van de kmo-portefeuille of bij een faillissement: "
        "{{ disclosure.quoted }}"
    ).paragraph_format.keep_with_next = True  # the declaration stays with its assessment
    d.add_paragraph("{%p if disclosure.assessment %}")
    d.add_paragraph("Beoordeling door {{ disclosure.by }} (vereiste {{ disclosure.requirement_id }}): "
                    "{{ disclosure.assessment }}")
    d.add_paragraph("{%p else %}")
    d.add_paragraph("De auditcommissie heeft de gemelde betrokkenheid niet beoordeeld; een positieve of "
                    "voorwaardelijke beslissing is daarom niet mogelijk.")
    d.add_paragraph("{%p endif %}")
    d.add_paragraph("{%p endif %}")


def audit_report() -> Document:
    return _audit_report("Auditrapport kmop-audit", follow_up=False)


def follow_up_audit_report() -> Document:
    return _audit_report("{% if audit_kind == 'additional' %}Bijkomende audit{% else %}Opvolgingsaudit{% endif %}"
                         " — auditrapport", follow_up=True)


def _decision(title: str, follow_up: bool) -> Document:
    d = _base(title, "Uitspraak over de vereisten van de kmop-norm op basis van het auditrapport")
    d.add_heading("1. Beslissing", level=1)
    rows = [
        ("Beslissingsnummer", "{{ decision_number }}"),
        ("Vergadering auditcommissie", "{{ meeting_date|dutch_date }}"),
    ]
    if follow_up:
        rows += [
            ("Soort audit", _AUDIT_KIND_LABELS),
            ("Initieel auditrapport", "{{ initial.report_number }}"),
            ("Initiële beslissing", "{{ initial.decision_number }}"),
            ("Te auditen vereisten", "{{ requirement_ids|join(', ') }}"),
        ]
    rows += [
        ("Auditrapport", "{{ audit_report_number }}"),
        ("Datum auditbezoek", "{{ audit_date|dutch_date }}"),
        ("Registratieaanvraag", "{{ application_ids|join(', ') }}"),
        ("{% if services|length == 1 %}Dienst{% else %}Diensten{% endif %}", "{{ services|join(', ') }}"),
        ("Kmop-norm", _NORM),
    ] + _firm_rows() + _provider_rows()
    _table(d, rows)
    d.add_heading("2. Samenstelling van de auditcommissie", level=1)
    d.add_paragraph("De auditcommissie (certificatiecommissie van het auditbureau) was samengesteld uit:")
    _loop_table(d, ["Naam", "Functie"], ["{{ m.name }}", "{% if m.role is defined %}{{ m.role }}{% else %}lid{% endif %}"],
                "m in members", widths=[8.3, 8.3])
    d.add_heading("3. Resultaat per vereiste", level=1)
    _loop_table(d, ["Vereiste", "Resultaat", "Motivering"],
                ["{{ r.requirement_id }} {{ r.title }}", "{{ r.result_label }}", "{{ r.motivation }}"],
                "r in requirement_decisions", widths=[4.6, 2.8, 9.2])
    _disclosure_section(d)
    d.add_heading("4. Eindresultaat", level=1)
    failed = "{% for r in norm.failed %}{{ r.id }} {{ r.title }}{% if not loop.last %}, {% endif %}{% endfor %}"
    d.add_paragraph("{%p if outcome == 'positive' %}")
    if follow_up:
        d.add_paragraph(
            "Positief. {% if audit_kind == 'follow_up' %}De dienstverlener voldoet nu aan alle vereisten; de "
            "voorwaardelijke registratie loopt verder als gewone registratie tot het einde van de periode van vijf "
            "jaar.{% else %}De dienstverlener voldoet nu aan alle vereisten; de auditcommissie adviseert een "
            "registratie voor vijf jaar.{% endif %}"
        ).runs[0].bold = True
    else:
        d.add_paragraph(
            "Positief. De dienstverlener voldoet aan de kmop-norm; de auditcommissie adviseert een registratie "
            "voor vijf jaar."
        ).runs[0].bold = True
    d.add_paragraph("{%p elif outcome == 'conditional' %}")
    d.add_paragraph(
        "Voorwaardelijk. De dienstverlener voldoet niet volledig aan de kmop-norm maar is op de goede weg. "
        "Niet geslaagd: " + failed + "."
    ).runs[0].bold = True
    d.add_paragraph(
        "Een opvolgingsaudit moet plaatsvinden tussen {{ follow_up_from|dutch_date }} en "
        "{{ follow_up_until|dutch_date }}. Daarbij worden enkel de niet geslaagde vereisten opnieuw beoordeeld; "
        "de vereisten die geslaagd, gedelibereerd of vrijgesteld zijn, worden niet opnieuw gecontroleerd."
    )
    d.add_paragraph("{%p else %}")
    d.add_paragraph("Negatief. Niet geslaagd: " + failed + ".").runs[0].bold = True
    if follow_up:
        d.add_paragraph(
            "{% if audit_kind == 'follow_up' %}De opvolgingsaudit is niet geslaagd: de voorwaardelijke registratie "
            "eindigt.{% else %}De bijkomende audit is niet geslaagd: er volgt geen registratie op basis van deze "
            "aanvraag; een nieuwe registratieaanvraag is mogelijk.{% endif %}"
        )
    else:
        d.add_paragraph(
            "De dienstverlener kan voor de niet geslaagde vereisten een bijkomende audit laten uitvoeren, uiterlijk "
            "op {{ additional_audit_by|dutch_date }}, om alsnog een registratie te bekomen."
        )
    d.add_paragraph("{%p endif %}")
    d.add_paragraph(
        "Dit resultaat en het auditrapport worden bezorgd aan de dienstverlener en aan het Agentschap Innoveren & "
        "Ondernemen, dat namens de minister over de registratie beslist."
    )
    d.add_paragraph("{%p if remarks is defined %}")
    d.add_heading("Opmerkingen", level=1)
    d.add_paragraph("{{ remarks }}")
    d.add_paragraph("{%p endif %}")
    _signature_space(d, "Voor de auditcommissie van {{ audit_firm.name }}")
    return d


def commission_decision() -> Document:
    return _decision("Beslissing van de auditcommissie", follow_up=False)


def follow_up_decision() -> Document:
    return _decision("Beslissing na {% if audit_kind == 'additional' %}bijkomende audit{% else %}opvolgingsaudit"
                     "{% endif %}", follow_up=True)


def registration_certificate() -> Document:
    d = _base("Attest van registratie", "Dienstverlener in de kmo-portefeuille")
    d.add_paragraph(
        "Het Agentschap Innoveren & Ondernemen bevestigt dat de onderstaande onderneming, op basis van het "
        "auditdossier en namens de bevoegde minister, geregistreerd is als dienstverlener in de kmo-portefeuille."
    )
    number = d.add_paragraph()
    number.add_run("Registratienummer: ").bold = True
    number.add_run("{{ registration_number }}").font.size = Pt(16)
    _table(d, [
        ("Dienst", "{{ service }}"),
        ("Thema's", "{{ themes|join(', ') }}"),
    ] + _provider_rows() + [
        ("Status", "{% if status == 'registered' %}geregistreerd{% else %}voorwaardelijk geregistreerd{% endif %}"),
        ("Geldig van", "{{ valid_from|dutch_date }}"),
        ("Geldig tot en met", "{{ valid_until|dutch_date }}"),
    ])
    d.add_heading("Grondslag", level=1)
    _table(d, [
        ("Auditrapport", "{{ basis.audit_report_number }}"),
        ("Beslissing auditcommissie", "{{ basis.decision_number }} van {{ basis.decision_date|dutch_date }}"),
        ("{% if basis.later_audit is defined and basis.later_audit.audit_kind == 'additional' %}Bijkomende audit"
         "{% else %}Opvolgingsaudit{% endif %}",
         "{% if basis.later_audit is defined %}rapport {{ basis.later_audit.report_number }}, beslissing "
         "{{ basis.later_audit.decision_number }} van {{ basis.later_audit.decision_date|dutch_date }}"
         "{% elif status == 'conditional' %}vereist{% if conditions.follow_up_from is defined %} tussen "
         "{{ conditions.follow_up_from|dutch_date }} en{% else %} uiterlijk op{% endif %} "
         "{{ conditions.follow_up_until|dutch_date }} (zie Voorwaarden){% else %}niet van toepassing{% endif %}"),
        ("Auditbureau", "{{ basis.audit_firm.name }} ({{ basis.audit_firm.enterprise_number|enterprise_number }})"),
    ])
    d.add_paragraph("{%p if basis.later_audit is defined %}")
    d.add_paragraph(
        "{% if basis.later_audit.audit_kind == 'follow_up' %}Na de geslaagde opvolgingsaudit (beslissing "
        "{{ basis.later_audit.decision_number }} van {{ basis.later_audit.decision_date|dutch_date }}) is de "
        "voorwaardelijke registratie van {{ valid_from|dutch_date }} een gewone registratie geworden; ze loopt tot "
        "en met {{ valid_until|dutch_date }}.{% else %}De registratie volgt op de geslaagde bijkomende audit "
        "(beslissing {{ basis.later_audit.decision_number }} van {{ basis.later_audit.decision_date|dutch_date }})."
        "{% endif %}"
    )
    d.add_paragraph("{%p endif %}")
    d.add_paragraph("{%p if status == 'conditional' %}")
    d.add_heading("Voorwaarden", level=1)
    d.add_paragraph(
        "Deze registratie is voorwaardelijk. Voor de volgende vereisten van de kmop-norm moet een opvolgingsaudit "
        "plaatsvinden{% if conditions.follow_up_from is defined %} tussen {{ conditions.follow_up_from|dutch_date }} "
        "en{% else %} uiterlijk op{% endif %} {{ conditions.follow_up_until|dutch_date }}:"
    )
    d.add_paragraph("{%p for r in condition_requirements %}")
    d.add_paragraph("{{ r.id }} {{ r.title }}", style="List Bullet")
    d.add_paragraph("{%p endfor %}")
    d.add_paragraph(
        "Als de opvolgingsaudit niet tijdig plaatsvindt of niet slaagt, eindigt de registratie."
    )
    d.add_paragraph("{%p endif %}")
    d.add_paragraph(
        "De registratie geldt voor vijf jaar vanaf de datum van registratie door de minister. "
        "Uitgereikt op {{ issued_at|dutch_date }}."
    )
    _signature_space(d, "Voor het Agentschap Innoveren & Ondernemen")
    return d


BUILDERS: dict[str, Callable[[], Document]] = {
    "sworn_statement": sworn_statement,
    "quote": quote,
    "preparation_pack": preparation_pack,
    "audit_report": audit_report,
    "commission_decision": commission_decision,
    "registration_certificate": registration_certificate,
    "follow_up_audit_report": follow_up_audit_report,
    "follow_up_decision": follow_up_decision,
}


def main(argv: list[str]) -> None:
    for kind in argv or list(BUILDERS):
        path = TEMPLATES / kind / "template.docx"
        BUILDERS[kind]().save(path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
