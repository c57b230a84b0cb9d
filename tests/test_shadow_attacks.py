"""Shadow attacks (hide, replace, hide-and-replace) appended after a signature, by a new widget, a
new annotation, the page's content and resources, and a form field's value: on an
approval-signed document (the sworn statement) and on a certified one (the quote), verification
lists what changed on which page and does not pass, and an upload of such a file for a signing
request is refused with the reason, the dossier left as it was. What does not change what is
shown still passes: B-LTA's DSS and document timestamp, the quote's acceptance in its prepared
field, an eID signature in the field prepared for it."""

from __future__ import annotations

import io

import pytest
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko_certvalidator import ValidationContext

from signing.external import ExternalSignatureRefused, accept_external_signature
from signing.policy import policy_for
from signing.signer import DocumentSigner
from signing.verify import render_text, verify_pdf
from tests.pki_fixtures import sign_raw
from tests.shadow_attacks import ATTACKS, WHITE_PAGE, add_annotation, base_document, unsigned_signature_field
from tests.signing_request_fixtures import eid_sign, external_job
from tests.support.signature_fields import FIELD, with_prepared_field

SWORN_FIELD = "Handtekening-applicant-sworn_statement"


@pytest.fixture(scope="module")
def base(blank_pdf_bytes: bytes) -> bytes:
    return base_document(blank_pdf_bytes)


@pytest.fixture(scope="module")
def signed(test_pki_signer: DocumentSigner, base: bytes) -> dict[str, bytes]:
    """The sworn statement (one approval signature) and the quote (certified; the acceptance
    field prepared, empty) as the pipeline signs them."""
    return {
        "sworn_statement": test_pki_signer.sign(base, policy_for("sworn_statement"), field_name=SWORN_FIELD,
                                                reason="Verklaring op eer (aanvrager)"),
        "quote": test_pki_signer.sign(base, policy_for("quote"), field_name="Handtekening-audit_firm-quote",
                                      reason="Offerte (auditbureau)"),
    }


@pytest.fixture(scope="module")
def eid_signed(test_pki, test_pki_signer: DocumentSigner, base: bytes) -> tuple[bytes, bytes]:
    """(issued, returned): the document issued with its prepared field, signed into it by eID."""
    issued = with_prepared_field(base)
    return issued, sign_raw(issued, test_pki.signer("applicant"), timestamper=test_pki_signer.timestamper,
                            field_name=FIELD)


@pytest.mark.parametrize("kind", ["sworn_statement", "quote"])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_shadow_change_after_signing_is_reported_and_does_not_pass(
    signed: dict[str, bytes], kind: str, attack: str, test_pki
) -> None:
    report = verify_pdf(ATTACKS[attack](signed[kind]), [test_pki.root], online=True)
    first = report.signatures[0]
    assert report.indication != "TOTAL-PASSED" and not report.ok, render_text(report)
    assert (first.indication, first.sub_indication) == ("TOTAL-FAILED", "FORMAT_FAILURE"), render_text(report)
    assert first.intact and first.valid and first.trusted  # the hash holds: what changed is what is shown
    assert first.visible_changes
    # pyHanko's diff policy forbids some of them already (a new annotation, new page content, any
    # change but form filling after a certification); the others it takes for form filling
    expected = "forbidden changes" if first.modifications == "OTHER" else "changes to what is shown"
    assert first.changes_after_signing == expected
    assert any(change.startswith("page 1: ") or change.startswith("form: ") for change in first.visible_changes)
    assert any(p.startswith("what the document shows was changed after signing") for p in first.problems)
    assert "changed after signing, on what is shown:" in render_text(report)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_an_upload_with_a_shadow_change_after_the_eid_signature_is_refused(
    eid_signed: tuple[bytes, bytes], attack: str, test_pki
) -> None:
    issued, returned = eid_signed
    with pytest.raises(ExternalSignatureRefused, match="what the document shows was changed after signing") as refused:
        accept_external_signature(issued, ATTACKS[attack](returned), [test_pki.root], online=True)
    assert "page 1: " in refused.value.reason or "form: " in refused.value.reason


