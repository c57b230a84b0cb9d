"""Each signature in the place its template marks for it: below the signer's label, covering no
text, on a last page that holds more than the signature block.

The documents are whole dossiers made by the pipeline (tests/signed_dossiers.py), with the
example applicant's data and with very long data, for every document kind: the certified quote
with the applicant's empty field, the accepted quote, the B-LTA decisions and certificates, the
follow-up documents; and the sworn statement as it is issued to be signed with an eID. What
is compared: the signature fields' rectangles in the final file against the words poppler's
``pdftotext -bbox-layout`` finds on the pages of the document as LibreOffice made it (the
signatures add no page content, and the stamps' own text would otherwise be found in them).
"""

from __future__ import annotations

import io
import subprocess
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import pytest
from docx import Document
from docx.shared import Pt
from pypdf import PdfReader

from kmop.demo import example_applicant
from kmop.jobs import DocumentJob, parse_job
from kmop.pipeline import envelope
from kmop.scenario import dossier_steps
from kmop.signature_layout import signature_layout
from kmop.signing_requests import _with_empty_signature_field
from signing.placement import SignatureBlock, SignatureLayout, SignaturePlacementError, place_fields
from signing.policy import policy_for, signature_field_name
from signing.roles import Role
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for
from templates.catalog import get_kind, kind_names
from templates.render import render_docx
from tests.signed_dossiers import SignedDocument, signed_dossier

XHTML = "{http://www.w3.org/1999/xhtml}"
#: how far below its label's last line a field may start
NEAR = 24.0


@dataclass(frozen=True)
class Word:
    text: str
    left: float
    top: float  # from the page's top edge, as pdftotext gives it
    right: float
    bottom: float


@dataclass(frozen=True)
class Field:
    name: str
    page: int
    left: float
    top: float  # from the page's top edge
    right: float
    bottom: float


