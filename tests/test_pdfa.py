"""The PDF/A-2b rules that signing can break, checked on every revision of every signed document.

LibreOffice writes PDF/A-2b; each signature appends a revision (a field, its appearance, the
signature value; at B-LTA a DSS and a document timestamp) and that revision must keep the file
conforming. No PDF/A validator is packaged for this machine, so the rules that apply to what
signing adds are checked here, each on every revision (the file cut at each %%EOF):

- ISO 19005-2 6.2.11.4.1: every font used for rendering is embedded, the fonts of annotation
  appearances included (poppler's pdffonts, its "emb" column);
- 6.2.11.3.2: a Type 2 CIDFont has a CIDToGIDMap; 6.2.11.5: the widths in the font dictionary
  are those of the embedded font program; 6.2.11.8: no text refers to the .notdef glyph, and
  (6.2.11.4.1) the program has an outline for every glyph the text shows;
- 6.6.2.1 and 6.6.4: the catalog keeps its XMP metadata with pdfaid:part 2 and
  pdfaid:conformance B; 6.2.3: the OutputIntent (GTS_PDFA1, its ICC profile unchanged);
- 6.3.2: every annotation has the flags F with Print set and Hidden, Invisible, NoView and
  ToggleNoView clear; 6.3.3: every annotation with an area has an appearance dictionary with
  only N, a stream;
- 6.1.3: every trailer has an ID.

(PDF/A-1's rule that the document information dictionary equal the XMP metadata, ISO 19005-1
6.7.3, is not one of PDF/A-2's.)
"""

from __future__ import annotations

import io
import re
import subprocess
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from fontTools import ttLib
from pypdf import PdfReader
from pypdf.generic import StreamObject

from signing.roles import Role
from signing import stamp
from signing.stamp import STAMP_FONT_ENV, StampFontMissing, printable, stamp_style, text_params
from tests.signed_dossiers import SignedDocument, revisions, signed_dossier

PDFAID = "http://www.aiim.org/pdfa/ns/id/"
PRINT, HIDDEN, INVISIBLE, NO_VIEW, TOGGLE_NO_VIEW = 4, 2, 1, 32, 256


def fonts_not_embedded(pdf: bytes) -> list[str]:
    """The fonts pdffonts lists as not embedded (it reads page and annotation resources)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "revision.pdf"
        path.write_bytes(pdf)
        listing = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True,
                                 timeout=60).stdout.splitlines()
    rows = [line.split() for line in listing[2:] if line.strip()]
    return [row[0] for row in rows if row[-5] != "yes"]


def pdfaid(reader: PdfReader) -> dict[str, str]:
    """pdfaid:part and pdfaid:conformance of the catalog's XMP packet (attribute or element)."""
    packet = reader.trailer["/Root"]["/Metadata"].get_object().get_data()
    found = {}
    for element in ElementTree.fromstring(packet).iter():
        for name, value in element.attrib.items():
            if name.startswith("{" + PDFAID):
                found[name.split("}")[1]] = value
        if element.tag.startswith("{" + PDFAID):
            found[element.tag.split("}")[1]] = (element.text or "").strip()
    return found


def output_intent_profile(reader: PdfReader) -> bytes:
    [intent] = [entry.get_object() for entry in reader.trailer["/Root"]["/OutputIntents"]]
    assert intent["/S"] == "/GTS_PDFA1"
    return intent["/DestOutputProfile"].get_object().get_data()


def check_annotations(reader: PdfReader, where: str) -> list[StreamObject]:
    """The flags and appearances of every annotation; the appearance streams."""
    appearances = []
    for number, page in enumerate(reader.pages, start=1):
        for annotation in page.get("/Annots") or []:
            annotation = annotation.get_object()
            name = f"{where} page {number} {annotation.get('/T', annotation.get('/Subtype'))}"
            flags = int(annotation.get("/F", 0))
            assert flags & PRINT, f"{name}: Print flag not set"
            assert not flags & (HIDDEN | INVISIBLE | NO_VIEW | TOGGLE_NO_VIEW), f"{name}: flags {flags}"
            left, bottom, right, top = (float(value) for value in annotation["/Rect"])
            if abs(right - left) < 1e-3 or abs(top - bottom) < 1e-3:
                continue
            appearance = annotation.get("/AP")
            assert appearance is not None, f"{name}: no appearance"
            assert set(appearance.get_object()) == {"/N"}, f"{name}: appearance keys {set(appearance)}"
            normal = appearance.get_object()["/N"].get_object()
            assert isinstance(normal, StreamObject), f"{name}: N is not a stream"
            appearances.append(normal)
    return appearances


def _forms(stream: StreamObject, depth: int = 0):  # type: ignore[no-untyped-def]
    """``stream`` and the form XObjects it draws, with their resources."""
    yield stream
    resources = stream.get("/Resources")
    if resources is None or depth > 8:
        return
    for xobject in (resources.get_object().get("/XObject") or {}).values():
        xobject = xobject.get_object()
        if xobject.get("/Subtype") == "/Form":
            yield from _forms(xobject, depth + 1)


