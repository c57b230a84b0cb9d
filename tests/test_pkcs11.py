"""Signing with a key in a PKCS#11 token: SoftHSM2, initialised in a temporary folder, the key
and certificate written to it with `certomancer alch` (the key never lands in a file; the token
is ``tests/support/softhsm.py``'s)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kmop.errors import SigningError
from signing.identities import IdentityStore
from signing.policy import PadesLevel, SignaturePolicy, policy_for
from signing.roles import Role
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for
from signing.tokens import Pkcs11Identity
from signing.verify import verify_pdf
from tests.support.softhsm import PIN, TOKEN_LABEL, SoftHsmToken


@pytest.fixture
def token_store(token: Path):  # type: ignore[no-untyped-def]
    store = IdentityStore.from_file(token, {"KMOP_TOKEN_PIN": PIN})
    yield store
    store.close()


def test_pkcs11_entry_is_read_from_the_identities_file(token: Path, softhsm_token: SoftHsmToken) -> None:
    store = IdentityStore.from_file(token, {"KMOP_TOKEN_PIN": PIN})
    identity = store.identity_for("agency")
    assert isinstance(identity, Pkcs11Identity)
    assert (identity.module, identity.token_label, identity.key_label, identity.pin_env) == (
        softhsm_token.module, TOKEN_LABEL, "agency", "KMOP_TOKEN_PIN")


def test_b_lta_signature_with_the_key_in_softhsm(token_store, test_pki, blank_pdf_bytes: bytes) -> None:
    signer = DocumentSigner(token_store, timestamper_for(None, token_store, backoff=0.05))
    signed = signer.sign(blank_pdf_bytes, policy_for("registration_certificate"),
                         field_name="Handtekening-agency-registration_certificate", reason="Registratie")
    with test_pki.stopped():
        report = verify_pdf(signed, [test_pki.root])
    assert report.ok, report.to_dict()
    assert report.signatures[0].level == "B-LTA" and "testzegel" in (report.signatures[0].signer or "")


def test_one_token_session_serves_concurrent_signatures(token_store, test_pki, blank_pdf_bytes: bytes) -> None:
    signer = DocumentSigner(token_store, timestamper_for(None, token_store, backoff=0.05))
    results: list[bytes] = []
    errors: list[BaseException] = []

    def sign(number: int) -> None:
        try:
            results.append(signer.sign(blank_pdf_bytes, SignaturePolicy(Role.AGENCY, PadesLevel.B_T, False),
                                       field_name=f"S{number}", reason="r"))
        except BaseException as exc:  # noqa: BLE001 - collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=sign, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(results) == 4
    assert all(verify_pdf(pdf, [test_pki.root], online=True).ok for pdf in results)


def test_wrong_pin_is_a_clear_error(token: Path, blank_pdf_bytes: bytes) -> None:
    store = IdentityStore.from_file(token, {"KMOP_TOKEN_PIN": "0000"})
    with pytest.raises(SigningError, match="cannot open token"):
        store.signer_for("agency")


def test_missing_pin_names_the_variable(token: Path) -> None:
    with pytest.raises(SigningError, match="KMOP_TOKEN_PIN"):
        IdentityStore.from_file(token, {}).signer_for("agency")
