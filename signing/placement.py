"""Where a visible signature goes: in the space its template leaves below the signer's label.

A document kind's template prints, per signature, a bold label ("Voor het auditbureau: ...")
over an empty space (tools/build_templates.py); the kind lists those labels (``signatures`` in
its ``kind.json``), and whoever signs passes them in as a ``SignatureLayout``: signing does not
read the templates. The label is looked for in the converted PDF, from the last page back (the
signature block ends the document); the field goes right below the label's last line, left-
aligned with it, as wide as its column (the next label on the same line ends it, as on the
quote, whose two signers sign side by side). Before a field is placed it is checked against
every text box of its page and every annotation on it: a field that would cover text, another
signature or leave the page, and a label that is not found, are errors (``SignaturePlacementError``, naming the document kind,
the signer and the label), never a stamp drawn over the text.

Text boxes come from PDFium (``pypdfium2``): a few milliseconds for the last page of a document.
PDFium is not thread-safe; every call into it here holds one lock.

Without a layout (a caller that signs a bare PDF: tests, the warm start's one-line document)
the field goes in the lowest free space of the last page, with the same checks.
"""

from __future__ import annotations

import ctypes
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw

from kmop.errors import SigningError

#: left, bottom, right, top in PDF points (origin at the page's lower left corner)
Box = tuple[float, float, float, float]

STAMP_HEIGHT = 44.0
STAMP_WIDTH = 300.0
MIN_STAMP_WIDTH = 160.0
_BELOW_LABEL = 5.0  # between the label's last line (its glyphs) and the stamp
#: kept free around every text box (PDFium's boxes are the glyphs' own; a reader's text boxes
#: reach from the font's ascender to its descender, a few points more above and below)
_CLEARANCE_X = 1.5
_CLEARANCE_Y = 3.5
_COLUMN_GAP = 8.0  # between a stamp and the next column's label
_PAGE_MARGIN = 28.0  # a stamp never comes closer to the page's edge

_PDFIUM = threading.Lock()


@dataclass(frozen=True)
class SignatureBlock:
    """A signature's place in a template: the field that signature signs, who signs it (as the
    error messages name them) and the label its block starts with."""

    field_name: str
    signer: str
    label: str


@dataclass(frozen=True)
class SignatureLayout:
    """Every signature block of a document kind."""

    kind: str
    blocks: tuple[SignatureBlock, ...]

    def block(self, field_name: str) -> SignatureBlock | None:
        return next((block for block in self.blocks if block.field_name == field_name), None)


@dataclass(frozen=True)
class FieldPlace:
    field_name: str
    page: int  # 0-based
    box: tuple[int, int, int, int]


class SignaturePlacementError(SigningError):
    """A visible signature field that has no place: the message names the kind, the signer and
    the label, and what is in the way."""


class _Page:
    """One page's text and annotations, read once; character boxes on demand."""

    def __init__(self, document: pdfium.PdfDocument, index: int) -> None:
        self.index = index
        self._page = document[index]
        self.width, self.height = self._page.get_size()
        self._text = self._page.get_textpage()
        #: PDFium's text rectangles: one per run of text on a line
        self.lines: tuple[Box, ...] = tuple(self._text.get_rect(i) for i in range(self._text.count_rects()))
        self.annotations = _annotation_boxes(self._page)
        count = self._text.count_chars()
        text = self._text.get_text_range(0, count)
        if len(text) != count:  # characters outside the BMP: one code point per character index
            text = "".join(chr(pdfium_raw.FPDFText_GetUnicode(self._text.raw, i) or 32) for i in range(count))
        #: the page's text, one character per PDFium character index
        self.text = text

    def find(self, label: str) -> tuple[int, int, Box] | None:
        """Where ``label``'s last occurrence on the page is: its first and end character index
        and the box of its words (any whitespace, a line break included, between them)."""
        words = label.split()
        found = None
        for found in re.finditer(r"\s+".join(map(re.escape, words)), self.text) if words else ():
            pass
        if found is None:
            return None
        boxes = [self._text.get_charbox(i) for i in range(found.start(), found.end()) if not self.text[i].isspace()]
        return (found.start(), found.end(), _union(boxes)) if boxes else None

    def label_extent(self, start: int, end: int, anchor: Box, right: float) -> Box:
        """The whole label paragraph that starts with the words ``text[start:end]``: the text
        after them in the label's style (a name that completes it, on the same line or wrapped
        under it), as far as it stays in the label's column (left of ``right``). The style is
        boldness and size, not the font: a name in another script is set in a fallback font."""
        style = self._style(start)
        boxes = [anchor]
        for i in range(end, len(self.text)):
            if self.text[i].isspace():
                continue
            box = self._text.get_charbox(i)
            if self._style(i) != style or box[0] < anchor[0] - 2 or box[2] > right or box[1] > anchor[3]:
                break
            boxes.append(box)
        return _union(boxes)

    def _style(self, index: int) -> tuple[bool, float]:
        buffer = ctypes.create_string_buffer(128)
        length = pdfium_raw.FPDFText_GetFontInfo(self._text.raw, index, buffer, len(buffer), None)
        name = buffer.raw[:max(length - 1, 0)].lower()
        bold = any(weight in name for weight in (b"bold", b"black", b"heavy"))
        return bold, round(pdfium_raw.FPDFText_GetFontSize(self._text.raw, index), 1)

    def close(self) -> None:
        self._text.close()
        self._page.close()

    @property
    def content_left(self) -> float:
        return min((line[0] for line in self.lines), default=_PAGE_MARGIN)

    @property
    def content_right(self) -> float:
        """The right margin mirrors the left one (the templates' margins are equal)."""
        return self.width - self.content_left


