"""Signing with a key in a PKCS#11 token: SoftHSM2, initialised in a temporary folder, the key
and certificate written to it with `certomancer alch` (the key never lands in a file)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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
from tests.pki_fixtures import ARCH, CONFIG

MODULE = Path(os.environ.get("PKCS11_TEST_MODULE", "/usr/lib/softhsm/libsofthsm2.so"))
PIN = "2468"
TOKEN = "kmop-test"

pytestmark = pytest.mark.skipif(not MODULE.exists() or shutil.which("softhsm2-util") is None,
                                reason="SoftHSM2 is not installed (apt-get install softhsm2)")


@pytest.fixture(scope="module")
def token(test_pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SoftHSM2 token holding the agency's key and certificate, and the identities file naming it."""
    directory = tmp_path_factory.mktemp("softhsm")
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    # the module reads its configuration when it is first loaded in this process
    os.environ["SOFTHSM2_CONF"] = str(conf)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", "13579"],
                   check=True, capture_output=True, env=env, timeout=60)
    subprocess.run([sys.executable, "-m", "certomancer", "--config", str(CONFIG), "--key-root", str(test_pki.directory),
                    "--service-url-prefix", test_pki.animator.prefix, "alch", "--cert", "agency", "--include-chain",
                    "--pin", PIN, "--module", str(MODULE), "--token-label", TOKEN, ARCH],
                   check=True, capture_output=True, env=env, timeout=120)
    shutil.copy(test_pki.root_path, directory / "root.pem")
    (directory / "identities.json").write_text(json.dumps({
        "trust_roots": ["root.pem"],
        "identities": {"agency": {"type": "pkcs11", "module": str(MODULE), "token_label": TOKEN,
                                  "key_label": "agency", "cert_label": "agency", "pin_env": "KMOP_TOKEN_PIN"}},
        "timestamp_authority": {"url": test_pki.tsa_url},
    }))
    return directory / "identities.json"


@pytest.fixture(scope="module")
def token_store(token: Path):  # type: ignore[no-untyped-def]
    store = IdentityStore.from_file(token, {"KMOP_TOKEN_PIN": PIN})
    yield store
    store.close()


def test_pkcs11_entry_is_read_from_the_identities_file(token: Path) -> None:
    store = IdentityStore.from_file(token, {"KMOP_TOKEN_PIN": PIN})
    identity = store.identity_for("agency")
    assert isinstance(identity, Pkcs11Identity)
    assert (identity.module, identity.token_label, identity.key_label, identity.pin_env) == (
        MODULE, TOKEN, "agency", "KMOP_TOKEN_PIN")


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
