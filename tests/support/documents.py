"""Small Word documents made with python-docx, for conversions."""

from __future__ import annotations

import io
from typing import Any

import docx


def make_docx(*paragraphs: str) -> bytes:
    """A document with one paragraph per argument."""
    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    return saved(document)


def saved(document: Any) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