def test_a_covering_widget_added_in_the_signing_revision_itself_is_refused(
    eid_signed: tuple[bytes, bytes], test_pki, test_pki_signer: DocumentSigner
) -> None:
    issued, _ = eid_signed
    writer = IncrementalPdfFileWriter(io.BytesIO(issued), strict=False)
    add_annotation(writer, unsigned_signature_field(), WHITE_PAGE, (0, 0, 595, 842), field=True)
    out = io.BytesIO()
    signers.sign_pdf(writer, signers.PdfSignatureMetadata(field_name=FIELD, subfilter=SigSeedSubFilter.PADES),
                     signer=test_pki.signer("applicant"), timestamper=test_pki_signer.timestamper, output=out)
    with pytest.raises(ExternalSignatureRefused, match="adds a signature field to page 1"):
        accept_external_signature(issued, out.getvalue(), [test_pki.root], online=True)


def test_a_signature_outside_the_prepared_field_or_a_second_one_is_refused(
    eid_signed: tuple[bytes, bytes], test_pki, test_pki_signer: DocumentSigner
) -> None:
    issued, returned = eid_signed
    elsewhere = sign_raw(issued, test_pki.signer("applicant"), timestamper=test_pki_signer.timestamper,
                         field_name="Eigen-veld")
    with pytest.raises(ExternalSignatureRefused, match=f"not in the field prepared for it \\({FIELD}\\)"):
        accept_external_signature(issued, elsewhere, [test_pki.root], online=True)
    twice = sign_raw(returned, test_pki.signer("auditor"), timestamper=test_pki_signer.timestamper,
                     field_name="Tweede")
    with pytest.raises(ExternalSignatureRefused, match="adds 2 signatures .*exactly one is expected"):
        accept_external_signature(issued, twice, [test_pki.root], online=True)


def test_an_eid_signature_with_its_dss_and_document_timestamp_is_accepted(
    eid_signed: tuple[bytes, bytes], test_pki, test_pki_signer: DocumentSigner
) -> None:
    """Signed as B-LTA by the eID software: the signature, then a DSS, then a document timestamp."""
    issued, _ = eid_signed
    metadata = signers.PdfSignatureMetadata(
        field_name=FIELD, subfilter=SigSeedSubFilter.PADES, embed_validation_info=True, use_pades_lta=True,
        validation_context=ValidationContext(trust_roots=[test_pki.root], allow_fetching=True))
    out = io.BytesIO()
    signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(issued), strict=False), metadata,
                     signer=test_pki.signer("applicant"), timestamper=test_pki_signer.timestamper, output=out)
    accepted = accept_external_signature(issued, out.getvalue(), [test_pki.root], online=True)
    assert [s.field_name for s in accepted.signatures] == [FIELD]
    assert accepted.signatures[0].level == "B-LTA" and accepted.report.document_timestamps
    assert accepted.report.ok and accepted.signatures[0].visible_changes == [], render_text(accepted.report)


def test_what_follows_a_signature_without_changing_what_is_shown_still_passes(
    signed: dict[str, bytes], test_pki_signer: DocumentSigner, blank_pdf_bytes: bytes, test_pki
) -> None:
    """The quote's acceptance into its prepared field; B-LTA's DSS and document timestamp."""
    accepted = test_pki_signer.sign(signed["quote"], policy_for("quote_acceptance"),
                                    field_name="Handtekening-applicant-quote_acceptance", reason="Aanvaarding")
    certificate = test_pki_signer.sign(blank_pdf_bytes, policy_for("registration_certificate"),
                                       field_name="Handtekening-agency-registration_certificate", reason="c")
    for data in (accepted, certificate):
        report = verify_pdf(data, [test_pki.root], online=True)
        assert report.ok and report.indication == "TOTAL-PASSED", render_text(report)
        assert all(s.visible_changes == [] for s in report.signatures)
    assert verify_pdf(certificate, [test_pki.root]).signatures[0].level == "B-LTA"


def test_a_signature_in_the_prepared_field_enlarged_over_the_page_is_reported(
    signed: dict[str, bytes], test_pki, test_pki_signer: DocumentSigner
) -> None:
    """The acceptance goes into its prepared field, but the signing revision also stretches the
    field over the whole page: its appearance is no longer confined to what was prepared."""
    from pyhanko.pdf_utils import generic

    field_name = "Handtekening-applicant-quote_acceptance"
    writer = IncrementalPdfFileWriter(io.BytesIO(signed["quote"]), strict=False)
    widget_ref = next(f for f in writer.root["/AcroForm"]["/Fields"] if f.get_object().get("/T") == field_name)
    widget_ref.get_object()[generic.NameObject("/Rect")] = generic.ArrayObject(
        generic.NumberObject(v) for v in (0, 0, 595, 842))
    writer.mark_update(widget_ref)
    out = io.BytesIO()
    signers.sign_pdf(writer, signers.PdfSignatureMetadata(field_name=field_name, subfilter=SigSeedSubFilter.PADES),
                     signer=test_pki.signer("applicant"), timestamper=test_pki_signer.timestamper, output=out)
    report = verify_pdf(out.getvalue(), [test_pki.root], online=True)
    certification = report.signatures[0]
    assert certification.indication == "TOTAL-FAILED" and not report.ok, render_text(report)
    assert any(f"signed signature field '{field_name}' (widget) changed" in c and "/Rect" in c
               for c in certification.visible_changes), certification.visible_changes


