"""PAdES levels on the test PKI over real HTTP (certomancer animate): B-B to B-LTA, the network
cut, the timestamp authority down, the algorithm policy."""

from __future__ import annotations

import datetime as dt
import http.server
import io
import threading
from collections.abc import Iterator

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.dss import DocumentSecurityStore

from kmop.errors import SigningError, TimestampUnavailable, TransientError
from signing.policy import PadesLevel, SignaturePolicy
from signing.roles import Role
from signing.signer import DocumentSigner
from signing.timestamping import RetryingTimeStamper, timestamper_for
from signing.verify import verify_pdf
from tests.pki_fixtures import sign_raw


def _policy(level: PadesLevel, role: Role = Role.AGENCY, certify: bool = True) -> SignaturePolicy:
    return SignaturePolicy(role, level, certify)


@pytest.fixture(scope="module")
def signed_at(test_pki_signer: DocumentSigner, blank_pdf_bytes: bytes) -> dict[PadesLevel, bytes]:
    return {level: test_pki_signer.sign(blank_pdf_bytes, _policy(level), field_name="Handtekening-agency-test",
                                        reason="test")
            for level in PadesLevel}


def test_b_lta_validates_with_the_network_cut(signed_at, test_pki) -> None:
    with test_pki.stopped():
        report = verify_pdf(signed_at[PadesLevel.B_LTA], [test_pki.root], online=True)
    assert report.ok, report.to_dict()
    [signature] = report.signatures
    assert signature.level == "B-LTA" and report.indication == "TOTAL-PASSED"
    assert signature.revocation.startswith("good at signing time (embedded OCSP")
    assert signature.timestamp_authority == "kmop-docs test timestamp authority"
    assert signature.chain == ["Agentschap Innoveren & Ondernemen (testzegel)", "kmop-docs test signing CA",
                               "kmop-docs test root CA"]
    [stamp] = report.document_timestamps
    assert stamp.ok and stamp.authority == "kmop-docs test timestamp authority"


def test_b_lta_signature_still_validates_after_the_signer_certificate_expired(signed_at, test_pki) -> None:
    """Half a year after the signer's certificate ended, the document timestamp keeps the proof.
    (The last document timestamp itself then needs fresh revocation data for its authority: the
    archive is renewed with a new document timestamp before that data runs out.)"""
    later = test_pki.cert("agency").not_valid_after + dt.timedelta(days=180)
    lta = verify_pdf(signed_at[PadesLevel.B_LTA], [test_pki.root], validation_time=later)
    [signature] = lta.signatures
    assert signature.ok and signature.level == "B-LTA", lta.to_dict()
    bt = verify_pdf(signed_at[PadesLevel.B_T], [test_pki.root], validation_time=later)
    assert not bt.ok


def test_b_lt_embeds_revocation_data_and_validates_offline(signed_at, test_pki) -> None:
    report = verify_pdf(signed_at[PadesLevel.B_LT], [test_pki.root])
    assert report.ok, report.to_dict()
    assert report.signatures[0].level == "B-LT" and not report.document_timestamps


def test_b_t_needs_revocation_data_from_the_network(signed_at, test_pki) -> None:
    offline = verify_pdf(signed_at[PadesLevel.B_T], [test_pki.root])
    assert not offline.ok and offline.indication == "INDETERMINATE"
    assert "no usable revocation data" in offline.signatures[0].problems[0]
    online = verify_pdf(signed_at[PadesLevel.B_T], [test_pki.root], online=True)
    assert online.ok, online.to_dict()
    assert online.signatures[0].level == "B-T"
    assert online.signatures[0].timestamp_time and online.signatures[0].timestamp_ok


def test_b_b_has_no_timestamp_and_does_not_pass_the_policy(signed_at, test_pki) -> None:
    report = verify_pdf(signed_at[PadesLevel.B_B], [test_pki.root], online=True)
    assert report.signatures[0].level == "B-B"
    assert not report.ok and "no timestamp" in report.signatures[0].problems[0]


def test_levels_are_cumulative_in_the_file(signed_at) -> None:
    assert b"/DSS" not in signed_at[PadesLevel.B_T]
    assert b"/DSS" in signed_at[PadesLevel.B_LT] and b"/DocTimeStamp" not in signed_at[PadesLevel.B_LT]
    assert b"/DocTimeStamp" in signed_at[PadesLevel.B_LTA]


