"""A development PKI for the embedded default and the demo.

Generates a root CA, one signing certificate per role and a timestamp-authority certificate, and
writes them to a folder: ``root.pem`` (the trust root to give ``kmop verify``), ``<role>.p12``
(key and chain, encrypted with the passphrase given), ``root.crl`` (the root's CRL: nothing
revoked, valid as long as the certificates) and ``identities.json`` (the identity configuration
``signing.identities.IdentityStore`` reads). Private keys are only ever written encrypted; the
root's key is not written at all (so nothing can ever be revoked, and the CRL says so for the
PKI's whole life). With the CRL as local revocation data and the in-process development TSA,
the demo makes B-LTA signatures with no network.

Not for production: production identities are configured, not generated.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .roles import Role

TSA_NAME = "tsa"
PASSPHRASE_ENV = "KMOP_PKI_PASSPHRASE"

_COMMON_NAMES = {
    Role.APPLICANT: "Aanvrager (ontwikkeling)",
    Role.AUDIT_FIRM: "Auditbureau (ontwikkeling)",
    Role.AUDITOR: "Auditor (ontwikkeling)",
    Role.COMMISSION: "Auditcommissie (ontwikkeling)",
    Role.AGENCY: "Agentschap Innoveren & Ondernemen (ontwikkelingszegel)",
}


@dataclass(frozen=True)
class DevPki:
    directory: Path

    @property
    def root_path(self) -> Path:
        return self.directory / "root.pem"

    @property
    def identities_path(self) -> Path:
        return self.directory / "identities.json"


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "BE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kmop-docs development PKI"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _issue(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    now: dt.datetime,
    years: int,
    *,
    ca: bool,
    extended_usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if ca:
        usage = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
    else:
        usage = x509.KeyUsage(True, extended_usage is None, False, False, False, False, False, False, False)
    builder = builder.add_extension(usage, critical=True)
    if extended_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([extended_usage]), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _crl(issuer: x509.Name, issuer_key: rsa.RSAPrivateKey, now: dt.datetime, years: int) -> bytes:
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer)
        .last_update(now - dt.timedelta(hours=1))
        .next_update(now + dt.timedelta(days=365 * years))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.DER)


def generate_dev_pki(directory: Path, passphrase: bytes, now: dt.datetime | None = None) -> DevPki:
    """Create a new development PKI in ``directory`` (created if missing)."""
    if not passphrase:
        raise ValueError("passphrase: must not be empty; keys are never written unencrypted")
    now = now or dt.datetime.now(dt.timezone.utc)
    directory.mkdir(parents=True, exist_ok=True)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    root_name = _name("kmop-docs development root CA")
    root = _issue(root_name, root_key, root_name, root_key, now, 20, ca=True)
    (directory / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (directory / "root.crl").write_bytes(_crl(root_name, root_key, now, 10))

    identities: dict[str, dict[str, str]] = {}
    subjects: list[tuple[str, str, x509.ObjectIdentifier | None]] = [
        (role.value, _COMMON_NAMES[role], None) for role in Role
    ]
    subjects.append((TSA_NAME, "Tijdstempeldienst (ontwikkeling)", ExtendedKeyUsageOID.TIME_STAMPING))
    encryption = serialization.BestAvailableEncryption(passphrase)
    for label, common_name, extended_usage in subjects:
        key = _key()
        cert = _issue(_name(common_name), key, root_name, root_key, now, 10, ca=False,
                      extended_usage=extended_usage)
        path = directory / f"{label}.p12"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pkcs12.serialize_key_and_certificates(
                label.encode(), key, cert, [root], encryption))
        identities[label] = {"pkcs12": path.name, "passphrase_env": PASSPHRASE_ENV}
    config = {
        "description": "kmop-docs development PKI: not for production",
        "trust_roots": ["root.pem"],
        "revocation": {"crls": ["root.crl"], "fetch": False},
        "identities": {k: v for k, v in identities.items() if k != TSA_NAME},
        "timestamp_authority": identities[TSA_NAME],
    }
    (directory / "identities.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return DevPki(directory)
