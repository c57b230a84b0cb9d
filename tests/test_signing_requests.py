"""Signatures made elsewhere, in the service: the sworn statement is issued to be signed with the
applicant's own eID, and the signed PDF moves the dossier only when valid, trusted and made on
exactly the issued document. Real parts: LibreOffice, moto's S3 server, the certomancer PKI."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields

from kmop.cli import main
from kmop.demo import example_applicant
from kmop.errors import InvalidJob, StepOutOfOrder
from kmop.jobs import parse_job
from kmop.scenario import dossier_steps
from kmop.settings import SettingsError
from kmop.signing_requests import (
    ExternalSignatureRefused,
    SigningRequest,
    SigningRequestClosed,
    SigningRequestNotFound,
    SigningRequests,
    request_id_for,
)
from signing.roles import Role
from signing.verify import verify_pdf
from storage.keys import dossier_prefix, signing_requests_prefix
from workflow.ledger import Ledger
from workflow.steps import KNOWLEDGE_TEST_PASSED
from workers.outbox import record_job
from workflow.tracker import Tracker
from tests.pdftools import pdftotext
from tests.signing_request_fixtures import eid_sign, external_job, external_job_message, with_page_text_added
from tests.support.pipeline import CountingConverter

DOSSIER = "EXT-2026-0001"


@pytest.fixture
def tracker(s3_store) -> Tracker:
    tracker = Tracker(Ledger(s3_store))
    tracker.record_fact(DOSSIER, KNOWLEDGE_TEST_PASSED, Role.APPLICANT, {"passed_on": "2026-10-28"}, "knowledge-test")
    return tracker


@pytest.fixture
def requests(s3_store, tracker: Tracker, converter: CountingConverter, test_pki) -> SigningRequests:
    return SigningRequests(s3_store, tracker, converter, [test_pki.root])


@pytest.fixture
def issued(requests: SigningRequests) -> SigningRequest:
    return requests.issue(external_job(DOSSIER, "sworn-eid-1"))


def _signed(requests: SigningRequests, request: SigningRequest, test_pki, test_pki_signer) -> bytes:
    return eid_sign(requests.issued_pdf(request), test_pki, test_pki_signer.timestamper, request.field_name)


def _dossier(store, tracker: Tracker) -> tuple[list[dict[str, Any]], list[str]]:
    """What a refusal must leave alone: the ledger and every stored document of the dossier."""
    return [e.to_dict() for e in tracker.history(DOSSIER)], store.list(f"{dossier_prefix(DOSSIER)}documents/")


# --- issuing -------------------------------------------------------------------------------------

def test_issued_statement_has_an_empty_field_for_the_applicant_and_leaves_the_dossier_where_it_is(
    requests: SigningRequests, issued: SigningRequest, s3_store, tracker: Tracker, tmp_path: Path
) -> None:
    pdf = requests.issued_pdf(issued)
    assert hashlib.sha256(pdf).hexdigest() == issued.sha256 and len(pdf) == issued.size
    reader = PdfFileReader(io.BytesIO(pdf))
    assert [name for name, _, _ in enumerate_sig_fields(reader, filled_status=False)] == [
        "Handtekening-applicant-sworn_statement"]
    assert issued.field_name == "Handtekening-applicant-sworn_statement"
    path = tmp_path / "issued.pdf"
    path.write_bytes(pdf)
    assert "Raad & Daad" in pdftotext(path) or "verklaring" in pdftotext(path).lower()
    assert issued.request_id == request_id_for(DOSSIER, "sworn-eid-1")
    assert requests.status(issued) == "issued"
    history, documents = _dossier(s3_store, tracker)
    assert [e["type"] for e in history] == [KNOWLEDGE_TEST_PASSED] and documents == []


def test_redelivered_issuing_job_is_a_no_op(
    requests: SigningRequests, issued: SigningRequest, s3_store, converter: CountingConverter
) -> None:
    again = requests.issue(external_job(DOSSIER, "sworn-eid-1"))
    assert again == issued and converter.calls == 1
    assert len(s3_store.list(signing_requests_prefix(DOSSIER))) == 2  # the PDF and its record
    other = external_job_message(DOSSIER, "sworn-eid-1")
    other["data"]["signatory"]["place"] = "Brugge"
    with pytest.raises(InvalidJob) as refused:
        requests.issue(parse_job(other))
    assert refused.value.field == "idempotency_key"


def test_a_request_for_a_step_not_allowed_now_is_not_issued(s3_store, converter: CountingConverter, test_pki) -> None:
    requests = SigningRequests(s3_store, Tracker(Ledger(s3_store)), converter, [test_pki.root])
    with pytest.raises(InvalidJob, match="must pass the knowledge test first") as refused:
        requests.issue(external_job("EXT-NEW-1", "sworn-eid-1"))
    assert refused.value.field == "data.application.first_time"
    assert converter.calls == 0 and s3_store.list(signing_requests_prefix("EXT-NEW-1")) == []


def test_only_kinds_whose_policy_allows_it_may_be_signed_elsewhere() -> None:
    message = external_job_message(DOSSIER, "k")
    assert parse_job(message).to_message()["signature"] == "external"
    assert "signature" not in parse_job({**message, "signature": "service"}).to_message()
    for signature, reason in (("paper", "must be 'service' or 'external'"),
                              (True, "must be 'service' or 'external'")):
        with pytest.raises(InvalidJob, match=reason) as refused:
            parse_job({**message, "signature": signature})
        assert refused.value.field == "signature"
    quote = next(s for s in dossier_steps(example_applicant()) if getattr(s, "kind", None) == "quote")
    with pytest.raises(InvalidJob, match="quote is signed by the service; only these kinds may be signed "
                                         "elsewhere: sworn_statement") as refused:
        parse_job({**quote.to_message(), "signature": "external"})
    assert refused.value.field == "signature"


# --- accepting -----------------------------------------------------------------------------------

def test_statement_signed_with_the_applicants_eid_moves_the_dossier(
    requests: SigningRequests, issued: SigningRequest, s3_store, tracker: Tracker, test_pki, test_pki_signer
) -> None:
    assert tracker.state(DOSSIER).phase.value != "submitted"
    returned = _signed(requests, issued, test_pki, test_pki_signer)
    accepted = requests.accept(DOSSIER, issued.request_id, returned)
    result = accepted.result
    assert result.created and (result.kind, result.step, result.version) == ("sworn_statement", 1, 1)
    assert result.sha256 == hashlib.sha256(returned).hexdigest()
    assert accepted.signer and "Aanvrager (test)" in accepted.signer
    assert accepted.report is not None and accepted.report.indication == "TOTAL-PASSED"
    assert tracker.state(DOSSIER).phase.value == "submitted"
    event = tracker.history(DOSSIER)[-1]
    assert event.type == "document_stored" and event.idempotency_key == "sworn-eid-1"
    assert event.payload["signing_request"] == issued.request_id and event.payload["key"] == result.key
    assert event.payload["signer"] == accepted.signer
    assert requests.status(issued) == "accepted"
    stored = s3_store.get(result.key)
    assert stored == returned
    report = verify_pdf(stored, [test_pki.root], online=True)
    assert report.ok and [s.field_name for s in report.signatures] == [issued.field_name]


def test_the_same_signed_file_twice_is_one_document_and_another_file_is_refused(
    requests: SigningRequests, issued: SigningRequest, s3_store, tracker: Tracker, test_pki, test_pki_signer
) -> None:
    returned = _signed(requests, issued, test_pki, test_pki_signer)
    first = requests.accept(DOSSIER, issued.request_id, returned)
    again = requests.accept(DOSSIER, issued.request_id, returned)
    assert not again.result.created and again.result.key == first.result.key
    assert again.event.sequence == first.event.sequence and again.signer == first.signer
    after = _dossier(s3_store, tracker)
    assert len(after[1]) == 1 and [e["type"] for e in after[0]].count("document_stored") == 1
    signed_again = _signed(requests, issued, test_pki, test_pki_signer)
    assert signed_again != returned
    with pytest.raises(SigningRequestClosed, match="already accepted with another signed file"):
        requests.accept(DOSSIER, issued.request_id, signed_again)
    assert _dossier(s3_store, tracker) == after


def _unsigned(issued_pdf: bytes, eid: Callable[[bytes], bytes], identities: Any) -> bytes:
    return issued_pdf


def _signed_by_an_unknown_root(issued_pdf: bytes, eid: Callable[[bytes], bytes], identities: Any) -> bytes:
    from tests.pki_fixtures import sign_raw

    return sign_raw(issued_pdf, identities.signer_for(Role.APPLICANT),
                    field_name="Handtekening-applicant-sworn_statement")


def _page_changed_before_signing(issued_pdf: bytes, eid: Callable[[bytes], bytes], identities: Any) -> bytes:
    return eid(with_page_text_added(issued_pdf))


def _signed_a_resaved_copy(issued_pdf: bytes, eid: Callable[[bytes], bytes], identities: Any) -> bytes:
    from pypdf import PdfReader, PdfWriter

    copy = io.BytesIO()
    PdfWriter(clone_from=PdfReader(io.BytesIO(issued_pdf))).write(copy)
    return eid(copy.getvalue())


@pytest.mark.parametrize(("returned_by", "reason"), [
    (_unsigned, "the returned file is the issued document, unsigned"),
    (_signed_by_an_unknown_root, "trusted root"),
    (_page_changed_before_signing, "the signed revision changes page 1"),
    (_signed_a_resaved_copy, "does not start with the issued document"),
], ids=["unsigned", "unknown-root", "page-changed", "not-the-issued-revision"])
def test_refused_signed_file_leaves_the_dossier_as_it_was(
    returned_by: Callable[..., bytes], reason: str, requests: SigningRequests, issued: SigningRequest,
    s3_store, tracker: Tracker, test_pki, test_pki_signer, identities,
) -> None:
    before = _dossier(s3_store, tracker)
    phase = tracker.state(DOSSIER).phase

    def eid(pdf: bytes) -> bytes:
        return eid_sign(pdf, test_pki, test_pki_signer.timestamper, issued.field_name)

    returned = returned_by(requests.issued_pdf(issued), eid, identities)
    with pytest.raises(ExternalSignatureRefused) as refused:
        requests.accept(DOSSIER, issued.request_id, returned)
    assert reason in refused.value.reason
    assert _dossier(s3_store, tracker) == before and tracker.state(DOSSIER).phase == phase
    assert requests.status(issued) == "issued"


def test_a_step_taken_meanwhile_is_refused_at_acceptance(
    requests: SigningRequests, issued: SigningRequest, s3_store, tracker: Tracker, test_pki, test_pki_signer
) -> None:
    second = requests.issue(external_job(DOSSIER, "sworn-eid-2"))
    requests.accept(DOSSIER, issued.request_id, _signed(requests, issued, test_pki, test_pki_signer))
    before = _dossier(s3_store, tracker)
    with pytest.raises(StepOutOfOrder, match="sworn_statement is not allowed now"):
        requests.accept(DOSSIER, second.request_id, _signed(requests, second, test_pki, test_pki_signer))
    assert _dossier(s3_store, tracker) == before and requests.status(second) == "issued"


def test_without_trust_roots_nothing_is_accepted(
    requests: SigningRequests, issued: SigningRequest, s3_store, tracker: Tracker, test_pki, test_pki_signer
) -> None:
    unconfigured = SigningRequests(s3_store, tracker)
    before = _dossier(s3_store, tracker)
    with pytest.raises(SettingsError, match="KMOP_EXTERNAL_TRUST_ROOTS is not set"):
        unconfigured.accept(DOSSIER, issued.request_id, _signed(requests, issued, test_pki, test_pki_signer))
    assert _dossier(s3_store, tracker) == before
    with pytest.raises(SigningRequestNotFound, match=f"dossier {DOSSIER} not found"):
        requests.accept(DOSSIER, request_id_for(DOSSIER, "nothing-issued"), b"%PDF-")


# --- the CLI -------------------------------------------------------------------------------------

def test_kmop_signing_request_accepts_exits_1_on_a_refusal_and_2_on_misuse(
    requests: SigningRequests, issued: SigningRequest, s3_store, s3_endpoint: str, test_pki, test_pki_signer,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in {"KMOP_BROKER": "stub", "KMOP_STORAGE": "s3", "KMOP_S3_ENDPOINT": s3_endpoint,
                        "KMOP_S3_BUCKET": s3_store.bucket, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing",
                        "KMOP_EXTERNAL_TRUST_ROOTS": str(test_pki.root_path)}.items():
        monkeypatch.setenv(name, value)
    assert main(["signing-request", "list", DOSSIER]) == 0
    assert capsys.readouterr().out.split()[:3] == [issued.request_id, "sworn_statement", "issued"]
    record_job(s3_store, external_job(DOSSIER, "sworn-eid-1"))  # the outbox of a submitted job
    assert main(["stuck", "--older-than", "0", "--resume"]) == 0
    swept = capsys.readouterr().out
    assert f"waiting {DOSSIER}/sworn_statement sworn-eid-1: issued to be signed elsewhere" in swept
    assert "resumed as" not in swept
    issued_file = tmp_path / "te-ondertekenen.pdf"
    assert main(["signing-request", "download", DOSSIER, issued.request_id, "--out", str(issued_file)]) == 0
    capsys.readouterr()
    unsigned = main(["signing-request", "accept", DOSSIER, issued.request_id, str(issued_file)])
    assert unsigned == 1 and "refused: the returned file is the issued document, unsigned" in capsys.readouterr().err
    signed_file = tmp_path / "ondertekend.pdf"
    signed_file.write_bytes(eid_sign(issued_file.read_bytes(), test_pki, test_pki_signer.timestamper,
                                     issued.field_name))
    assert main(["signing-request", "accept", DOSSIER, issued.request_id, str(signed_file)]) == 0
    assert "accepted: 01-sworn_statement-v1" in capsys.readouterr().out
    assert main(["signing-request", "accept", DOSSIER, issued.request_id, str(signed_file)]) == 0
    assert "accepted before: 01-sworn_statement-v1" in capsys.readouterr().out
    assert main(["signing-request", "show", DOSSIER, issued.request_id]) == 0
    assert "sworn_statement of dossier EXT-2026-0001, accepted" in capsys.readouterr().out
    assert main(["signing-request", "accept", DOSSIER, issued.request_id, str(tmp_path / "missing.pdf")]) == 2
    assert main(["signing-request", "show", DOSSIER, "not-a-uuid"]) == 2
    assert "request_id: 'not-a-uuid' must be a lower-case UUID" in capsys.readouterr().err