def test_b_lta_is_two_revisions_the_authority_s_data_with_its_timestamp(signed_at, blank_pdf_bytes) -> None:
    """The signature, then one revision holding the DSS (the signature's and the timestamp
    authority's chain and revocation data) and the document timestamp over it: no third
    revision written after the timestamp for its own validation data."""
    before = PdfFileReader(io.BytesIO(blank_pdf_bytes)).xrefs.total_revisions
    reader = PdfFileReader(io.BytesIO(signed_at[PadesLevel.B_LTA]))
    assert reader.xrefs.total_revisions == before + 2
    [stamp] = reader.embedded_timestamp_signatures
    assert stamp.signed_revision == reader.xrefs.total_revisions - 1  # the last revision is signed whole
    assert stamp.signer_cert.issuer_serial in DocumentSecurityStore.read_dss(reader).certs


class _FailingTsa(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
        pass


@pytest.fixture
def failing_tsa() -> Iterator[tuple[str, type[_FailingTsa]]]:
    handler = type("FailingTsa", (_FailingTsa,), {"hits": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tsa", handler
    finally:
        server.shutdown()
        server.server_close()


def test_tsa_failing_is_retried_then_timestamp_unavailable(failing_tsa, test_pki_identities, blank_pdf_bytes) -> None:
    url, handler = failing_tsa
    timestamper = timestamper_for(url, test_pki_identities, attempts=3, backoff=0.01)
    signer = DocumentSigner(test_pki_identities, timestamper)
    with pytest.raises(TimestampUnavailable, match="failed 3 times") as raised:
        signer.sign(blank_pdf_bytes, _policy(PadesLevel.B_T), field_name="S", reason="r")
    assert isinstance(raised.value, TransientError)
    assert handler.hits == 3


def test_tsa_down_means_no_signature(test_pki, test_pki_identities, blank_pdf_bytes) -> None:
    signer = DocumentSigner(test_pki_identities, timestamper_for(None, test_pki_identities, attempts=2, backoff=0.01))
    with test_pki.stopped(), pytest.raises(TimestampUnavailable):
        signer.sign(blank_pdf_bytes, _policy(PadesLevel.B_T, certify=False), field_name="S", reason="r")


def test_retrying_timestamper_recovers_after_a_failure(test_pki) -> None:
    from pyhanko.sign.timestamps import HTTPTimeStamper

    class FlakyOnce(HTTPTimeStamper):
        calls = 0

        async def async_timestamp(self, message_digest, md_algorithm):  # type: ignore[no-untyped-def]
            FlakyOnce.calls += 1
            if FlakyOnce.calls == 1:
                raise OSError("connection reset")
            return await super().async_timestamp(message_digest, md_algorithm)

    import asyncio
    import hashlib

    stamper = RetryingTimeStamper(FlakyOnce(test_pki.tsa_url), attempts=3, backoff=0.01)
    token = asyncio.run(stamper.async_timestamp(hashlib.sha256(b"x").digest(), "sha256"))
    assert token["content_type"].native == "signed_data" and FlakyOnce.calls == 2


def test_weak_rsa_key_is_refused_at_signing(test_pki, blank_pdf_bytes, test_pki_identities) -> None:
    from signing.algorithms import check_signing_certificate

    with pytest.raises(SigningError, match="RSA key of 1024 bits"):
        check_signing_certificate(test_pki.cert("weak"))
    with pytest.raises(SigningError, match="digest sha1"):
        check_signing_certificate(test_pki.cert("agency"), "sha1")


def test_weak_rsa_key_and_sha1_are_refused_at_verification(test_pki, blank_pdf_bytes, test_pki_signer) -> None:
    timestamper = test_pki_signer.timestamper
    weak = sign_raw(blank_pdf_bytes, test_pki.signer("weak"), timestamper=timestamper)
    report = verify_pdf(weak, [test_pki.root], online=True)
    assert not report.ok
    assert any("algorithm policy" in p for p in report.signatures[0].problems), report.to_dict()
    sha1 = sign_raw(blank_pdf_bytes, test_pki.signer("agency"), timestamper=timestamper, md_algorithm="sha1")
    report = verify_pdf(sha1, [test_pki.root], online=True)
    assert not report.ok, report.to_dict()


def test_ecdsa_p256_signer_is_accepted(test_pki, blank_pdf_bytes, test_pki_signer) -> None:
    signed = sign_raw(blank_pdf_bytes, test_pki.signer("agency_ec"), timestamper=test_pki_signer.timestamper)
    report = verify_pdf(signed, [test_pki.root], online=True)
    assert report.ok, report.to_dict()
    assert report.signatures[0].algorithm == "ECDSA P-256 with SHA-256"