def check_appearance_fonts(appearance: StreamObject, where: str) -> int:
    """The rules for the composite fonts of an appearance; the number of glyphs shown."""
    shown = 0
    for form in _forms(appearance):
        resources = form.get("/Resources")
        fonts = (resources.get_object().get("/Font") or {}) if resources is not None else {}
        content = form.get_data()
        for resource_name, font in fonts.items():
            font = font.get_object()
            assert font["/Subtype"] == "/Type0", f"{where}: {resource_name} is {font['/Subtype']}"
            descendant = font["/DescendantFonts"][0].get_object()
            assert descendant["/Subtype"] == "/CIDFontType2"
            assert "/CIDToGIDMap" in descendant, f"{where}: no CIDToGIDMap"
            program = descendant["/FontDescriptor"].get_object()["/FontFile2"].get_object().get_data()
            with ttLib.TTFont(io.BytesIO(program)) as tt:
                scale = 1000 / tt["head"].unitsPerEm
                order = tt.getGlyphOrder()
                widths = _widths(descendant["/W"])
                for cid, width in widths.items():
                    advance = tt["hmtx"][order[cid]][0] * scale
                    assert abs(width - advance) <= 1, f"{where}: glyph {cid} is {width} wide in /W, {advance} in the font"
                used = _shown_cids(content)
                spaces = _whitespace_cids(font)
                for cid in used:
                    assert cid != 0, f"{where}: text shows .notdef"
                    assert cid < len(order) and cid in widths, f"{where}: glyph {cid} is not in the font"
                    glyph = tt["glyf"][order[cid]]
                    assert cid in spaces or glyph.numberOfContours != 0, f"{where}: glyph {cid} has no outline"
                shown += len(used)
    return shown


def _widths(array) -> dict[int, float]:  # type: ignore[no-untyped-def]
    widths, items, i = {}, list(array), 0
    while i < len(items):
        first = int(items[i])
        following = items[i + 1]
        if isinstance(following, list):
            for offset, width in enumerate(following):
                widths[first + offset] = float(width)
            i += 2
        else:
            for cid in range(first, int(following) + 1):
                widths[cid] = float(items[i + 2])
            i += 3
    return widths


def _shown_cids(content: bytes) -> list[int]:
    """The CIDs of the hex strings the content shows (two bytes each: Identity-H)."""
    cids = []
    for hexes in re.findall(rb"(?<!<)<([0-9A-Fa-f\s]+)>(?!>)", content):
        digits = re.sub(rb"\s", b"", hexes)
        cids += [int(digits[i:i + 4], 16) for i in range(0, len(digits), 4)]
    return cids


def _whitespace_cids(font) -> set[int]:  # type: ignore[no-untyped-def]
    """The CIDs the font's ToUnicode map maps to whitespace."""
    to_unicode = font.get("/ToUnicode")
    if to_unicode is None:
        return set()
    spaces = set()
    for cid, text in re.findall(rb"<([0-9A-Fa-f]{4})>\s*<([0-9A-Fa-f]+)>", to_unicode.get_object().get_data()):
        if bytes.fromhex(text.decode()).decode("utf-16-be").isspace():
            spaces.add(int(cid, 16))
    return spaces


def check_revisions(document: SignedDocument) -> None:
    parts = revisions(document.pdf)
    assert len(parts) >= 2, f"{document.name}: not signed"
    first = PdfReader(io.BytesIO(parts[0]))
    profile = output_intent_profile(first)
    shown = 0
    for number, revision in enumerate(parts):
        where = f"{document.name} revision {number}"
        assert not fonts_not_embedded(revision), f"{where}: fonts not embedded: {fonts_not_embedded(revision)}"
        reader = PdfReader(io.BytesIO(revision))
        assert pdfaid(reader) == {"part": "2", "conformance": "B"}, f"{where}: {pdfaid(reader)}"
        assert output_intent_profile(reader) == profile, f"{where}: the OutputIntent changed"
        assert reader.trailer.get("/ID"), f"{where}: no ID in the trailer"
        for appearance in check_annotations(reader, where):
            shown += check_appearance_fonts(appearance, where)
    assert shown > 0, f"{document.name}: no stamp text"


@pytest.fixture(scope="module", params=["short", "long"])
def dossier(request: pytest.FixtureRequest, converter_pool, identities) -> list[SignedDocument]:
    return signed_dossier("conditional", request.param == "long", converter_pool, identities)


@pytest.mark.slow  # whole dossiers through the pipeline
def test_every_revision_of_every_signed_document_keeps_to_pdfa_2b(dossier: list[SignedDocument]) -> None:
    """Every kind, B-T and B-LTA, the certified quote with its empty acceptance field and the
    accepted one."""
    from templates.catalog import kind_names

    assert {document.kind for document in dossier} == set(kind_names())
    for document in dossier:
        check_revisions(document)


