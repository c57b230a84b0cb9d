"""Signatures made elsewhere (an applicant's eID): accepted only when valid, trusted and made on
exactly the document the service issued."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from signing.external import ExternalSignatureRefused, accept_external_signature
from signing.identities import load_certificates
from tests.pki_fixtures import sign_raw
from tests.support.signature_fields import FIELD, with_prepared_field


@pytest.fixture(scope="module")
def issued(blank_pdf_bytes: bytes) -> bytes:
    """The sworn statement as the service hands it out for signing: with its empty field."""
    return with_prepared_field(blank_pdf_bytes)


@pytest.fixture(scope="module")
def eid_signature(test_pki, test_pki_signer, issued: bytes) -> bytes:
    return sign_raw(issued, test_pki.signer("applicant"), timestamper=test_pki_signer.timestamper,
                    field_name="eID-handtekening")


def test_signature_over_the_issued_document_is_accepted(issued: bytes, eid_signature: bytes, test_pki) -> None:
    accepted = accept_external_signature(issued, eid_signature, [test_pki.root], online=True)
    assert accepted.signer and "Aanvrager (test)" in accepted.signer
    assert [s.field_name for s in accepted.signatures] == ["eID-handtekening"]
    assert accepted.report.indication == "TOTAL-PASSED"


def test_signature_chaining_to_another_root_is_refused(issued: bytes, eid_signature: bytes, pki_dir: Path) -> None:
    with pytest.raises(ExternalSignatureRefused, match="trusted root") as refused:
        accept_external_signature(issued, eid_signature, load_certificates(pki_dir / "root.pem"))
    assert refused.value.report is not None and not refused.value.report.ok


def test_signature_over_an_altered_document_is_refused(issued: bytes, test_pki, test_pki_signer) -> None:
    altered = issued.replace(b"/Producer (pypdf)", b"/Producer (pypdF)")
    assert altered != issued
    returned = sign_raw(altered, test_pki.signer("applicant"), timestamper=test_pki_signer.timestamper,
                        field_name=FIELD)
    with pytest.raises(ExternalSignatureRefused, match="does not start with the issued document"):
        accept_external_signature(issued, returned, [test_pki.root], online=True)


def test_page_changed_in_the_signed_revision_is_refused(issued: bytes, test_pki, test_pki_signer) -> None:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter

    writer = IncrementalPdfFileWriter(io.BytesIO(issued))
    page_ref, _ = writer.find_page_for_modification(0)
    page = page_ref.get_object()
    page["/Contents"] = writer.add_object(generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 720 Td (Niet) Tj ET"))
    writer.update_container(page)
    out = io.BytesIO()
    signers.sign_pdf(writer, signers.PdfSignatureMetadata(field_name=FIELD, subfilter=SigSeedSubFilter.PADES),
                     signer=test_pki.signer("applicant"), timestamper=test_pki_signer.timestamper, output=out)
    with pytest.raises(ExternalSignatureRefused, match="changes page 1"):
        accept_external_signature(issued, out.getvalue(), [test_pki.root], online=True)


def test_unsigned_return_is_refused(issued: bytes, test_pki) -> None:
    with pytest.raises(ExternalSignatureRefused, match="unsigned"):
        accept_external_signature(issued, issued, [test_pki.root])
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(issued))
    writer.root["/KmopNote"] = generic.TextStringObject("opgeslagen zonder handtekening")
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(ExternalSignatureRefused, match="no signature over the issued document"):
        accept_external_signature(issued, out.getvalue(), [test_pki.root])


def test_signature_by_a_revoked_certificate_is_refused(issued: bytes, test_pki, test_pki_signer) -> None:
    returned = sign_raw(issued, test_pki.signer("revoked"), timestamper=test_pki_signer.timestamper,
                        field_name=FIELD)
    with pytest.raises(ExternalSignatureRefused, match="revoked"):
        accept_external_signature(issued, returned, [test_pki.root], online=True)


def test_garbage_return_is_refused(issued: bytes, test_pki) -> None:
    with pytest.raises(ExternalSignatureRefused):
        accept_external_signature(issued, issued + b"\n%%EOF garbage" * 10, [test_pki.root])
