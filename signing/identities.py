"""Signing identities per role, from a configuration file.

The file (JSON) names, per role, a PKCS#12 file and the environment variable that holds its
passphrase; paths are relative to the file::

    {"trust_roots": ["root.pem"],
     "identities": {"applicant": {"pkcs12": "applicant.p12", "passphrase_env": "KMOP_PKI_PASSPHRASE"}},
     "timestamp_authority": {"pkcs12": "tsa.p12", "passphrase_env": "KMOP_PKI_PASSPHRASE"}}

Passphrases come from the environment (or a mapping given by the caller), never from the file.
Keys are decrypted in memory, once per identity and process, and never written out.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import pem, x509
from pyhanko.sign.signers import SimpleSigner

from kmop.errors import SigningError

from .roles import Role


@dataclass(frozen=True)
class Pkcs12Identity:
    label: str
    path: Path
    passphrase_env: str


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Certificates from a PEM (one or more) or DER file."""
    data = path.read_bytes()
    if pem.detect(data):
        return [x509.Certificate.load(der) for _, _, der in pem.unarmor(data, multiple=True)]
    return [x509.Certificate.load(data)]


class IdentityStore:
    def __init__(
        self,
        identities: Mapping[str, Pkcs12Identity],
        trust_roots: list[x509.Certificate],
        timestamp_authority: Pkcs12Identity | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        self._identities = dict(identities)
        self.trust_roots = trust_roots
        self._tsa = timestamp_authority
        self._secrets = secrets if secrets is not None else os.environ
        self._signers: dict[str, SimpleSigner] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path, secrets: Mapping[str, str] | None = None) -> IdentityStore:
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SigningError(f"identities file {path}: cannot be read ({exc})") from exc
        base = path.parent

        def identity(label: str, entry: Mapping[str, str]) -> Pkcs12Identity:
            try:
                return Pkcs12Identity(label, base / entry["pkcs12"], entry["passphrase_env"])
            except (KeyError, TypeError) as exc:
                raise SigningError(
                    f"identities file {path}: {label} needs 'pkcs12' and 'passphrase_env'"
                ) from exc

        identities = {label: identity(label, entry) for label, entry in config.get("identities", {}).items()}
        unknown = set(identities) - {role.value for role in Role}
        if unknown:
            raise SigningError(f"identities file {path}: unknown roles {sorted(unknown)}")
        roots = [cert for name in config.get("trust_roots", []) for cert in load_certificates(base / name)]
        tsa_entry = config.get("timestamp_authority")
        tsa = identity("timestamp_authority", tsa_entry) if tsa_entry else None
        return cls(identities, roots, tsa, secrets)

    def roles(self) -> list[str]:
        return sorted(self._identities)

    def signer_for(self, role: Role | str) -> SimpleSigner:
        label = Role(role).value
        identity = self._identities.get(label)
        if identity is None:
            raise SigningError(f"no signing identity configured for role {label!r}")
        return self._load(identity)

    def timestamp_authority(self) -> SimpleSigner | None:
        return self._load(self._tsa) if self._tsa else None

    def _load(self, identity: Pkcs12Identity) -> SimpleSigner:
        with self._lock:
            signer = self._signers.get(identity.label)
            if signer is None:
                passphrase = self._secrets.get(identity.passphrase_env)
                if passphrase is None:
                    raise SigningError(
                        f"identity {identity.label!r}: environment variable "
                        f"{identity.passphrase_env} (its passphrase) is not set"
                    )
                try:
                    data = identity.path.read_bytes()
                except OSError as exc:
                    raise SigningError(f"identity {identity.label!r}: {exc}") from exc
                try:
                    signer = SimpleSigner.load_pkcs12_data(data, (), passphrase.encode())
                except ValueError as exc:
                    raise SigningError(
                        f"identity {identity.label!r}: {identity.path.name} cannot be opened "
                        "(wrong passphrase or not a PKCS#12 file)"
                    ) from exc
                self._signers[identity.label] = signer
            return signer
