"""Archive timestamp renewal on the certomancer test PKI (its TSA over HTTP): a renewed B-LTA
document validates at LTA level with the network cut, keeps the original bytes as a prefix and
every earlier signature valid (in pyHanko and in pdfsig); the archive stores each renewal once,
as a new object, and leaves alone what is not due."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from kmop.errors import SigningError
from kmop.renewals import RecordedDocument, Renewer, recorded_lta_documents, renewal_chain
from signing.policy import policy_for, signature_field_name
from signing.renewal import check_renewal, renew
from signing.roles import Role
from signing.signer import DocumentSigner
from signing.verify import render_text, verify_pdf
from storage.keys import document_key
from storage.local import LocalFolderStore
from tests.pdfsig_checks import assert_pdfsig_trusts_every_signature
from tests.pki_fixtures import PASSPHRASE_ENV, PKCS12_PASSPHRASE
from workflow.ledger import Ledger
from workflow.tracker import DOCUMENT_STORED, Tracker

REPO = Path(__file__).resolve().parent.parent
FAR = dt.timedelta(days=365 * 50)  # reaches past the test TSA certificate's end (34 years after the run)


def _stamps(pdf: bytes) -> int:
    return len(PdfFileReader(io.BytesIO(pdf), strict=False).embedded_timestamp_signatures)


@pytest.fixture(scope="module")
def certificate_lta(test_pki_signer: DocumentSigner, blank_pdf_bytes: bytes) -> bytes:
    kind = "registration_certificate"
    return test_pki_signer.sign(blank_pdf_bytes, policy_for(kind), field_name=signature_field_name(kind, Role.AGENCY),
                                reason="Registratie")


@pytest.fixture(scope="module")
def renewed(certificate_lta: bytes, test_pki_identities, test_pki_signer: DocumentSigner) -> bytes:
    assert check_renewal(certificate_lta, FAR).due
    return renew(certificate_lta, test_pki_identities, test_pki_signer.timestamper)


def test_due_only_when_the_authority_certificate_expires_within_the_margin(certificate_lta: bytes, test_pki) -> None:
    expires = test_pki.cert("tsa").not_valid_after
    check = check_renewal(certificate_lta)
    assert not check.due and expires.date().isoformat() in check.reason
    assert check.authority_expires == expires
    due = check_renewal(certificate_lta, dt.timedelta(days=365), now=expires - dt.timedelta(days=214))
    assert due.due and f"expires on {expires.date().isoformat()}, within 365 days" in due.reason


def test_renewed_document_validates_at_lta_level_with_the_network_cut(renewed: bytes, certificate_lta: bytes,
                                                                      test_pki) -> None:
    assert renewed.startswith(certificate_lta) and len(renewed) > len(certificate_lta)
    assert _stamps(certificate_lta) == 1 and _stamps(renewed) == 2
    with test_pki.stopped():
        report = verify_pdf(renewed, [test_pki.root], online=True)
    assert report.ok, render_text(report)
    [signature] = report.signatures
    assert signature.ok and signature.level == "B-LTA" and signature.changes_after_signing == "allowed additions"
    assert [stamp.ok for stamp in report.document_timestamps] == [True, True], render_text(report)


def test_pdfsig_still_trusts_the_signatures_after_renewal(renewed: bytes, test_pki_nss: Path, tmp_path: Path) -> None:
    assert_pdfsig_trusts_every_signature(renewed, test_pki_nss, tmp_path)


def test_a_signed_document_without_document_timestamp_gets_its_validation_data_and_one(
    test_pki_signer: DocumentSigner, test_pki_identities, test_pki, blank_pdf_bytes: bytes
) -> None:
    kind = "sworn_statement"
    signed = test_pki_signer.sign(blank_pdf_bytes, policy_for(kind), field_name=signature_field_name(kind, Role.APPLICANT),
                                  reason="Verklaring op eer")
    check = check_renewal(signed)
    assert check.due and check.reason == "signed but without a document timestamp"
    result = renew(signed, test_pki_identities, test_pki_signer.timestamper)
    assert result.startswith(signed) and _stamps(result) == 1
    with test_pki.stopped():
        report = verify_pdf(result, [test_pki.root], online=True)
    assert report.ok and report.signatures[0].level == "B-LTA", render_text(report)


def test_an_unsigned_pdf_is_not_due_and_garbage_is_a_clear_error(blank_pdf_bytes: bytes) -> None:
    assert check_renewal(blank_pdf_bytes).reason == "no signatures to preserve"
    with pytest.raises(SigningError, match="not a readable PDF"):
        check_renewal(b"not a pdf")


# --- the archive: stored documents, their renewal chains, the command ---


def _record(store: LocalFolderStore, dossier_id: str, kind: str, step: int, pdf: bytes) -> RecordedDocument:
    """A document stored and recorded as the pipeline does (without the workflow's rules)."""
    key = document_key(dossier_id, step, kind, 1)
    stored = store.put_once(key, pdf, "application/pdf")
    Ledger(store).append(dossier_id, DOCUMENT_STORED, f"{kind}-1", "agency",
                         {"kind": kind, "step": step, "key": key, "sha256": stored.sha256, "size": stored.size})
    return RecordedDocument(dossier_id, kind, key, stored.sha256)


def test_not_due_is_left_alone_and_only_b_lta_kinds_are_walked(certificate_lta: bytes, blank_pdf_bytes: bytes,
                                                               test_pki, test_pki_identities, test_pki_signer,
                                                               tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "store")
    document = _record(store, "D-1", "registration_certificate", 6, certificate_lta)
    _record(store, "D-1", "sworn_statement", 1, blank_pdf_bytes)
    assert list(recorded_lta_documents(store, Tracker(Ledger(store)))) == [document]
    [outcome] = Renewer(store, test_pki_identities, test_pki_signer.timestamper).run(iter([document]))
    assert outcome.status == "not due" and test_pki.cert("tsa").not_valid_after.date().isoformat() in outcome.reason
    assert renewal_chain(store, document.key) == []


def test_a_racing_run_that_loses_stores_nothing(certificate_lta: bytes, renewed: bytes, test_pki_identities,
                                                test_pki_signer, tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "store")
    document = _record(store, "D-2", "commission_decision", 5, certificate_lta)

    class StaleView(LocalFolderStore):
        """Sees no renewals: as a run that looked before its twin stored one."""

        def head(self, key: str):  # type: ignore[no-untyped-def]
            return None if "/renewals/" in key else super().head(key)

    Renewer(store, test_pki_identities, test_pki_signer.timestamper, margin=FAR).run(iter([document]))
    [outcome] = Renewer(StaleView(tmp_path / "store"), test_pki_identities, test_pki_signer.timestamper,
                        margin=FAR).run(iter([document]))
    assert outcome.status == "not due" and "stored by another run" in outcome.reason
    assert len(renewal_chain(store, document.key)) == 1


def _kmop(store_dir: Path, test_pki, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KMOP_STORAGE": "local", "KMOP_LOCAL_STORAGE_DIR": str(store_dir), "KMOP_BROKER": "stub",
           "KMOP_IDENTITIES": str(test_pki.identities_dir / "identities.json"), PASSPHRASE_ENV: PKCS12_PASSPHRASE}
    env.pop("KMOP_TSA_URL", None)
    return subprocess.run([sys.executable, "-m", "kmop.cli", "renew-timestamps", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=env)


def test_the_command_run_twice_stores_one_renewal(certificate_lta: bytes, test_pki, tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "store")
    document = _record(store, "D-3", "registration_certificate", 6, certificate_lta)
    margin = str(FAR.days)

    dry = _kmop(tmp_path / "store", test_pki, "--margin-days", margin, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith(f"due      {document.key}"), dry.stdout + dry.stderr
    assert renewal_chain(store, document.key) == []

    first = _kmop(tmp_path / "store", test_pki, "--margin-days", margin)
    assert first.returncode == 0, first.stdout + first.stderr
    [renewal] = renewal_chain(store, document.key)
    assert first.stdout.startswith(f"renewed  {document.key} -> {renewal.key}"), first.stdout
    assert renewal.key == "dossiers/D-3/renewals/06-registration_certificate/v0001/r0001.pdf"
    assert renewal.metadata["original-key"] == document.key and renewal.metadata["original-sha256"] == document.sha256
    assert store.get(renewal.key).startswith(certificate_lta)

    second = _kmop(tmp_path / "store", test_pki, "--margin-days", margin)
    assert second.returncode == 0 and second.stdout.startswith(f"not due  {document.key}"), second.stdout
    assert "renewed on" in second.stdout
    assert len(renewal_chain(store, document.key)) == 1
    assert store.get(document.key) == certificate_lta


def test_the_command_refuses_a_negative_margin(test_pki, tmp_path: Path) -> None:
    result = _kmop(tmp_path / "store", test_pki, "--margin-days", "-1")
    assert result.returncode == 2 and "--margin-days: '-1': must be a whole number of days, 0 or more" in result.stderr
