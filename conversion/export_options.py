"""What LibreOffice is asked to produce: a .docx read as Word 2007+ XML, written as PDF/A-2b.

Both the warm path (unoserver) and the cold path (``soffice --convert-to``) take their
settings from here, in the syntax each of them understands.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

#: Import filter for .docx. Naming it stops LibreOffice from guessing the type of bytes that are
#: not a .docx (it would happily import them as plain text or HTML).
DOCX_IMPORT_FILTER = "MS Word 2007 XML"

#: Writer's PDF export filter.
PDF_EXPORT_FILTER = "writer_pdf_Export"

#: PDF export ``FilterData`` for PDF/A-2b with every font embedded, the 14 standard PDF fonts
#: included (names as in https://wiki.openoffice.org/wiki/API/Tutorials/PDF_export).
PDFA_2B_FILTER_DATA: Mapping[str, int | bool] = {
    "SelectPdfVersion": 2,
    "EmbedStandardFonts": True,
}


def unoserver_filter_options(filter_data: Mapping[str, int | bool] = PDFA_2B_FILTER_DATA) -> list[str]:
    """``Name=Value`` strings as unoserver's ``convert`` expects them.

    unoserver turns ``true``/``false`` into booleans and digit strings into integers.
    """
    return [f"{name}={_text(value)}" for name, value in filter_data.items()]


def convert_to_argument(filter_data: Mapping[str, int | bool] = PDFA_2B_FILTER_DATA) -> str:
    """The value of ``soffice --convert-to`` with the filter data as JSON (LibreOffice 7.4+)."""
    typed = {name: {"type": _uno_type(value), "value": _text(value)} for name, value in filter_data.items()}
    return f"pdf:{PDF_EXPORT_FILTER}:{json.dumps(typed, separators=(',', ':'))}"


def _text(value: int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _uno_type(value: int | bool) -> str:
    return "boolean" if isinstance(value, bool) else "long"
