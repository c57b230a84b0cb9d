"""The visible signature block: who signed, in which role, when; on the last page.

Blocks fill a grid from just above the footer of the last page upwards, two per row, so a
countersignature (the quote's acceptance) sits beside the certification instead of on top of
it. The place is fixed, not found: the templates keep the lower part of their last page free;
a template whose last page is full to the footer would have its text under the blocks. The text uses
the PDF standard font Courier (no font embedding, so no new font in a signed revision); a
character outside Windows-1252 is written without its accent, or as ``?``.
"""

from __future__ import annotations

import unicodedata

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.fields import SigFieldSpec
from pyhanko.stamp import TextStampStyle

STAMP_TEXT = "Digitaal ondertekend door: %(signer)s\nRol: %(role)s\nTijdstip: %(ts)s"
STAMP_STYLE = TextStampStyle(stamp_text=STAMP_TEXT, border_width=1, timestamp_format="%Y-%m-%d %H:%M:%S %Z")

_MARGIN = 36.0
_BOTTOM = 110.0  # above the templates' footer (which ends about 100 pt from the bottom edge)
_GAP = 8.0
_HEIGHT = 46.0
_COLUMNS = 2
_A4 = (0.0, 0.0, 595.0, 842.0)


def new_field(writer: IncrementalPdfFileWriter, field_name: str, skip: int = 0) -> SigFieldSpec:
    """A visible signature field in the next free slot of the last page (``skip`` further)."""
    page_ref, _ = writer.find_page_for_modification(-1)
    page = page_ref.get_object()
    left, bottom, right, _top = _media_box(page)
    width = (right - left - 2 * _MARGIN - (_COLUMNS - 1) * _GAP) / _COLUMNS
    row, column = divmod(_visible_signature_count(page) + skip, _COLUMNS)
    x1 = left + _MARGIN + column * (width + _GAP)
    y1 = bottom + _BOTTOM + row * (_HEIGHT + _GAP)
    return SigFieldSpec(field_name, on_page=-1, box=(int(x1), int(y1), int(x1 + width), int(y1 + _HEIGHT)))


def text_params(role_name: str) -> dict[str, str]:
    return {"role": latin_text(role_name)}


def latin_text(value: str) -> str:
    """``value`` in characters the standard fonts can show (Windows-1252)."""
    out = []
    for char in value:
        try:
            char.encode("cp1252")
            out.append(char)
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
            out.append(base or "?")
    return "".join(out)


def _media_box(page: generic.DictionaryObject) -> tuple[float, float, float, float]:
    node = page
    for _ in range(32):  # /MediaBox may be inherited from the page tree
        box = node.get("/MediaBox")
        if box is not None:
            try:
                values = [float(v) for v in box.get_object()]
                return (min(values[0], values[2]), min(values[1], values[3]),
                        max(values[0], values[2]), max(values[1], values[3]))
            except (TypeError, ValueError, IndexError):
                break
        parent = node.get("/Parent")
        if parent is None:
            break
        node = parent.get_object()
    return _A4


def _visible_signature_count(page: generic.DictionaryObject) -> int:
    count = 0
    for annot_ref in page.get("/Annots", generic.ArrayObject()) or ():
        annot = annot_ref.get_object()
        if annot.get("/FT") != "/Sig" and annot.get("/Parent", generic.DictionaryObject()).get_object().get("/FT") != "/Sig":
            continue
        try:
            x1, y1, x2, y2 = (float(v) for v in annot["/Rect"])
        except (KeyError, TypeError, ValueError):
            continue
        if abs(x2 - x1) > 1 and abs(y2 - y1) > 1:
            count += 1
    return count
