"""Signing with PKCS#12 identities per role, and verification against explicit trust roots."""

from __future__ import annotations

import io
import logging
import sys
import threading
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from kmop.errors import SigningError
from signing.devpki import PASSPHRASE_ENV, generate_dev_pki
from signing.identities import IdentityStore, RevocationSources
from signing.policy import PadesLevel, SignaturePolicy, policy_for
from signing.roles import Role
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for
from signing.verify import verify_pdf
from tests.pdftools import nss_trust_store, pdfsig

PASSPHRASE = "test-passphrase"  # the session PKI (conftest) uses the same


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):
    return generate_dev_pki(tmp_path_factory.mktemp("pki"), PASSPHRASE.encode())


@pytest.fixture(scope="module")
def identities(pki) -> IdentityStore:
    return IdentityStore.from_file(pki.identities_path, {PASSPHRASE_ENV: PASSPHRASE})


@pytest.fixture(scope="module")
def signer(identities: IdentityStore) -> DocumentSigner:
    return DocumentSigner(identities, timestamper_for(None, identities))


@pytest.fixture(scope="module")
def blank_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def signed(signer: DocumentSigner, blank_pdf: bytes) -> bytes:
    return signer.sign(blank_pdf, policy_for("sworn_statement"), field_name="Handtekening-applicant",
                       reason="test")


def test_signature_is_pades_with_timestamp_and_trusted(signed: bytes, identities: IdentityStore) -> None:
    report = verify_pdf(signed, identities.trust_roots)
    assert report.ok, report.to_dict()
    [signature] = report.signatures
    assert "Aanvrager" in (signature.signer or "")
    assert signature.timestamp_ok is True and signature.timestamp_time
    field = PdfReader(io.BytesIO(signed)).get_fields()["Handtekening-applicant"]
    assert field["/V"]["/SubFilter"] == "/ETSI.CAdES.detached"


def test_pdfsig_reports_valid_and_trusted(signed: bytes, pki, tmp_path: Path) -> None:
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    output = pdfsig(path, nss_trust_store(tmp_path / "nss", pki.root_path))
    assert "Signature Validation: Signature is Valid." in output, output
    assert "Certificate Validation: Certificate is Trusted." in output, output
    assert "ETSI.CAdES.detached" in output


def test_changed_byte_in_signed_content_is_invalid(signed: bytes, identities: IdentityStore) -> None:
    tampered = bytearray(signed)
    position = signed.index(b"/MediaBox") + 12
    tampered[position] = ord("9") if tampered[position] != ord("9") else ord("8")
    report = verify_pdf(bytes(tampered), identities.trust_roots)
    assert not report.ok
    assert any("altered" in p for s in report.signatures for p in s.problems)


def test_unknown_root_is_not_trusted(signed: bytes, tmp_path: Path) -> None:
    other = generate_dev_pki(tmp_path / "other", b"other")
    other_roots = IdentityStore.from_file(other.identities_path, {PASSPHRASE_ENV: "other"}).trust_roots
    report = verify_pdf(signed, other_roots)
    assert not report.ok
    assert any("trusted root" in p for s in report.signatures for p in s.problems)


@pytest.mark.parametrize("cut", [10, 1000, -200])
def test_truncated_or_garbage_file_gets_a_verdict(signed: bytes, identities: IdentityStore, cut: int) -> None:
    report = verify_pdf(signed[:cut], identities.trust_roots)
    assert not report.ok
    assert report.problems or any(s.problems for s in report.signatures)


def test_unsigned_pdf_is_not_valid(blank_pdf: bytes, identities: IdentityStore) -> None:
    report = verify_pdf(blank_pdf, identities.trust_roots)
    assert report.problems == ["the file holds no signature"]


def test_wrong_passphrase_is_a_clear_error(pki, blank_pdf: bytes) -> None:
    store = IdentityStore.from_file(pki.identities_path, {PASSPHRASE_ENV: "wrong"})
    with pytest.raises(SigningError, match="wrong passphrase"):
        DocumentSigner(store, None).sign(
            blank_pdf, SignaturePolicy(Role.APPLICANT, PadesLevel.B_B, False), field_name="S", reason="r")


