"""Signing keys held in a PKCS#11 token (an HSM, a smart card, SoftHSM2 in the tests).

One ``TokenSigner`` owns one logged-in session and guards every call into the token with a
lock: a PKCS#11 session can run one operation at a time, and dramatiq runs several threads per
process. The key never leaves the token; pyHanko sends it the data to sign.

Limits: a token that logs the session out (a removed card, an HSM restart) makes the next
signature fail with ``SigningError``. ``IdentityStore.close`` ends the session (the worker's
runtime does it at shutdown); a signature asked for afterwards fails with ``SigningError``, and
only a new store opens a new session.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import x509

from kmop.errors import SigningError

from .parsed_attributes import EncodeAttributesOnce


@dataclass(frozen=True)
class Pkcs11Identity:
    """Where a role's key lives in a token; the PIN comes from the environment variable named."""

    label: str
    module: Path
    token_label: str
    key_label: str
    cert_label: str
    pin_env: str
    chain: tuple[Path, ...] = ()


class _Session:
    """A logged-in session, its lock, and whether it was closed."""

    def __init__(self, session: Any, label: str) -> None:
        self.session = session
        self.label = label
        self.lock = threading.Lock()
        self.closed = False

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.session.close()


class _LockedKey:
    """A token key handle whose ``sign`` holds the session lock and refuses a closed session."""

    def __init__(self, key: Any, session: _Session) -> None:
        self._key = key
        self._session = session

    def sign(self, data: bytes, **kwargs: Any) -> bytes:
        with self._session.lock:
            if self._session.closed:
                raise SigningError(f"identity {self._session.label!r}: its token session was closed")
            return self._key.sign(data, **kwargs)


def open_token_signer(identity: Pkcs11Identity, pin: str, chain: list[x509.Certificate]):  # type: ignore[no-untyped-def]
    """A pyHanko signer on a new session of the identity's token, its objects loaded."""
    try:
        from pkcs11 import PKCS11Error
        from pyhanko.config.pkcs11 import TokenCriteria
        from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session
    except ImportError as exc:  # pragma: no cover - the dependency is declared
        raise SigningError(f"identity {identity.label!r}: PKCS#11 support is not installed ({exc})") from exc

    class TokenSigner(EncodeAttributesOnce, PKCS11Signer):
        """``PKCS11Signer`` with one session, used under a lock."""

        def __init__(self, session: _Session) -> None:
            super().__init__(session.session, cert_label=identity.cert_label, key_label=identity.key_label,
                             ca_chain=chain, other_certs_to_pull=() if chain else None)
            self.token_session = session
            with session.lock:
                self._load_objects()
                self._key_handle = _LockedKey(self._key_handle, session)

        def close(self) -> None:
            """End the session (once; a second call does nothing)."""
            self.token_session.close()

    try:
        session = open_pkcs11_session(str(identity.module), token_criteria=TokenCriteria(label=identity.token_label),
                                      user_pin=pin)
    except (PKCS11Error, OSError, RuntimeError) as exc:
        raise SigningError(
            f"identity {identity.label!r}: cannot open token {identity.token_label!r} with module "
            f"{identity.module} ({type(exc).__name__}: {exc or 'wrong PIN or token not present'})"
        ) from exc
    try:
        return TokenSigner(_Session(session, identity.label))
    except Exception as exc:  # noqa: BLE001 - any failure to find the objects: close the session
        session.close()
        raise SigningError(
            f"identity {identity.label!r}: key {identity.key_label!r} or certificate {identity.cert_label!r} "
            f"not found on token {identity.token_label!r} ({type(exc).__name__}: {exc})"
        ) from exc
