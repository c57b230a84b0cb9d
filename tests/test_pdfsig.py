"""poppler's pdfsig, given the test root in an NSS database, finds every signature we make on the
certomancer test PKI (root -> signing CA -> signer, OCSP and CRLs over HTTP) valid and its
certificate trusted: approval, certification then approval, B-T and B-LTA. The document
timestamps of B-LTA documents are the one exception (poppler 22.12 cannot check them); pyHanko
validates those.

(Before tests/pki/animate.py wrote OCSP times in whole seconds, NSS found the test responder's
answers malformed, and poppler 22.12, which reads NSS's last error instead of the verification's
result, said "Unknown issue with Certificate or corrupted data".)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from signing.policy import policy_for, signature_field_name
from signing.roles import Role
from signing.signer import DocumentSigner
from signing.verify import render_text, verify_pdf
from tests.pdfsig_checks import assert_pdfsig_trusts_every_signature


def _sign(signer: DocumentSigner, pdf: bytes, kind: str, role: Role) -> bytes:
    return signer.sign(pdf, policy_for(kind), field_name=signature_field_name(kind, role), reason=kind)


@pytest.fixture(scope="module")
def documents(test_pki_signer: DocumentSigner, blank_pdf_bytes: bytes) -> dict[str, bytes]:
    quote = _sign(test_pki_signer, blank_pdf_bytes, "quote", Role.AUDIT_FIRM)
    return {
        "approval B-T": _sign(test_pki_signer, blank_pdf_bytes, "sworn_statement", Role.APPLICANT),
        "certification B-T": _sign(test_pki_signer, blank_pdf_bytes, "audit_report", Role.AUDITOR),
        "certification then approval B-T": _sign(test_pki_signer, quote, "quote_acceptance", Role.APPLICANT),
        "certification B-LTA (agency)": _sign(test_pki_signer, blank_pdf_bytes, "registration_certificate",
                                              Role.AGENCY),
        "certification B-LTA (commission)": _sign(test_pki_signer, blank_pdf_bytes, "commission_decision",
                                                  Role.COMMISSION),
    }


@pytest.mark.parametrize("name", ["approval B-T", "certification B-T", "certification then approval B-T",
                                  "certification B-LTA (agency)", "certification B-LTA (commission)"])
def test_pdfsig_finds_every_signature_valid_and_trusted(name: str, documents: dict[str, bytes], test_pki,
                                                        test_pki_nss: Path, tmp_path: Path) -> None:
    pdf = documents[name]
    assert_pdfsig_trusts_every_signature(pdf, test_pki_nss, tmp_path)
    report = verify_pdf(pdf, [test_pki.root], online=True)
    assert report.ok, render_text(report)
    expected_stamps = 1 if "B-LTA" in name else 0
    assert len(report.document_timestamps) == expected_stamps
    assert all(stamp.ok for stamp in report.document_timestamps), render_text(report)
