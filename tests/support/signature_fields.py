"""An issued document's empty signature field, as the service prepares one for a signer's eID."""

from __future__ import annotations

import io

FIELD = "eID-handtekening"


def with_prepared_field(pdf: bytes, field_name: str = FIELD) -> bytes:
    """``pdf`` with an empty, visible signature field, as the service issues a document to sign."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.fields import SigFieldSpec, append_signature_field

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    append_signature_field(writer, SigFieldSpec(field_name, on_page=0, box=(36, 110, 290, 156)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
