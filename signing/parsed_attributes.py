"""CMS attributes serialised once per signature, the signer's certificate reference once per key.

asn1crypto keeps the encoding of a value it parsed from bytes, but re-encodes a value built in
Python every time it is dumped, down to the last name of the issuer. pyHanko dumps the signed
attributes three times per signature (to sign them, to size the container, to copy them into
the ``SignerInfo``): the ESS signing-certificate reference alone cost about 2.5 ms per dump,
twice over for a B-T signature (ours and the TSA's): half of the signing CPU.

Here every attribute value a provider builds is parsed back from its own encoding once, so
later dumps reuse it, and the signing-certificate-v2 value of a key is encoded once per signer.
The attributes and their bytes are unchanged; only the work of re-encoding them is saved.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from asn1crypto import cms, tsp, x509
from pyhanko.sign.attributes import (
    CMSAttributeProvider,
    SignedAttributeProviderSpec,
    SigningCertificateV2Provider,
    UnsignedAttributeProviderSpec,
)
from pyhanko.sign.general import as_signing_certificate_v2


def reparsed(value: Any) -> Any:
    """``value`` parsed back from its encoding: the same value, which dumps without re-encoding."""
    return value.__class__.load(value.dump())


class _ReparsedValue(CMSAttributeProvider):
    def __init__(self, inner: CMSAttributeProvider) -> None:
        self.inner = inner
        self.attribute_type = inner.attribute_type

    async def build_attr_value(self, dry_run: bool = False) -> Any:
        value = await self.inner.build_attr_value(dry_run=dry_run)
        return None if value is None else reparsed(value)


class _EncodedSigningCertificate(CMSAttributeProvider):
    attribute_type = "signing_certificate_v2"

    def __init__(self, encoded: bytes) -> None:
        self.encoded = encoded

    async def build_attr_value(self, dry_run: bool = False) -> tsp.SigningCertificateV2:
        return tsp.SigningCertificateV2.load(self.encoded)


class _ReparsedSignedAttributes(SignedAttributeProviderSpec):
    def __init__(self, inner: SignedAttributeProviderSpec, signing_certificate: bytes) -> None:
        self.inner = inner
        self.signing_certificate = signing_certificate

    def signed_attr_providers(self, data_digest: bytes, digest_algorithm: str) -> Iterable[CMSAttributeProvider]:
        for provider in self.inner.signed_attr_providers(data_digest, digest_algorithm):
            if type(provider) is SigningCertificateV2Provider:
                yield _EncodedSigningCertificate(self.signing_certificate)
            else:
                yield _ReparsedValue(provider)


class _ReparsedUnsignedAttributes(UnsignedAttributeProviderSpec):
    def __init__(self, inner: UnsignedAttributeProviderSpec) -> None:
        self.inner = inner

    def unsigned_attr_providers(
        self, signature: bytes, signed_attrs: cms.CMSAttributes, digest_algorithm: str
    ) -> Iterable[CMSAttributeProvider]:
        for provider in self.inner.unsigned_attr_providers(signature, signed_attrs, digest_algorithm):
            yield _ReparsedValue(provider)


class EncodeAttributesOnce:
    """Mixin for a pyHanko ``Signer``: its attribute values are encoded once per signature.

    It wraps the attribute provider specs pyHanko's ``Signer`` selects (pinned pyHanko version;
    tests/test_signing.py checks the attributes against pyHanko's own).
    """

    signing_cert: x509.Certificate
    _signing_certificate_v2: bytes | None = None

    def _signed_attr_provider_spec(self, *args: Any, **kwargs: Any) -> SignedAttributeProviderSpec:
        if self._signing_certificate_v2 is None:
            self._signing_certificate_v2 = as_signing_certificate_v2(self.signing_cert).dump()
        inner = super()._signed_attr_provider_spec(*args, **kwargs)  # type: ignore[misc]
        return _ReparsedSignedAttributes(inner, self._signing_certificate_v2)

    def _unsigned_attr_provider_spec(self, *args: Any, **kwargs: Any) -> UnsignedAttributeProviderSpec:
        return _ReparsedUnsignedAttributes(super()._unsigned_attr_provider_spec(*args, **kwargs))  # type: ignore[misc]
