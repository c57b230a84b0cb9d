"""Signing keys held in a PKCS#11 token (an HSM, a smart card, SoftHSM2 in the tests).

One ``TokenSigner`` owns one logged-in session and guards every call into the token with a
lock: a PKCS#11 session can run one operation at a time, and dramatiq runs several threads per
process. The key never leaves the token; pyHanko sends it the data to sign.

Limits: a token that logs the session out (a removed card, an HSM restart) makes the next
signature fail with ``SigningError``; ``IdentityStore.close`` ends the session, and a new
store opens a new one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import x509

from kmop.errors import SigningError


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


class _LockedKey:
    """A token key handle whose ``sign`` holds the session lock."""

    def __init__(self, key: Any, lock: threading.Lock) -> None:
        self._key = key
        self._lock = lock

    def sign(self, data: bytes, **kwargs: Any) -> bytes:
        with self._lock:
            return self._key.sign(data, **kwargs)


def open_token_signer(identity: Pkcs11Identity, pin: str, chain: list[x509.Certificate]):  # type: ignore[no-untyped-def]
    """A pyHanko signer on a new session of the identity's token, its objects loaded."""
    try:
        from pkcs11 import PKCS11Error
        from pyhanko.config.pkcs11 import TokenCriteria
        from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session
    except ImportError as exc:  # pragma: no cover - the dependency is declared
        raise SigningError(f"identity {identity.label!r}: PKCS#11 support is not installed ({exc})") from exc

    class TokenSigner(PKCS11Signer):
        """``PKCS11Signer`` with one session, used under a lock."""

        def __init__(self, session, lock: threading.Lock) -> None:  # type: ignore[no-untyped-def]
            super().__init__(session, cert_label=identity.cert_label, key_label=identity.key_label,
                             ca_chain=chain, other_certs_to_pull=() if chain else None)
            self.session_lock = lock
            with lock:
                self._load_objects()
                self._key_handle = _LockedKey(self._key_handle, lock)

        def close(self) -> None:
            with self.session_lock:
                self.pkcs11_session.close()

    try:
        session = open_pkcs11_session(str(identity.module), token_criteria=TokenCriteria(label=identity.token_label),
                                      user_pin=pin)
    except (PKCS11Error, OSError, RuntimeError) as exc:
        raise SigningError(
            f"identity {identity.label!r}: cannot open token {identity.token_label!r} with module "
            f"{identity.module} ({type(exc).__name__}: {exc or 'wrong PIN or token not present'})"
        ) from exc
    try:
        return TokenSigner(session, threading.Lock())
    except Exception as exc:  # noqa: BLE001 - any failure to find the objects: close the session
        session.close()
        raise SigningError(
            f"identity {identity.label!r}: key {identity.key_label!r} or certificate {identity.cert_label!r} "
            f"not found on token {identity.token_label!r} ({type(exc).__name__}: {exc})"
        ) from exc
