"""Signing identities per role, from a configuration file.

The file (JSON) names, per role, where its key is: a PKCS#12 file (with the environment variable
that holds its passphrase) or a PKCS#11 token (module, token label, key and certificate labels,
and the environment variable that holds the PIN). Paths are relative to the file::

    {"trust_roots": ["root.pem"],
     "revocation": {"crls": ["root.crl"], "fetch": false},
     "identities": {
       "applicant": {"pkcs12": "applicant.p12", "passphrase_env": "KMOP_PKI_PASSPHRASE"},
       "agency": {"type": "pkcs11", "module": "/usr/lib/softhsm/libsofthsm2.so",
                  "token_label": "kmop", "key_label": "agency", "cert_label": "agency",
                  "pin_env": "KMOP_TOKEN_PIN", "chain": ["signing-ca.pem"]}},
     "timestamp_authority": {"url": "https://tsa.example/tsr", "timeout": 10}}

``type`` defaults to ``pkcs12``. ``timestamp_authority`` is an RFC 3161 server (``url``) or, for
development, a PKCS#12 identity that signs tokens in-process. ``revocation`` gives revocation
data kept locally (CRL or OCSP response files, DER or PEM) and whether the signer may fetch
OCSP responses and CRLs from the URLs in the certificates (``fetch``, default true); the signer
embeds what it used in B-LT and B-LTA signatures.

Passphrases and PINs come from the environment (or a mapping given by the caller), never from
the file. PKCS#12 keys are decrypted in memory, once per identity and process, and never written
out; token keys never leave the token (see ``signing.tokens``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asn1crypto import crl, ocsp, pem, x509
from pyhanko.sign.signers import Signer, SimpleSigner

from kmop.errors import SigningError

from .memory_keys import ParsedKeySigner
from .roles import Role
from .tokens import Pkcs11Identity, open_token_signer

__all__ = ["IdentityStore", "Pkcs11Identity", "Pkcs12Identity", "RevocationSources", "load_certificates"]


@dataclass(frozen=True)
class Pkcs12Identity:
    label: str
    path: Path
    passphrase_env: str


@dataclass(frozen=True)
class RevocationSources:
    """Revocation data the signer has locally, and whether it may fetch more over the network."""

    crls: tuple[crl.CertificateList, ...] = ()
    ocsps: tuple[ocsp.OCSPResponse, ...] = ()
    fetch: bool = True


@dataclass(frozen=True)
class TimestampAuthority:
    """An RFC 3161 server (``url``) or an in-process development TSA (``identity``)."""

    url: str | None = None
    timeout: float = 10.0
    identity: Pkcs12Identity | None = None


def _der_objects(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if pem.detect(data):
        return [der for _, _, der in pem.unarmor(data, multiple=True)]
    return [data]


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Certificates from a PEM (one or more) or DER file."""
    return [x509.Certificate.load(der) for der in _der_objects(path)]


Identity = Pkcs12Identity | Pkcs11Identity


@dataclass
class _Loaded:
    signer: Signer
    closer: Any = None


class IdentityStore:
    """The configured signing identities, trust roots, timestamp authority and revocation sources."""

    def __init__(
        self,
        identities: Mapping[str, Identity],
        trust_roots: list[x509.Certificate],
        timestamp_authority: Pkcs12Identity | TimestampAuthority | None = None,
        secrets: Mapping[str, str] | None = None,
        revocation: RevocationSources | None = None,
    ) -> None:
        self._identities = dict(identities)
        self.trust_roots = trust_roots
        if isinstance(timestamp_authority, Pkcs12Identity):
            timestamp_authority = TimestampAuthority(identity=timestamp_authority)
        self.tsa = timestamp_authority
        self.revocation = revocation or RevocationSources()
        self._secrets = secrets if secrets is not None else os.environ
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_file(cls, path: Path, secrets: Mapping[str, str] | None = None) -> IdentityStore:
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SigningError(f"identities file {path}: cannot be read ({exc})") from exc
        if not isinstance(config, dict):
            raise SigningError(f"identities file {path}: expected a JSON object")
        reader = _ConfigReader(path)
        identities = {label: reader.identity(label, entry) for label, entry in config.get("identities", {}).items()}
        unknown = set(identities) - {role.value for role in Role}
        if unknown:
            raise SigningError(f"identities file {path}: unknown roles {sorted(unknown)}")
        roots = [cert for name in config.get("trust_roots", []) for cert in reader.certificates(name)]
        tsa_entry = config.get("timestamp_authority")
        tsa = reader.timestamp_authority(tsa_entry) if tsa_entry else None
        revocation = reader.revocation(config.get("revocation") or {})
        return cls(identities, roots, tsa, secrets, revocation)

    def roles(self) -> list[str]:
        return sorted(self._identities)

    def identity_for(self, role: Role | str) -> Identity:
        """Where the role's key is configured to be (no key is opened)."""
        label = Role(role).value
        identity = self._identities.get(label)
        if identity is None:
            raise SigningError(f"no signing identity configured for role {label!r}")
        return identity

    def signer_for(self, role: Role | str) -> Signer:
        return self._load(self.identity_for(role))

    def timestamp_authority(self) -> SimpleSigner | None:
        """The development TSA's identity, when the configuration names one (not a URL)."""
        if self.tsa is None or self.tsa.identity is None:
            return None
        signer = self._load(self.tsa.identity)
        assert isinstance(signer, SimpleSigner)
        return signer

    def close(self) -> None:
        """End the token sessions this store opened and forget the decrypted keys; a second call
        does nothing. A signer asked for afterwards raises ``SigningError``: a store is closed when
        its process shuts down, and a late signature must not open a session nobody closes."""
        with self._lock:
            self._closed = True
            loaded, self._loaded = self._loaded, {}
        for entry in loaded.values():
            if entry.closer is not None:
                entry.closer()

    def _load(self, identity: Identity) -> Signer:
        with self._lock:
            if self._closed:
                raise SigningError(f"identity {identity.label!r}: the identity store is closed (shutting down)")
            entry = self._loaded.get(identity.label)
            if entry is None:
                if isinstance(identity, Pkcs11Identity):
                    signer = open_token_signer(identity, self._secret(identity.label, identity.pin_env, "PIN"),
                                               [c for p in identity.chain for c in load_certificates(p)])
                    entry = _Loaded(signer, signer.close)
                else:
                    entry = _Loaded(self._open_pkcs12(identity))
                self._loaded[identity.label] = entry
            return entry.signer

    def _secret(self, label: str, variable: str, what: str) -> str:
        value = self._secrets.get(variable)
        if value is None:
            raise SigningError(f"identity {label!r}: environment variable {variable} (its {what}) is not set")
        return value

    def _open_pkcs12(self, identity: Pkcs12Identity) -> SimpleSigner:
        passphrase = self._secret(identity.label, identity.passphrase_env, "passphrase")
        try:
            data = identity.path.read_bytes()
        except OSError as exc:
            raise SigningError(f"identity {identity.label!r}: {exc}") from exc
        try:
            return ParsedKeySigner(SimpleSigner.load_pkcs12_data(data, (), passphrase.encode()))
        except ValueError as exc:
            raise SigningError(
                f"identity {identity.label!r}: {identity.path.name} cannot be opened "
                "(wrong passphrase or not a PKCS#12 file)"
            ) from exc


