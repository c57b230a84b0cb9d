"""The timestamp authority a signer uses: an RFC 3161 server over HTTP, or the development TSA.

The development TSA (from the development PKI's ``timestamp_authority`` identity) signs tokens
in-process; it exists so that the demo makes PAdES B-T signatures with no network. Production
configures ``KMOP_TSA_URL``.
"""

from __future__ import annotations

from pyhanko.sign.timestamps import DummyTimeStamper, HTTPTimeStamper, TimeStamper

from .identities import IdentityStore


def timestamper_for(tsa_url: str | None, identities: IdentityStore) -> TimeStamper | None:
    if tsa_url:
        return HTTPTimeStamper(tsa_url, timeout=10)
    tsa = identities.timestamp_authority()
    if tsa is None:
        return None
    return DummyTimeStamper(tsa.signing_cert, tsa.signing_key, certs_to_embed=list(tsa.cert_registry))
