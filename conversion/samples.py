"""A one-paragraph .docx, for checking that a LibreOffice converts at all."""

from __future__ import annotations

import functools
import io


@functools.cache
def one_line_docx(text: str) -> bytes:
    from docx import Document

    document = Document()
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
