"""Signers whose private key is parsed once per process, not once per signature.

pyHanko's ``SimpleSigner`` and ``DummyTimeStamper`` keep the key as DER and hand it to
``cryptography`` again for every signature they make; for RSA that parse runs OpenSSL's key
consistency check (about 70 ms for a 2048-bit key on our machines), and one PAdES B-T signature
made three of them: pyHanko's dry run that sizes the signature, the signature itself and the
timestamp token. The key objects here are parsed (and checked) once when the identity is
opened and stay in memory, as the decrypted DER already did; nothing is written anywhere.

Only the mechanisms our algorithm policy admits are signed here (RSA PKCS#1 v1.5 and PSS,
ECDSA); anything else goes to pyHanko's own implementation.
"""

from __future__ import annotations

from datetime import datetime

from asn1crypto import cms, core, keys, tsp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pyhanko.sign.general import as_signing_certificate, simple_cms_attribute
from pyhanko.sign.signers import SimpleSigner
from pyhanko.sign.timestamps import DummyTimeStamper
from pyhanko_certvalidator.util import get_pyca_cryptography_hash, process_pss_params

from .parsed_attributes import EncodeAttributesOnce, reparsed

PrivateKey = RSAPrivateKey | EllipticCurvePrivateKey


def _parse(key: keys.PrivateKeyInfo) -> PrivateKey | None:
    parsed = serialization.load_der_private_key(key.dump(), password=None)
    return parsed if isinstance(parsed, (RSAPrivateKey, EllipticCurvePrivateKey)) else None


class ParsedKeySigner(EncodeAttributesOnce, SimpleSigner):
    """A ``SimpleSigner`` that signs with a key object parsed once (and encodes its attributes once)."""

    def __init__(self, signer: SimpleSigner) -> None:
        super().__init__(
            signing_cert=signer.signing_cert,
            signing_key=signer.signing_key,
            cert_registry=signer.cert_registry,
            signature_mechanism=signer.signature_mechanism,
            prefer_pss=signer.prefer_pss,
            embed_roots=signer.embed_roots,
        )
        self._private_key = _parse(signer.signing_key)

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        key = self._private_key
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
        try:
            name = mechanism.signature_algo  # "sha256_rsa" -> "rsassa_pkcs1v15"
        except ValueError:
            name = mechanism["algorithm"].native
        if isinstance(key, RSAPrivateKey) and name == "rsassa_pkcs1v15":
            return key.sign(data, PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm))
        if isinstance(key, RSAPrivateKey) and name == "rsassa_pss":
            padding, hash_algorithm = process_pss_params(mechanism["parameters"])
            return key.sign(data, padding, hash_algorithm)
        if isinstance(key, EllipticCurvePrivateKey) and name == "ecdsa":
            return key.sign(data, ECDSA(get_pyca_cryptography_hash(digest_algorithm)))
        return super().sign_raw(data, digest_algorithm)


class ParsedKeyDevTimeStamper(DummyTimeStamper):
    """The development TSA (pyHanko's in-process ``DummyTimeStamper``) with its RSA key parsed once.

    Builds the same signed attributes as pyHanko's (content type, signing time, ESS signing
    certificate, message digest) and signs them with PKCS#1 v1.5. The ESS reference to its
    certificate is encoded once, and each token is handed out parsed from its encoding, as a
    remote TSA's would be (see ``signing.parsed_attributes``).
    """

    def __init__(self, signer: SimpleSigner) -> None:
        super().__init__(signer.signing_cert, signer.signing_key, certs_to_embed=list(signer.cert_registry))
        key = _parse(signer.signing_key)
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("the development TSA needs an RSA key")
        self._private_key = key
        self._signing_certificate = simple_cms_attribute(
            "signing_certificate", as_signing_certificate(self.tsa_cert)).dump()

    def request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        return reparsed(super().request_tsa_response(req))

    def _sign_tst_info(
        self, tst_info_data: bytes, md_algorithm: str, dt: datetime
    ) -> tuple[bytes, cms.CMSAttributes]:
        hasher = hashes.Hash(get_pyca_cryptography_hash(md_algorithm))
        hasher.update(tst_info_data)
        digest = hasher.finalize()
        signed_attrs = cms.CMSAttributes([
            simple_cms_attribute("content_type", "tst_info"),
            simple_cms_attribute("signing_time", cms.Time({"utc_time": core.UTCTime(dt)})),
            cms.CMSAttribute.load(self._signing_certificate),
            simple_cms_attribute("message_digest", digest),
        ])
        signature = self._private_key.sign(
            signed_attrs.dump(), PKCS1v15(), get_pyca_cryptography_hash(md_algorithm.upper())
        )
        return signature, signed_attrs
