"""Closing the PKCS#11 sessions (the SoftHSM2 token of tests/support/softhsm.py): ``IdentityStore.close``
ends them, twice is harmless, a signature asked for afterwards is a clear ``SigningError``, and a
worker's ``Runtime.close`` closes its store."""

from __future__ import annotations

from pathlib import Path

import pytest
from pkcs11.exceptions import PKCS11Error

from kmop.errors import SigningError
from signing.identities import IdentityStore
from signing.policy import policy_for
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for
from tests.support.softhsm import PIN


def _open(token_file: Path) -> tuple[IdentityStore, object]:
    store = IdentityStore.from_file(token_file, {"KMOP_TOKEN_PIN": PIN})
    return store, store.signer_for("agency")


def test_close_ends_the_session_and_may_be_called_twice(token: Path) -> None:
    store, signer = _open(token)
    session = signer.pkcs11_session  # type: ignore[attr-defined]
    assert len(session.generate_random(64)) == 8  # open: the token answers (64 bits)
    store.close()
    with pytest.raises(PKCS11Error):
        session.generate_random(64)
    store.close()


def test_signing_after_close_is_a_clear_error(token: Path, blank_pdf_bytes: bytes) -> None:
    store, signer = _open(token)
    document_signer = DocumentSigner(store, timestamper_for(None, store, backoff=0.05))
    store.close()
    with pytest.raises(SigningError, match="identity 'agency': the identity store is closed"):
        document_signer.sign(blank_pdf_bytes, policy_for("registration_certificate"), field_name="S", reason="r")
    with pytest.raises(SigningError, match="identity 'agency': its token session was closed"):
        signer._key_handle.sign(b"data")  # type: ignore[attr-defined] - a signer taken before the close


def test_runtime_close_closes_the_identities(token: Path) -> None:
    from kmop.pipeline import Pipeline
    from storage.local import LocalFolderStore
    from workers.runtime import Runtime

    store, signer = _open(token)
    files = LocalFolderStore(token.parent / "store")
    Runtime(files, Pipeline(files, None, DocumentSigner(store), None)).close()  # type: ignore[arg-type]
    with pytest.raises(SigningError, match="closed"):
        store.signer_for("agency")
    assert signer.token_session.closed  # type: ignore[attr-defined]