def test_a_signature_the_policy_does_not_provide_for_is_reported_even_unseen(
    signed: dict[str, bytes], test_pki, test_pki_signer: DocumentSigner
) -> None:
    """An invisible signature changes nothing on the pages, but the sworn statement's policy lets
    nothing but validation data follow the applicant's signature."""
    extra = sign_raw(signed["sworn_statement"], test_pki.signer("auditor"), timestamper=test_pki_signer.timestamper,
                     field_name="Extra")
    report = verify_pdf(extra, [test_pki.root], online=True)
    sworn, other = report.signatures
    assert sworn.visible_changes == [] and other.ok
    assert (sworn.indication, sworn.sub_indication) == ("INDETERMINATE", "SIG_CONSTRAINTS_FAILURE")
    assert any("the signature policy of sworn_statement allows no signature in field Extra" in p
               for p in sworn.problems), render_text(report)
    assert report.indication == "INDETERMINATE" and not report.ok


DOSSIER = "SHADOW-2026-0001"


def _dossier(store, tracker) -> tuple[list[dict], list[str]]:  # type: ignore[no-untyped-def]
    """What a refusal must leave alone: the ledger and every stored document of the dossier."""
    from storage.keys import dossier_prefix

    return [e.to_dict() for e in tracker.history(DOSSIER)], store.list(f"{dossier_prefix(DOSSIER)}documents/")


def test_a_shadowed_upload_for_a_signing_request_is_refused_and_the_dossier_stays(
    s3_store, converter_pool, test_pki, test_pki_signer: DocumentSigner  # type: ignore[no-untyped-def]
) -> None:
    """The sworn statement as the service issues it (LibreOffice), signed by eID into its field,
    then covered: refused with the reason, nothing stored or recorded; the clean file is accepted."""
    from kmop.signing_requests import SigningRequests
    from signing.roles import Role
    from workflow.ledger import Ledger
    from workflow.steps import KNOWLEDGE_TEST_PASSED
    from workflow.tracker import Tracker

    tracker = Tracker(Ledger(s3_store))
    tracker.record_fact(DOSSIER, KNOWLEDGE_TEST_PASSED, Role.APPLICANT, {"passed_on": "2026-10-28"}, "knowledge-test")
    requests = SigningRequests(s3_store, tracker, converter_pool, [test_pki.root])
    issued = requests.issue(external_job(DOSSIER, "sworn-eid-shadow"))
    returned = eid_sign(requests.issued_pdf(issued), test_pki, test_pki_signer.timestamper, issued.field_name)
    before = _dossier(s3_store, tracker)
    for attack in ("widget-hide-and-replace", "annotation-hide-and-replace", "content-hide"):
        with pytest.raises(ExternalSignatureRefused, match="what the document shows was changed after signing"):
            requests.accept(DOSSIER, issued.request_id, ATTACKS[attack](returned))
        assert _dossier(s3_store, tracker) == before and requests.status(issued) == "issued"
    accepted = requests.accept(DOSSIER, issued.request_id, returned)
    assert accepted.result.created and requests.status(issued) == "accepted"


def test_a_comparison_beyond_its_object_limit_is_a_finding_not_a_pass(signed: dict[str, bytes]) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    from signing.visible_changes import visible_changes

    def changes(data: bytes, limit: int) -> list[str]:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        return [str(c) for c in visible_changes(reader, reader.embedded_regular_signatures[0].signed_revision, limit)]

    assert changes(signed["sworn_statement"], 5) == []  # nothing after the signature: nothing to compare
    assert changes(ATTACKS["content-hide"](signed["sworn_statement"]), 100_000) == [
        "page 1: page content (/Contents) changed"]
    assert changes(ATTACKS["content-hide"](signed["sworn_statement"]), 5) == [
        "the updates after signing reach more than 5 objects: what they change on the pages was not checked"]