def _annotation_boxes(page: pdfium.PdfPage) -> tuple[Box, ...]:
    boxes = []
    for i in range(pdfium_raw.FPDFPage_GetAnnotCount(page.raw)):
        annotation = pdfium_raw.FPDFPage_GetAnnot(page.raw, i)
        try:
            rect = pdfium_raw.FS_RECTF()
            if pdfium_raw.FPDFAnnot_GetRect(annotation, ctypes.byref(rect)):
                box = (min(rect.left, rect.right), min(rect.bottom, rect.top),
                       max(rect.left, rect.right), max(rect.bottom, rect.top))
                if box[2] - box[0] > 1 and box[3] - box[1] > 1:
                    boxes.append(box)
        finally:
            pdfium_raw.FPDFPage_CloseAnnot(annotation)
    return tuple(boxes)


def place_fields(pdf: bytes, layout: SignatureLayout | None, fields: Sequence[tuple[str, str]]) -> list[FieldPlace]:
    """A place for each of ``fields`` (field name, signer), in order; each also clears those
    placed before it. ``SignaturePlacementError`` when one has none."""
    with _PDFIUM, _document(pdf) as document:
        pages: dict[int, _Page] = {}
        try:
            return _place(document, pages, layout, fields)
        finally:
            for page in pages.values():
                page.close()


def _place(document: pdfium.PdfDocument, pages: dict[int, _Page], layout: SignatureLayout | None,
           fields: Sequence[tuple[str, str]]) -> list[FieldPlace]:
    placed: list[FieldPlace] = []
    for field_name, signer in fields:
        if layout is None:
            place = _lowest_free_place(_page(document, len(document) - 1, pages), field_name, signer, placed)
        else:
            block = layout.block(field_name)
            if block is None:
                raise SignaturePlacementError(
                    f"{layout.kind}: no signature block for the signature of {signer} ({field_name}) "
                    "in the kind's signatures")
            place = _below_label(document, pages, layout, block, placed)
        placed.append(place)
    return placed


@contextmanager
def _document(pdf: bytes) -> Iterator[pdfium.PdfDocument]:
    try:
        document = pdfium.PdfDocument(pdf)
    except pdfium.PdfiumError as exc:
        raise SigningError(f"cannot read this PDF to place the signature: {exc}") from exc
    try:
        yield document
    finally:
        document.close()


def _page(document: pdfium.PdfDocument, index: int, cache: dict[int, _Page]) -> _Page:
    if index not in cache:
        cache[index] = _Page(document, index)
    return cache[index]


def _find_label(document: pdfium.PdfDocument, pages: dict[int, _Page],
                label: str) -> tuple[_Page, tuple[int, int, Box]] | None:
    """The page of the label's last occurrence, from the last page back, and where it is."""
    for index in range(len(document) - 1, -1, -1):
        page = _page(document, index, pages)
        found = page.find(label)
        if found is not None:
            return page, found
    return None


