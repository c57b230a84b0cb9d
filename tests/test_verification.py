"""Verification for the agency: the ETSI verdict and report, and every case that must say
"invalid" (never crash): altered bytes, page content changed after signing, revoked or expired
signer, unknown root, truncated or malformed files. Multi-signer documents stay valid in
pyHanko and in pdfsig."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kmop.errors import SigningError
from signing.identities import IdentityStore
from signing.policy import policy_for
from signing.signer import DocumentSigner
from signing.verify import render_text, verify_pdf
from tests.pdftools import pdfsig
from tests.pki_fixtures import PASSPHRASE_ENV, PKCS12_PASSPHRASE, sign_raw

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def certified_quote(test_pki_signer: DocumentSigner, blank_pdf_bytes: bytes) -> bytes:
    """The quote as the pipeline makes it: the audit firm certifies, the applicant accepts."""
    quote = test_pki_signer.sign(blank_pdf_bytes, policy_for("quote"), field_name="Handtekening-audit_firm-quote",
                                 reason="Offerte (auditbureau)")
    return test_pki_signer.sign(quote, policy_for("quote_acceptance"),
                                field_name="Handtekening-applicant-quote_acceptance",
                                reason="Aanvaarding offerte (aanvrager)")


@pytest.fixture(scope="module")
def certificate_lta(test_pki_signer: DocumentSigner, blank_pdf_bytes: bytes) -> bytes:
    return test_pki_signer.sign(blank_pdf_bytes, policy_for("registration_certificate"),
                                field_name="Handtekening-agency-registration_certificate", reason="Registratie")


def test_certification_then_approval_keeps_both_valid(certified_quote: bytes, test_pki) -> None:
    report = verify_pdf(certified_quote, [test_pki.root], online=True)
    assert report.ok, render_text(report)
    certification, approval = report.signatures
    assert certification.signature_type.startswith("certification") and certification.role == "audit_firm"
    assert certification.changes_after_signing == "allowed additions"
    assert approval.signature_type == "approval" and approval.role_name == "aanvrager"
    assert approval.changes_after_signing == "none"


def _pdfsig_checks(output: str, expected: int) -> None:
    assert output.count("Signature Type: ETSI.CAdES.detached") == expected, output
    assert output.count("Signature Validation: Signature is Valid.") == expected, output


def test_pdfsig_reports_every_signature_valid_and_trusted(identities, nss_dir: Path, tmp_path: Path,
                                                          blank_pdf_bytes: bytes) -> None:
    """Certification + approval and B-LTA through the same signer, on the development PKI (the
    demo's): poppler finds every signature valid and its certificate trusted."""
    from signing.timestamping import timestamper_for

    signer = DocumentSigner(identities, timestamper_for(None, identities))
    quote = signer.sign(blank_pdf_bytes, policy_for("quote"), field_name="Handtekening-audit_firm-quote", reason="q")
    quote = signer.sign(quote, policy_for("quote_acceptance"), field_name="Handtekening-applicant-quote_acceptance",
                        reason="a")
    certificate = signer.sign(blank_pdf_bytes, policy_for("registration_certificate"), field_name="C", reason="c")
    for name, data, expected in (("quote.pdf", quote, 2), ("certificate.pdf", certificate, 1)):
        path = tmp_path / name
        path.write_bytes(data)
        output = pdfsig(path, nss_dir)
        _pdfsig_checks(output, expected)
        assert output.count("Certificate Validation: Certificate is Trusted.") == expected, output
        assert verify_pdf(data, identities.trust_roots).ok


def test_pdfsig_finds_test_pki_signatures_valid(certified_quote: bytes, certificate_lta: bytes,
                                                test_pki_nss: Path, tmp_path: Path) -> None:
    """On the certomancer PKI (root -> signing CA -> signer, OCSP over HTTP) poppler finds
    every signature valid and its certificate trusted (tests/test_pdfsig.py covers each kind
    of signature; the responder must answer in whole seconds, see tests/pki/animate.py)."""
    for name, data, expected in (("quote.pdf", certified_quote, 2), ("certificate.pdf", certificate_lta, 1)):
        path = tmp_path / name
        path.write_bytes(data)
        output = pdfsig(path, test_pki_nss)
        _pdfsig_checks(output, expected)
        assert output.count("Certificate Validation: Certificate is Trusted.") == expected, output


def test_visible_blocks_show_who_in_which_role_and_when(certified_quote: bytes, tmp_path: Path) -> None:
    from tests.pdftools import pdftotext

    path = tmp_path / "quote.pdf"
    path.write_bytes(certified_quote)
    text = pdftotext(path)
    assert "Digitaal ondertekend door: Auditbureau (test)" in text and "Rol: auditbureau" in text
    assert "Digitaal ondertekend door: Aanvrager (test)" in text and "Rol: aanvrager" in text
    assert text.count("Tijdstip: 20") == 2


def test_report_as_json_and_text(certificate_lta: bytes, test_pki) -> None:
    report = verify_pdf(certificate_lta, [test_pki.root], name="certificate.pdf")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and data["indication"] == "TOTAL-PASSED" and data["sub_indication"] is None
    [signature] = data["signatures"]
    for key in ("signer", "role", "role_name", "signing_time", "timestamp_time", "timestamp_authority", "intact",
                "valid", "trusted", "chain", "trust_root", "revocation", "level", "changes_after_signing",
                "indication", "sub_indication", "problems", "ok"):
        assert key in signature
    assert signature["level"] == "B-LTA" and signature["trust_root"] == "kmop-docs test root CA"
    assert data["document_timestamps"][0]["ok"] is True
    text = render_text(report)
    assert text.splitlines()[0] == "certificate.pdf: valid (TOTAL-PASSED)"
    assert "PAdES level:  B-LTA" in text and "role:         Agentschap Innoveren & Ondernemen (agency)" in text


def test_changed_byte_in_signed_content_is_total_failed(certificate_lta: bytes, test_pki) -> None:
    tampered = bytearray(certificate_lta)
    position = certificate_lta.index(b"/MediaBox") + 12
    tampered[position] = ord("9") if tampered[position] != ord("9") else ord("8")
    report = verify_pdf(bytes(tampered), [test_pki.root])
    assert not report.ok and report.indication == "TOTAL-FAILED"
    assert report.signatures[0].sub_indication == "HASH_FAILURE"
    assert any("altered" in p for p in report.signatures[0].problems)


def _replace_page_content(pdf: bytes) -> bytes:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page_ref, _ = writer.find_page_for_modification(0)
    page = page_ref.get_object()
    page["/Contents"] = writer.add_object(generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 720 Td (Vervalst) Tj ET"))
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_page_content_changed_after_signing_is_a_forbidden_change(certified_quote: bytes, test_pki) -> None:
    report = verify_pdf(_replace_page_content(certified_quote), [test_pki.root], online=True)
    assert not report.ok and report.indication == "TOTAL-FAILED"
    for signature in report.signatures:
        assert signature.changes_after_signing == "forbidden changes"
        assert any("changed after signing" in p for p in signature.problems)


def test_revoked_signer_certificate_is_invalid(test_pki, test_pki_signer, blank_pdf_bytes: bytes) -> None:
    signed = sign_raw(blank_pdf_bytes, test_pki.signer("revoked"), timestamper=test_pki_signer.timestamper)
    report = verify_pdf(signed, [test_pki.root], online=True)
    assert not report.ok
    signature = report.signatures[0]
    assert signature.sub_indication in ("REVOKED", "REVOKED_NO_POE"), render_text(report)
    revoked_since = test_pki.shifted(dt.datetime(2025, 12, 1, tzinfo=dt.timezone.utc))  # as certomancer.yml says
    assert signature.revocation.startswith("REVOKED") and revoked_since.date().isoformat() in signature.revocation


def test_expired_signer_certificate_is_invalid(test_pki, test_pki_signer, blank_pdf_bytes: bytes) -> None:
    signed = sign_raw(blank_pdf_bytes, test_pki.signer("expired"), timestamper=test_pki_signer.timestamper)
    report = verify_pdf(signed, [test_pki.root], online=True)
    assert test_pki.cert("expired").not_valid_after < dt.datetime.now(dt.timezone.utc)
    assert not report.ok and report.indication != "TOTAL-PASSED"
    assert any("not valid at the signing time" in p or "EXPIRED" in p or "OUT_OF_BOUNDS" in p
               for p in report.signatures[0].problems), render_text(report)


@pytest.mark.parametrize("label", ["revoked", "expired"])
@pytest.mark.parametrize("kind", ["registration_certificate", "audit_report"])  # B-LTA, B-T
def test_service_refuses_to_sign_with_a_revoked_or_expired_certificate(
    label: str, kind: str, test_pki, tmp_path: Path, blank_pdf_bytes: bytes
) -> None:
    from certomancer.registry import CertLabel

    (tmp_path / "bad.p12").write_bytes(test_pki.arch.package_pkcs12(CertLabel(label), password=b"pw"))
    (tmp_path / "root.pem").write_bytes(test_pki.root_path.read_bytes())
    bad = {"pkcs12": "bad.p12", "passphrase_env": "P"}
    (tmp_path / "identities.json").write_text(json.dumps({
        "trust_roots": ["root.pem"], "identities": {"agency": bad, "auditor": bad},
        "timestamp_authority": {"url": test_pki.tsa_url}}))
    identities = IdentityStore.from_file(tmp_path / "identities.json", {"P": "pw"})
    from signing.timestamping import timestamper_for

    signer = DocumentSigner(identities, timestamper_for(None, identities, backoff=0.01))
    for _ in range(2):  # a refused certificate is checked again, not let through the next time
        with pytest.raises(SigningError, match="could not be validated"):
            signer.sign(blank_pdf_bytes, policy_for(kind), field_name="S", reason="r")


def test_unknown_root_is_indeterminate(certificate_lta: bytes, pki_dir: Path) -> None:
    from signing.identities import load_certificates

    report = verify_pdf(certificate_lta, load_certificates(pki_dir / "root.pem"))
    assert not report.ok and report.indication == "INDETERMINATE"
    assert any("trusted root" in p for p in report.signatures[0].problems), render_text(report)


@pytest.mark.parametrize("cut", [0, 10, 1000, "half", "in-signature", "last-3"])
def test_truncated_file_is_invalid_with_a_reason(certificate_lta: bytes, test_pki, cut) -> None:
    at = {"half": len(certificate_lta) // 2, "last-3": len(certificate_lta) - 3,
          "in-signature": certificate_lta.index(b"/Contents <") + 200}.get(cut, cut)
    report = verify_pdf(certificate_lta[:at], [test_pki.root])
    assert not report.ok
    assert report.problems or any(s.problems for s in report.signatures)


@pytest.mark.parametrize("garbage", [b"", b"%PDF-1.7\n%%EOF\n", b"not a pdf at all %%EOF", b"%PDF-1.7\n" + b"[" * 5000])
def test_malformed_file_is_total_failed(garbage: bytes, test_pki) -> None:
    report = verify_pdf(garbage, [test_pki.root])
    assert not report.ok and report.indication == "TOTAL-FAILED" and report.sub_indication == "FORMAT_FAILURE"


def test_one_changed_hex_digit_of_the_signature_gets_a_verdict(certificate_lta: bytes, test_pki) -> None:
    at = certificate_lta.index(b"/Contents <") + len(b"/Contents <") + 100
    changed = certificate_lta[:at] + (b"0" if certificate_lta[at:at + 1] != b"0" else b"1") + certificate_lta[at + 1:]
    report = verify_pdf(changed, [test_pki.root])
    assert not report.ok and report.signatures[0].problems


def test_kmop_verify_prints_the_verdict_and_exits_nonzero_when_invalid(
    certificate_lta: bytes, test_pki, tmp_path: Path
) -> None:
    good, bad = tmp_path / "good.pdf", tmp_path / "bad.pdf"
    good.write_bytes(certificate_lta)
    bad.write_bytes(certificate_lta[: len(certificate_lta) // 2])
    command = [sys.executable, "-m", "kmop.cli", "verify", "--trust", str(test_pki.root_path)]
    ok = subprocess.run([*command, str(good)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "TOTAL-PASSED" in ok.stdout and "B-LTA" in ok.stdout
    refused = subprocess.run([*command, "--json", str(good), str(bad)], capture_output=True, text=True,
                             timeout=120, cwd=REPO)
    assert refused.returncode == 1
    reports = json.loads(refused.stdout)
    assert [r["indication"] for r in reports] == ["TOTAL-PASSED", "TOTAL-FAILED"]


def test_identities_file_with_pkcs12_from_the_test_pki(test_pki) -> None:
    store = IdentityStore.from_file(test_pki.identities_dir / "identities.json", {PASSPHRASE_ENV: PKCS12_PASSPHRASE})
    assert store.roles() == ["agency", "applicant", "audit_firm", "auditor", "commission"]
    assert store.tsa is not None and store.tsa.url == test_pki.tsa_url
