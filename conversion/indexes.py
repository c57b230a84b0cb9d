"""Whether a .docx needs its indexes updated before it is exported.

unoserver can update a document's indexes (tables of contents, of figures, alphabetical indexes)
before the export, so that their entries and page numbers match the document. Its update pass
asks Writer to refresh the document twice, and each refresh reformats the whole document: 4 to
10 % of LibreOffice's CPU per conversion of our documents (measured on the benchmark
workload, none of which has an index), for nothing unless there is an index to update.

An index reaches LibreOffice from a .docx as a field in the main document part (Word writes a
table of contents as a ``TOC`` field, also inside a content control). A main part with no field
instruction at all holds no index, and only then is the update skipped; whatever cannot be read
here is updated, as before.
"""

from __future__ import annotations

import io
import posixpath
import zipfile

from lxml import etree

_PACKAGE_RELATIONSHIPS = "_rels/.rels"
_RELATIONSHIP = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_MAIN_DOCUMENT = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
#: How a field is written in WordprocessingML: a complex field's instruction, or a simple field.
_FIELD_MARKS = (b"instrText", b"fldSimple")


def needs_index_update(docx: bytes) -> bool:
    """False only when the package's main document part holds no field instruction."""
    try:
        with zipfile.ZipFile(io.BytesIO(docx)) as package:
            main_part = _main_document_part(package.read(_PACKAGE_RELATIONSHIPS))
            if main_part is None:
                return True
            xml = package.read(main_part)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, OSError, ValueError, EOFError, RuntimeError,
            NotImplementedError, etree.XMLSyntaxError):  # LibreOffice decides on what is unreadable here
        return True
    return any(mark in xml for mark in _FIELD_MARKS)


def _main_document_part(relationships: bytes) -> str | None:
    for relationship in etree.fromstring(relationships, _PARSER).iter(_RELATIONSHIP):
        target = relationship.get("Target")
        if relationship.get("Type") == _MAIN_DOCUMENT and relationship.get("TargetMode") != "External" and target:
            return posixpath.normpath(target.lstrip("/"))
    return None