def test_missing_passphrase_names_the_variable(pki, blank_pdf: bytes) -> None:
    store = IdentityStore.from_file(pki.identities_path, {})
    with pytest.raises(SigningError, match=PASSPHRASE_ENV):
        store.signer_for(Role.AGENCY)


def test_timestamped_level_without_tsa_is_refused(identities: IdentityStore, blank_pdf: bytes) -> None:
    with pytest.raises(SigningError, match="timestamp authority"):
        DocumentSigner(identities, None).sign(blank_pdf, policy_for("sworn_statement"), field_name="S", reason="r")


def test_private_keys_are_stored_encrypted(pki) -> None:
    for p12 in pki.directory.glob("*.p12"):
        data = p12.read_bytes()
        assert b"PRIVATE KEY" not in data
        with pytest.raises(ValueError):
            from cryptography.hazmat.primitives.serialization import pkcs12

            pkcs12.load_key_and_certificates(data, None)


def test_later_signatures_reuse_the_reserved_space_and_a_too_small_one_is_estimated_again(
    identities: IdentityStore, blank_pdf: bytes
) -> None:
    signer = DocumentSigner(identities, timestamper_for(None, identities))
    policy = policy_for("sworn_statement")
    first = signer.sign(blank_pdf, policy, field_name="Eerste", reason="test")
    [reserved] = signer._reserved.values()
    second = signer.sign(blank_pdf, policy, field_name="Tweede", reason="test")
    assert len(second) == len(first)  # same reservation, same layout
    key = next(iter(signer._reserved))
    signer._reserved[key] = 200  # far too small for a CMS container with a timestamp
    third = signer.sign(blank_pdf, policy, field_name="Derde", reason="test")
    assert signer._reserved[key] == reserved
    for pdf in (first, second, third):
        assert verify_pdf(pdf, identities.trust_roots).ok