def _below_label(document: pdfium.PdfDocument, pages: dict[int, _Page], layout: SignatureLayout,
                 block: SignatureBlock, placed: list[FieldPlace]) -> FieldPlace:
    def fail(reason: str) -> SignaturePlacementError:
        return SignaturePlacementError(
            f"{layout.kind}: no place for the signature of {block.signer} ({block.field_name}) below its "
            f"label {block.label!r}: {reason}")

    found = _find_label(document, pages, block.label)
    if found is None:
        raise fail("the label is not in the document")
    page, (start, end, anchor) = found
    beside = [where for other in layout.blocks if other is not block
              for where in [page.find(other.label)]
              if where is not None and _vertical_overlap(where[2], anchor) > 0 and abs(where[2][0] - anchor[0]) >= 20]
    # signers side by side: each label starts a column, and their stamps line up
    starts = sorted([anchor[0]] + [box[0] for _, _, box in beside])
    column_end = {left: next((x for x in starts if x > left), page.content_right + _COLUMN_GAP) for left in starts}
    label = page.label_extent(start, end, anchor, column_end[anchor[0]])
    right = column_end[anchor[0]] - _COLUMN_GAP
    bottom = min([label[1]] + [page.label_extent(*other, column_end[other[2][0]])[1] for other in beside])
    top = bottom - _BELOW_LABEL
    box = (label[0], top - STAMP_HEIGHT, min(label[0] + STAMP_WIDTH, right), top)
    if box[2] - box[0] < MIN_STAMP_WIDTH:
        raise fail(f"its column on page {page.index + 1} is {box[2] - box[0]:.0f} pt wide, "
                   f"{MIN_STAMP_WIDTH:.0f} pt are needed")
    problem = _obstacle(page, box, placed)
    if problem:
        raise fail(f"on page {page.index + 1} it would {problem}")
    return FieldPlace(block.field_name, page.index, _whole_points(box))


def _lowest_free_place(page: _Page, field_name: str, signer: str, placed: list[FieldPlace]) -> FieldPlace:
    left = max(page.content_left, _PAGE_MARGIN)
    width = min(STAMP_WIDTH, page.width - 2 * left)
    bottom = _PAGE_MARGIN
    while bottom + STAMP_HEIGHT <= page.height - _PAGE_MARGIN:
        box = (left, bottom, left + width, bottom + STAMP_HEIGHT)
        if width >= MIN_STAMP_WIDTH and _obstacle(page, box, placed) is None:
            return FieldPlace(field_name, page.index, _whole_points(box))
        bottom += 4.0
    raise SignaturePlacementError(
        f"no free space on the last page for the signature of {signer} ({field_name})")


def _obstacle(page: _Page, box: Box, placed: list[FieldPlace]) -> str | None:
    """What ``box`` would cover or leave, or None when it is free."""
    if (box[0] < _PAGE_MARGIN or box[1] < _PAGE_MARGIN or box[2] > page.width - _PAGE_MARGIN
            or box[3] > page.height - _PAGE_MARGIN):
        return "leave the page"
    for line in page.lines:
        if _overlaps(_grown(line, _CLEARANCE_X, _CLEARANCE_Y), box):
            return f"cover text at ({line[0]:.0f}, {line[1]:.0f})-({line[2]:.0f}, {line[3]:.0f})"
    for annotation in page.annotations:
        if _overlaps(annotation, box):
            return "cover another annotation (a signature field)"
    for other in placed:
        if other.page == page.index and _overlaps(other.box, box):
            return f"cover the field of {other.field_name}"
    return None


def _whole_points(box: Box) -> tuple[int, int, int, int]:
    """``box`` shrunk to whole points (a field's rectangle in the PDF)."""
    left, bottom, right, top = box
    return int(-(-left // 1)), int(-(-bottom // 1)), int(right // 1), int(top // 1)


def _union(boxes: Sequence[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _grown(box: Box, x: float, y: float) -> Box:
    return box[0] - x, box[1] - y, box[2] + x, box[3] + y


def _overlaps(a: Box | tuple[int, int, int, int], b: Box | tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _vertical_overlap(a: Box, b: Box) -> float:
    return min(a[3], b[3]) - max(a[1], b[1])