def page_words(pdf: bytes) -> list[tuple[float, float, list[Word]]]:
    """Per page: its width, its height and its words, by pdftotext -bbox-layout."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "document.pdf"
        path.write_bytes(pdf)
        xhtml = subprocess.run(["pdftotext", "-bbox-layout", str(path), "-"], capture_output=True, check=True,
                               timeout=120).stdout
    pages = []
    for page in ElementTree.fromstring(xhtml).iter(f"{XHTML}page"):
        words = [Word(word.text or "", float(word.get("xMin")), float(word.get("yMin")), float(word.get("xMax")),
                      float(word.get("yMax"))) for word in page.iter(f"{XHTML}word")]
        pages.append((float(page.get("width")), float(page.get("height")), words))
    return pages


def visible_signature_fields(pdf: bytes) -> list[Field]:
    reader = PdfReader(io.BytesIO(pdf))
    fields = []
    for number, page in enumerate(reader.pages):
        height = float(page.mediabox.top)
        for annotation in page.get("/Annots") or []:
            annotation = annotation.get_object()
            field = annotation.get("/Parent", annotation).get_object()
            if field.get("/FT") != "/Sig":
                continue
            left, bottom, right, top = (float(value) for value in annotation["/Rect"])
            if abs(right - left) > 1 and abs(top - bottom) > 1:
                fields.append(Field(str(field["/T"]), number, min(left, right), height - max(top, bottom),
                                    max(left, right), height - min(top, bottom)))
    return fields


def _overlap(a: Word | Field, b: Word | Field) -> bool:
    return a.left < b.right and b.left < a.right and a.top < b.bottom and b.top < a.bottom


def label_words(words: list[Word], label: str) -> list[Word] | None:
    """The words of ``label``'s last occurrence among ``words`` (in pdftotext's order)."""
    wanted = label.split()
    found = None
    for start in range(len(words) - len(wanted) + 1):
        texts = [word.text for word in words[start:start + len(wanted)]]
        if texts[:-1] == wanted[:-1] and texts[-1].startswith(wanted[-1]):  # "auditbureau:" ends a label
            found = words[start:start + len(wanted)]
    return found


def check_placement(document: SignedDocument, expected: dict[str, str], pdf: bytes | None = None) -> None:
    """Every field of ``expected`` ({field name: label}) is visible in ``pdf`` (default: the
    document), on its page, below its label and over no word; the last page holds text above
    its signature block."""
    pages = page_words(document.first_revision)
    fields = {field.name: field for field in visible_signature_fields(pdf or document.pdf)}
    assert set(expected) <= set(fields), f"{document.name}: visible fields {sorted(fields)}, expected {sorted(expected)}"
    for name, label in expected.items():
        field = fields[name]
        width, height, words = pages[field.page]
        assert 0 <= field.left < field.right <= width and 0 <= field.top < field.bottom <= height, (document.name, field)
        covered = [word.text for word in words if _overlap(word, field)]
        assert not covered, f"{document.name}: {name} covers {covered}"
        found = label_words(words, label)
        assert found is not None, f"{document.name}: label {label!r} not on page {field.page + 1}"
        label_bottom = max(word.bottom for word in found)
        label_lines = [word for word in words if word.top >= found[0].top - 1 and word.bottom <= field.top
                       and abs(word.left - found[0].left) < 250]
        label_bottom = max([label_bottom] + [word.bottom for word in label_lines])
        assert label_bottom <= field.top <= label_bottom + NEAR, \
            f"{document.name}: {name} starts at {field.top:.0f}, its label {label!r} ends at {label_bottom:.0f}"
        assert abs(field.left - found[0].left) <= 3, f"{document.name}: {name} is not under its label"
    last = len(pages) - 1
    _, _, words = pages[last]
    blocks = [label_words(words, label) for label in expected.values()]
    block_top = min((found[0].top for found in blocks if found), default=None)
    assert block_top is not None, f"{document.name}: the signature block is not on the last page"
    above = [word.text for word in words if word.bottom < block_top]
    assert above, f"{document.name}: the last page holds only the signature block"


def expected_fields(document: SignedDocument) -> dict[str, str]:
    """{field name: label} of the signatures ``document`` carries (an accepted quote: both)."""
    layout = signature_layout(get_kind(document.kind))
    names = {signature_field_name(document.kind, policy_for(document.kind).role)}
    kind = get_kind(document.kind)
    if kind.countersigns:
        names.add(signature_field_name(kind.countersigns, policy_for(kind.countersigns).role))
    names.update(policy_for(kind.countersigns or document.kind).approval_fields)
    return {block.field_name: block.label for block in layout.blocks if block.field_name in names}


@pytest.fixture(scope="module", params=["short", "long"])
def dossier(request: pytest.FixtureRequest, converter_pool, identities) -> list[SignedDocument]:
    return signed_dossier("conditional", request.param == "long", converter_pool, identities)


def test_every_kind_has_a_label_for_each_signature_it_carries() -> None:
    """kind.json names a block for the policy's signer of each kind and for each approval a
    certification prepares, and the template prints each label."""
    for name in kind_names():
        kind = get_kind(name)
        layout = signature_layout(kind)
        policy = policy_for(name)
        wanted = {signature_field_name(name, policy.role), *policy.approval_fields}
        assert wanted <= {block.field_name for block in layout.blocks}, name
        if not kind.countersigns:
            template = Document(str(kind.template_path))
            paragraphs = [paragraph.text for table in template.tables for row in table.rows for cell in row.cells
                          for paragraph in cell.paragraphs]
            for block in layout.blocks:
                assert any(text.startswith(block.label) for text in paragraphs), (name, block.label)


@pytest.mark.slow  # whole dossiers through the pipeline, or a dozen conversions
def test_every_signature_is_below_its_label_and_covers_no_text(dossier: list[SignedDocument]) -> None:
    assert {document.kind for document in dossier} >= set(kind_names())
    for document in dossier:
        check_placement(document, expected_fields(document))


@pytest.mark.slow  # whole dossiers through the pipeline, or a dozen conversions
def test_the_certified_quote_prepares_the_acceptance_below_the_applicant_s_label(
    dossier: list[SignedDocument],
) -> None:
    quote = next(document for document in dossier if document.kind == "quote")
    acceptance = signature_field_name("quote_acceptance", Role.APPLICANT)
    fields = {field.name: field for field in visible_signature_fields(quote.pdf)}
    assert acceptance in fields  # empty, prepared by the certification
    check_placement(quote, {acceptance: "Voor akkoord, de aanvrager"})
    firm = fields[signature_field_name("quote", Role.AUDIT_FIRM)]
    assert fields[acceptance].left > firm.right and abs(fields[acceptance].top - firm.top) < 1  # side by side


@pytest.mark.slow  # whole dossiers through the pipeline, or a dozen conversions
def test_the_sworn_statement_issued_for_an_eid_signature_has_its_field_below_the_label(
    dossier: list[SignedDocument],
) -> None:
    statement = next(document for document in dossier if document.kind == "sworn_statement")
    name = signature_field_name("sworn_statement", Role.APPLICANT)
    issued = _with_empty_signature_field(statement.first_revision, name, signature_layout(get_kind("sworn_statement")))
    check_placement(statement, {name: "Handtekening van de aanvrager"}, issued)


@pytest.fixture(scope="module")
def pack_job() -> DocumentJob:
    return next(step for step in dossier_steps(example_applicant())
                if isinstance(step, DocumentJob) and step.kind == "preparation_pack")


@pytest.mark.slow  # whole dossiers through the pipeline, or a dozen conversions
def test_the_block_crosses_a_page_break_with_the_lines_before_it(pack_job: DocumentJob, converter_pool,
                                                                 identities) -> None:
    """The preparation pack's list of known dossiers grows one row at a time: at the length
    where the block no longer fits on its page, and one row short of it, the stamp is below its
    label and the last page holds more than the block (the rows and lines before it go along)."""
    converted: dict[int, bytes] = {}

    def pack(rows: int) -> bytes:
        if rows not in converted:
            message = pack_job.to_message()
            message["data"]["known_dossiers"] = [
                {"reference": f"KMOP-2024-{100000 + i}", "client": f"Klant {i}", "service": "advies",
                 "started_on": "2024-05-01"} for i in range(rows)]
            job = parse_job(message)
            converted[rows] = converter_pool.convert(render_docx(job.document_kind, job.data, envelope(job)))
        return converted[rows]

    def pages(rows: int) -> int:
        return len(PdfReader(io.BytesIO(pack(rows))).pages)

    low, high = 1, 80  # 80 rows are more than a page
    assert pages(low) < pages(high)
    while high - low > 1:  # the fewest rows that push the block onto another page
        middle = (low + high) // 2
        low, high = (low, middle) if pages(middle) > pages(low) else (middle, high)
    signer = DocumentSigner(identities, timestamper_for(None, identities))
    name = signature_field_name("preparation_pack", Role.AUDIT_FIRM)
    for rows in (low, high):
        signed = signer.sign(pack(rows), policy_for("preparation_pack"), field_name=name, reason="test",
                             layout=signature_layout(get_kind("preparation_pack")))
        check_placement(SignedDocument(f"pack with {rows} known dossiers", "preparation_pack", signed),
                        {name: "Voor het auditbureau"})


HOSTILE_LIMITS = {"provider.name": 300, "provider.contact.name": 200, "signatory.name": 200, "signatory.place": 100,
                  "provider.registered_office.street": 200, "provider.registered_office.city": 100,
                  "provider.legal_form": 60, "declarations.involvement": 2000}


@pytest.mark.parametrize("variant", ["maximum length", "markup and other scripts"])
def test_a_hostile_sworn_statement_has_its_stamp_below_its_label(variant: str, converter_pool, identities) -> None:
    """Every value at its maximum length in Latin, Polish and Japanese (the label wraps over
    four lines, its Japanese set in a fallback font), or full of markup and right-to-left text."""
    from tests.support.hostile_data import SWORN_MARKUP, message_of, set_at, tokens

    message = message_of("sworn_statement")
    if variant == "maximum length":
        message["data"]["declarations"]["no_misuse_or_bankruptcy"] = False
        for number, (path, limit) in enumerate(HOSTILE_LIMITS.items()):
            set_at(message["data"], path, tokens(f"L{number}", limit, ("Zoë", "Łódź", "東京")[number % 3]))
    else:
        for path, value in SWORN_MARKUP.items():
            set_at(message["data"], path, value)
    job = parse_job(message)
    pdf = converter_pool.convert(render_docx(job.document_kind, job.data, envelope(job)))
    name = signature_field_name("sworn_statement", Role.APPLICANT)
    signed = DocumentSigner(identities, timestamper_for(None, identities)).sign(
        pdf, policy_for("sworn_statement"), field_name=name, reason="test", layout=signature_layout(job.document_kind))
    check_placement(SignedDocument(variant, "sworn_statement", signed), {name: "Handtekening van de aanvrager"})


# --- no place, no stamp -------------------------------------------------------------------------


def _pdf(converter_pool, *paragraphs: tuple[str, bool]) -> bytes:
    """A one-page PDF of ``paragraphs`` (text, bold), one after another with no space between."""
    document = Document()
    for text, bold in paragraphs:
        paragraph = document.add_paragraph()
        paragraph.add_run(text).bold = bold
        paragraph.paragraph_format.space_after = Pt(0)
    out = io.BytesIO()
    document.save(out)
    return converter_pool.convert(out.getvalue())


LAYOUT = SignatureLayout("test_kind", (SignatureBlock("Handtekening-applicant-test_kind", "aanvrager (applicant)",
                                                      "Handtekening van de aanvrager"),))


def test_a_label_with_text_right_below_it_is_an_error_naming_kind_and_signer(converter_pool, identities) -> None:
    pdf = _pdf(converter_pool, ("Handtekening van de aanvrager", True), ("Tekst die hier niet mag staan.", False))
    with pytest.raises(SignaturePlacementError, match=r"test_kind: no place for the signature of aanvrager "
                                                      r"\(applicant\).*'Handtekening van de aanvrager'.*cover text"):
        place_fields(pdf, LAYOUT, [("Handtekening-applicant-test_kind", "aanvrager (applicant)")])
    signer = DocumentSigner(identities, timestamper_for(None, identities))
    with pytest.raises(SignaturePlacementError):
        signer.sign(pdf, policy_for("sworn_statement"), field_name="Handtekening-applicant-test_kind",
                    reason="test", layout=LAYOUT)


def test_a_missing_label_is_an_error_naming_kind_signer_and_label(converter_pool) -> None:
    pdf = _pdf(converter_pool, ("Een document zonder handtekeningblok.", False))
    with pytest.raises(SignaturePlacementError, match=r"test_kind: .*aanvrager \(applicant\).*label "
                                                      r"'Handtekening van de aanvrager': the label is not in"):
        place_fields(pdf, LAYOUT, [("Handtekening-applicant-test_kind", "aanvrager (applicant)")])
    with pytest.raises(SignaturePlacementError, match="no signature block for the signature of"):
        place_fields(pdf, LAYOUT, [("Handtekening-agency-other", "agency")])


def test_without_a_layout_the_field_goes_in_free_space_on_the_last_page(blank_pdf_bytes: bytes, converter_pool) -> None:
    [first, second] = place_fields(blank_pdf_bytes, None, [("A", "a"), ("B", "b")])
    assert first.page == second.page == 0 and first.box[3] <= second.box[1]
    pdf = _pdf(converter_pool, *[(f"Regel {number}", False) for number in range(40)])
    [place] = place_fields(pdf, None, [("A", "a")])
    width, height, words = page_words(pdf)[-1]
    field = Field("A", 0, place.box[0], height - place.box[3], place.box[2], height - place.box[1])
    assert not [word.text for word in words if _overlap(word, field)]