def _in_threads(work, count: int = 4) -> list[BaseException]:
    """Run ``work`` in ``count`` threads switching as often as possible; the errors raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=run) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    return errors


def test_one_signer_serves_threads_signing_at_once(pki, blank_pdf: bytes) -> None:
    identities = IdentityStore.from_file(pki.identities_path, {PASSPHRASE_ENV: PASSPHRASE})
    signer = DocumentSigner(identities, timestamper_for(None, identities))
    made: list[bytes] = []

    def sign_some() -> None:
        for kind in ("sworn_statement", "quote_acceptance", "sworn_statement"):
            made.append(signer.sign(blank_pdf, policy_for(kind), field_name="Handtekening", reason="test"))

    assert _in_threads(sign_some) == []
    assert len(made) == 12
    assert all(verify_pdf(pdf, identities.trust_roots).ok for pdf in made)


def test_threads_verifying_at_once_with_shared_roots(pki, signed: bytes) -> None:
    roots = IdentityStore.from_file(pki.identities_path, {PASSPHRASE_ENV: PASSPHRASE}).trust_roots  # unread yet
    verdicts: list[bool] = []
    assert _in_threads(lambda: verdicts.extend(verify_pdf(signed, roots).ok for _ in range(3))) == []
    assert verdicts == [True] * 12


def test_the_signer_certificate_check_is_reused_for_a_while_then_made_again(identities: IdentityStore,
                                                                             blank_pdf: bytes) -> None:
    now = [0.0]
    signer = DocumentSigner(identities, timestamper_for(None, identities), revalidate_after=300,
                            clock=lambda: now[0])
    applicant, agency = policy_for("sworn_statement"), policy_for("registration_certificate")
    first = signer._validation_context(applicant)
    assert first is not None
    now[0] = 299.0
    assert signer._validation_context(applicant) is first  # revocation data fetched once, kept
    assert signer._validation_context(agency) is not first  # per role and level
    now[0] = 300.0
    assert signer._validation_context(applicant) is not first  # checked again
    assert verify_pdf(signer.sign(blank_pdf, applicant, field_name="Later", reason="test"), identities.trust_roots).ok


def test_at_b_t_the_certificate_check_is_made_once_while_its_context_is_kept(
    identities: IdentityStore, blank_pdf: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyhanko_certvalidator import CertificateValidator

    checked: list[str] = []  # whose certificate was validated for use: the signer's or the TSA's
    validate_usage = CertificateValidator.async_validate_usage

    async def counted(self, key_usage, extended_key_usage=None, extended_optional=False):  # type: ignore[no-untyped-def]
        checked.append("tsa" if extended_key_usage == {"time_stamping"} else "signer")
        return await validate_usage(self, key_usage, extended_key_usage, extended_optional)

    monkeypatch.setattr(CertificateValidator, "async_validate_usage", counted)
    now = [0.0]
    signer = DocumentSigner(identities, timestamper_for(None, identities), revalidate_after=300, clock=lambda: now[0])
    statement = policy_for("sworn_statement")
    assert statement.level is PadesLevel.B_T

    made = [signer.sign(blank_pdf, statement, field_name=f"S{i}", reason="test") for i in range(3)]
    assert checked == ["signer", "tsa"]
    now[0] = 300.0
    made.append(signer.sign(blank_pdf, statement, field_name="Later", reason="test"))
    assert checked == ["signer", "tsa"] * 2  # checked again with a new context
    assert all(verify_pdf(pdf, identities.trust_roots).ok for pdf in made)


def test_signed_attributes_encoded_once_are_those_pyhanko_builds(signed: bytes, identities: IdentityStore) -> None:
    """The signer and the development TSA hand pyHanko attribute values parsed from their own
    encoding (signing.parsed_attributes); what lands in the document must be what pyHanko's
    own builders make: the ESS references to the signer's and the TSA's certificates."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.general import as_signing_certificate, as_signing_certificate_v2, find_unique_cms_attribute

    [embedded] = PdfFileReader(io.BytesIO(signed)).embedded_regular_signatures
    signer_info = embedded.signer_info
    signing_cert = identities.signer_for(Role.APPLICANT).signing_cert
    assert (find_unique_cms_attribute(signer_info["signed_attrs"], "signing_certificate_v2").dump()
            == as_signing_certificate_v2(signing_cert).dump())
    token = find_unique_cms_attribute(signer_info["unsigned_attrs"], "signature_time_stamp_token")
    tsa_info = token["content"]["signer_infos"][0]
    tsa_cert = next(c.chosen for c in token["content"]["certificates"]
                    if c.chosen.issuer == tsa_info["sid"].chosen["issuer"]
                    and c.chosen.serial_number == tsa_info["sid"].chosen["serial_number"].native)
    assert (find_unique_cms_attribute(tsa_info["signed_attrs"], "signing_certificate").dump()
            == as_signing_certificate(tsa_cert).dump())


def test_long_term_signature_with_configured_offline_revocation_logs_no_warning(
    signer: DocumentSigner, blank_pdf: bytes, identities: IdentityStore, caplog: pytest.LogCaptureFixture
) -> None:
    assert not identities.revocation.fetch  # the development PKI lists its CRL and fetches nothing
    with caplog.at_level(logging.WARNING):
        signed = signer.sign(blank_pdf, policy_for("registration_certificate"), field_name="Agency", reason="test")

    assert verify_pdf(signed, identities.trust_roots).ok
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


def test_long_term_signature_without_the_revocation_data_it_may_not_fetch_is_refused(pki, blank_pdf: bytes) -> None:
    identities = IdentityStore.from_file(pki.identities_path, {PASSPHRASE_ENV: PASSPHRASE})
    identities.revocation = RevocationSources(crls=(), ocsps=(), fetch=False)  # the CRL left out
    signer = DocumentSigner(identities, timestamper_for(None, identities))

    with pytest.raises(SigningError, match="no revocation information"):
        signer.sign(blank_pdf, policy_for("registration_certificate"), field_name="Agency", reason="test")
