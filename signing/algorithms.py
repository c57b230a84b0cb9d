"""The algorithm policy, enforced when signing and when verifying.

Allowed: RSA keys of at least 2048 bits (PKCS#1 v1.5 or PSS), ECDSA keys on P-256, P-384 or
P-521, and the SHA-2 digests SHA-256, SHA-384 and SHA-512. Everything else is refused: SHA-1,
MD5, SHA-224, RSA below 2048 bits, other curves, DSA, EdDSA.

``check_signing_certificate`` is called before a signature is made; ``KmopAlgorithmPolicy`` is
given to pyHanko's validation, so that every signature it checks (the document's, its
timestamps', the certificates' and the revocation data's) must follow the same rules.
"""

from __future__ import annotations

from datetime import datetime

from asn1crypto import algos, keys, x509
from pyhanko.sign.validation.utils import CMSAlgorithmUsagePolicy
from pyhanko_certvalidator.policy_decl import AlgorithmUsageConstraint

from kmop.errors import SigningError

ALLOWED_DIGESTS = frozenset({"sha256", "sha384", "sha512"})
ALLOWED_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
MIN_RSA_BITS = 2048
SIGNING_DIGEST = "sha256"

_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def key_problem(public_key: keys.PublicKeyInfo) -> str | None:
    """Why this public key is not allowed, or None when it is."""
    try:
        algorithm = public_key.algorithm
    except (ValueError, KeyError):
        return "the key algorithm cannot be read"
    if algorithm in ("rsa", "rsassa_pss"):
        bits = public_key.bit_size
        if bits < MIN_RSA_BITS:
            return f"RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"
        return None
    if algorithm == "ec":
        kind, curve = public_key.curve
        if kind != "named" or curve not in ALLOWED_CURVES:
            return f"ECDSA key on curve {curve}; only P-256, P-384 and P-521 are allowed"
        return None
    return f"{algorithm} keys are not allowed; only RSA (>= {MIN_RSA_BITS} bits) and ECDSA"


def describe_key(public_key: keys.PublicKeyInfo) -> str:
    """A short human description: ``RSA-3072``, ``ECDSA P-256``."""
    try:
        if public_key.algorithm in ("rsa", "rsassa_pss"):
            return f"RSA-{public_key.bit_size}"
        if public_key.algorithm == "ec":
            curve = public_key.curve[1]
            return f"ECDSA {_CURVE_NAMES.get(curve, curve)}"
        return str(public_key.algorithm)
    except (ValueError, KeyError):
        return "unknown"


def check_signing_certificate(cert: x509.Certificate, md_algorithm: str = SIGNING_DIGEST) -> None:
    """Raise ``SigningError`` when a signature with this certificate would break the policy."""
    problem = key_problem(cert.public_key)
    if problem:
        name = cert.subject.human_friendly
        raise SigningError(f"the signing key of {name!r} is refused by the algorithm policy: {problem}")
    if md_algorithm not in ALLOWED_DIGESTS:
        raise SigningError(
            f"digest {md_algorithm} is refused by the algorithm policy; use one of {sorted(ALLOWED_DIGESTS)}"
        )


class KmopAlgorithmPolicy(CMSAlgorithmUsagePolicy):
    """The algorithm policy as pyHanko's validation consumes it (ignores time: no sunset dates)."""

    def digest_algorithm_allowed(
        self, algo: algos.DigestAlgorithm, moment: datetime | None
    ) -> AlgorithmUsageConstraint:
        name = algo["algorithm"].native
        if name in ALLOWED_DIGESTS:
            return AlgorithmUsageConstraint(allowed=True)
        return AlgorithmUsageConstraint(
            allowed=False, failure_reason=f"digest {name} is not allowed (SHA-256, SHA-384, SHA-512 only)"
        )

    def signature_algorithm_allowed(
        self,
        algo: algos.SignedDigestAlgorithm,
        moment: datetime | None,
        public_key: keys.PublicKeyInfo | None,
    ) -> AlgorithmUsageConstraint:
        try:
            mechanism = algo.signature_algo
        except ValueError:
            mechanism = algo["algorithm"].native
        if mechanism not in ("rsassa_pkcs1v15", "rsassa_pss", "ecdsa"):
            return AlgorithmUsageConstraint(
                allowed=False, failure_reason=f"signature mechanism {mechanism} is not allowed"
            )
        try:
            digest = algo.hash_algo
        except ValueError:
            digest = None
        if digest is not None and digest not in ALLOWED_DIGESTS:
            return AlgorithmUsageConstraint(
                allowed=False, failure_reason=f"digest {digest} is not allowed (SHA-256, SHA-384, SHA-512 only)"
            )
        if public_key is not None:
            problem = key_problem(public_key)
            if problem:
                return AlgorithmUsageConstraint(allowed=False, failure_reason=problem)
        return AlgorithmUsageConstraint(allowed=True)


ALGORITHM_POLICY = KmopAlgorithmPolicy()
