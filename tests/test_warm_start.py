"""A worker's start: its signatures prepared before its first job, and a start that cannot
prepare them still starts."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

import signing.signer as signer_module
from kmop.errors import ConversionError
from signing.devpki import PASSPHRASE_ENV, generate_dev_pki
from signing.identities import IdentityStore
from signing.policy import all_policies, policy_for
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for
from signing.verify import verify_pdf
from workers.warm_start import _prepare_signatures

PASSPHRASE = "warm-start"


@pytest.fixture(scope="module")
def identities(tmp_path_factory: pytest.TempPathFactory) -> IdentityStore:
    pki = generate_dev_pki(tmp_path_factory.mktemp("pki"), PASSPHRASE.encode())
    return IdentityStore.from_file(pki.identities_path, {PASSPHRASE_ENV: PASSPHRASE})


class _Converter:
    def __init__(self, result: bytes | Exception) -> None:
        self.result = result
        self.calls = 0

    def convert(self, docx: bytes) -> bytes:
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def _runtime(signer: DocumentSigner, converter: Any) -> Any:
    """What the preparation reads of a worker's runtime: its converter and its signer."""
    return SimpleNamespace(converter=converter, pipeline=SimpleNamespace(signer=signer))


def test_after_the_start_the_first_document_of_every_kind_reuses_a_prepared_signature(
    identities: IdentityStore, blank_pdf_bytes: bytes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    signer = DocumentSigner(identities, timestamper_for(None, identities))
    ways = {(policy.role, policy.level, policy.certify) for policy in all_policies()}
    with caplog.at_level(logging.INFO, logger="kmop.worker"):
        _prepare_signatures(_runtime(signer, _Converter(blank_pdf_bytes)))
    assert f"{len(ways)} way(s) of signing prepared" in caplog.text
    assert 2 <= len(ways) < len(all_policies())  # kinds signed alike share one preparation

    estimated: list[int] = []
    measure = signer_module._reserved_size
    monkeypatch.setattr(signer_module, "_reserved_size", lambda signed: estimated.append(1) or measure(signed))
    for kind in ("sworn_statement", "quote", "preparation_pack", "audit_report", "commission_decision",
                 "registration_certificate"):
        signed = signer.sign(blank_pdf_bytes, policy_for(kind), field_name=f"Handtekening-{kind}", reason="test")
        assert verify_pdf(signed, identities.trust_roots).ok, kind
    assert estimated == []  # no first signature paid for an estimate
    assert signer.prepare(blank_pdf_bytes, all_policies()) == 0  # nothing left to prepare


def test_a_start_that_cannot_prepare_its_signatures_still_starts(
    identities: IdentityStore, caplog: pytest.LogCaptureFixture
) -> None:
    signer = DocumentSigner(identities, timestamper_for(None, identities))
    converter = _Converter(ConversionError("LibreOffice refused the page"))
    with caplog.at_level(logging.INFO, logger="kmop.worker"):
        _prepare_signatures(_runtime(signer, converter))
    assert "could not prepare its signatures: LibreOffice refused the page" in caplog.text
    assert converter.calls == 1 and signer._reserved == {}


def test_without_a_timestamp_authority_preparing_fails_visibly_and_leaves_the_jobs_to_fail(
    identities: IdentityStore, blank_pdf_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    signer = DocumentSigner(identities, None)  # every policy needs a timestamp
    with caplog.at_level(logging.INFO, logger="kmop.worker"):
        _prepare_signatures(_runtime(signer, _Converter(blank_pdf_bytes)))
    assert "could not prepare its signatures" in caplog.text and "timestamp authority" in caplog.text
    assert signer._reserved == {}