@dataclass
class _ConfigReader:
    path: Path
    base: Path = field(init=False)

    def __post_init__(self) -> None:
        self.base = self.path.parent

    def _fail(self, message: str) -> SigningError:
        return SigningError(f"identities file {self.path}: {message}")

    def _file(self, name: Any) -> Path:
        if not isinstance(name, str) or not name:
            raise self._fail(f"expected a file name, got {name!r}")
        return self.base / name

    def certificates(self, name: Any) -> list[x509.Certificate]:
        path = self._file(name)
        try:
            return load_certificates(path)
        except (OSError, ValueError) as exc:
            raise self._fail(f"{name}: not a readable certificate file ({exc})") from exc

    def identity(self, label: str, entry: Any) -> Identity:
        if not isinstance(entry, dict):
            raise self._fail(f"{label}: expected an object")
        kind = entry.get("type", "pkcs12")
        try:
            if kind == "pkcs12":
                return Pkcs12Identity(label, self._file(entry["pkcs12"]), str(entry["passphrase_env"]))
            if kind == "pkcs11":
                return Pkcs11Identity(
                    label=label,
                    module=Path(str(entry["module"])),
                    token_label=str(entry["token_label"]),
                    key_label=str(entry["key_label"]),
                    cert_label=str(entry.get("cert_label", entry["key_label"])),
                    pin_env=str(entry["pin_env"]),
                    chain=tuple(self._file(name) for name in entry.get("chain", [])),
                )
        except KeyError as exc:
            needs = ("'pkcs12' and 'passphrase_env'" if kind == "pkcs12"
                     else "'module', 'token_label', 'key_label' and 'pin_env'")
            raise self._fail(f"{label} needs {needs} (missing {exc})") from exc
        raise self._fail(f"{label}: unknown identity type {kind!r}; expected 'pkcs12' or 'pkcs11'")

    def timestamp_authority(self, entry: Any) -> TimestampAuthority:
        if isinstance(entry, dict) and "url" in entry:
            return TimestampAuthority(url=str(entry["url"]), timeout=float(entry.get("timeout", 10.0)))
        identity = self.identity("timestamp_authority", entry)
        if not isinstance(identity, Pkcs12Identity):
            raise self._fail("timestamp_authority: expected a 'url' or a PKCS#12 identity")
        return TimestampAuthority(identity=identity)

    def revocation(self, entry: Any) -> RevocationSources:
        if not isinstance(entry, dict):
            raise self._fail("revocation: expected an object")
        try:
            crls = tuple(crl.CertificateList.load(der) for name in entry.get("crls", [])
                         for der in _der_objects(self._file(name)))
            ocsps = tuple(ocsp.OCSPResponse.load(der) for name in entry.get("ocsps", [])
                          for der in _der_objects(self._file(name)))
            for item in (*crls, *ocsps):
                item.native  # parse now: a broken file fails at start-up, not at the first signature
        except (OSError, ValueError) as exc:
            raise self._fail(f"revocation: unreadable CRL or OCSP file ({exc})") from exc
        return RevocationSources(crls, ocsps, bool(entry.get("fetch", True)))
