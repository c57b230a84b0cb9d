"""Helpers for the tests of signatures made elsewhere: a sworn statement job to be signed by the
applicant's own means, and the applicant's "eID" (a key of the certomancer test PKI, used with
pyHanko directly, as eID software would)."""

from __future__ import annotations

import copy
import io
from typing import Any

from kmop.demo import example_applicant, sworn_statement_job
from kmop.jobs import DocumentJob, parse_job
from tests.pki_fixtures import TestPki, sign_raw


def external_job_message(dossier_id: str, idempotency_key: str) -> dict[str, Any]:
    message = copy.deepcopy(sworn_statement_job(example_applicant()).to_message())
    message.update(dossier_id=dossier_id, idempotency_key=idempotency_key, signature="external")
    return message


def external_job(dossier_id: str, idempotency_key: str) -> DocumentJob:
    return parse_job(external_job_message(dossier_id, idempotency_key))


def eid_sign(pdf: bytes, test_pki: TestPki, timestamper: Any, field_name: str, label: str = "applicant") -> bytes:
    """``pdf`` signed into its empty field ``field_name`` with the test PKI's ``label`` key."""
    return sign_raw(pdf, test_pki.signer(label), timestamper=timestamper, field_name=field_name)


def with_page_text_added(pdf: bytes) -> bytes:
    """``pdf`` with an incremental update that draws more text on the first page (unsigned)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    text = generic.StreamObject(stream_data=b"BT /Helv 12 Tf 72 760 Td (Niet van toepassing) Tj ET")
    writer.add_stream_to_page(0, writer.add_object(text))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