@pytest.mark.slow  # whole dossiers through the pipeline
def test_the_sworn_statement_issued_for_an_eid_signature_keeps_to_pdfa_2b(dossier: list[SignedDocument]) -> None:
    """The revision that adds the empty field the signer's eID software signs into."""
    from kmop.signature_layout import signature_layout
    from kmop.signing_requests import _with_empty_signature_field
    from templates.catalog import get_kind

    statement = next(document for document in dossier if document.kind == "sworn_statement")
    issued = _with_empty_signature_field(statement.first_revision, "Handtekening-applicant-sworn_statement",
                                         signature_layout(get_kind("sworn_statement")))
    assert not fonts_not_embedded(issued)
    reader = PdfReader(io.BytesIO(issued))
    assert pdfaid(reader) == {"part": "2", "conformance": "B"}
    assert output_intent_profile(reader) == output_intent_profile(PdfReader(io.BytesIO(statement.first_revision)))
    assert len(check_annotations(reader, "issued")) == 1 and reader.trailer.get("/ID")


ACCENTED = "Zoë Łódź-Nguyễn, Ærøskøbing Şerban Ţăndărei, François Müller-Đorđević"


def test_names_with_latin_accents_are_drawn_as_given_in_an_embedded_font(
    blank_pdf_bytes: bytes, identities, tmp_path: Path
) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    signer = identities.signer_for(Role.APPLICANT)
    writer = IncrementalPdfFileWriter(io.BytesIO(blank_pdf_bytes), strict=False)
    pdf_signer = signers.PdfSigner(signers.PdfSignatureMetadata(field_name="Handtekening"), signer=signer,
                                   stamp_style=stamp_style(),
                                   new_field_spec=fields.SigFieldSpec("Handtekening", box=(40, 600, 560, 660)))
    out = io.BytesIO()
    pdf_signer.sign_pdf(writer, output=out, appearance_text_params=text_params(ACCENTED, Role.AGENCY.dutch))
    signed = out.getvalue()
    (tmp_path / "signed.pdf").write_bytes(signed)
    text = subprocess.run(["pdftotext", str(tmp_path / "signed.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert ACCENTED in " ".join(text.split()), text
    assert "Agentschap Innoveren & Ondernemen" in text
    reader = PdfReader(io.BytesIO(signed))
    [appearance] = check_annotations(reader, "accented")
    assert check_appearance_fonts(appearance, "accented") > len(ACCENTED) // 2
    assert not fonts_not_embedded(signed)


def test_characters_the_font_lacks_are_written_as_their_base_letter_or_a_question_mark() -> None:
    assert printable(ACCENTED) == ACCENTED
    assert printable("Ωmega 東京 ﬁn\u0007") == "?mega ?? fin "
    assert printable("Zoe\u0308") == "Zoë"  # composed before it is drawn


def test_the_stamp_of_a_later_signer_embeds_the_glyphs_its_own_text_needs(
    blank_pdf_bytes: bytes, identities, tmp_path: Path
) -> None:
    """Subsets are kept per set of glyphs: a name with other letters gets a subset with them."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    for name in ("Aa Bb", "Xx Yy Qq Ŵŷ", "Aa Bb"):
        writer = IncrementalPdfFileWriter(io.BytesIO(blank_pdf_bytes), strict=False)
        pdf_signer = signers.PdfSigner(signers.PdfSignatureMetadata(field_name="H"),
                                       signer=identities.signer_for(Role.APPLICANT), stamp_style=stamp_style(),
                                       new_field_spec=fields.SigFieldSpec("H", box=(40, 600, 400, 650)))
        out = io.BytesIO()
        pdf_signer.sign_pdf(writer, output=out, appearance_text_params=text_params(name, "rol"))
        [appearance] = check_annotations(PdfReader(io.BytesIO(out.getvalue())), name)
        check_appearance_fonts(appearance, name)


@pytest.fixture
def other_stamp_font(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Lets a test name another stamp font; the process's font is read again afterwards."""
    def use(path: str) -> None:
        monkeypatch.setenv(STAMP_FONT_ENV, path)
        stamp.stamp_font_path.cache_clear()
        stamp._loaded_font.cache_clear()

    yield use
    monkeypatch.undo()
    stamp.stamp_font_path.cache_clear()
    stamp._loaded_font.cache_clear()


def test_a_font_pyhanko_would_draw_too_wide_is_refused_naming_it(other_stamp_font) -> None:  # type: ignore[no-untyped-def]
    """pyHanko writes widths in font units: Liberation Sans (2048 per em) would come out twice
    as wide as its glyphs (check_appearance_fonts' width rule fails on it)."""
    liberation = "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf"
    other_stamp_font(liberation)
    with pytest.raises(StampFontMissing, match=f"{liberation} has 2048 units per em"):
        stamp._loaded_font()
    other_stamp_font("/nonexistent/font.ttf")
    with pytest.raises(StampFontMissing, match="/nonexistent/font.ttf exists.*KMOP_STAMP_FONT"):
        stamp._loaded_font()
