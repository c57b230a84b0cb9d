"""The test PKI on real protocols: tests/pki/certomancer.yml served by tests/pki/animate.py
(`certomancer animate` with OCSP times NSS can read, so that pdfsig can check the chain).

One animator per test session runs as a separate process on a free loopback port; the URLs in
the certificates (CRL distribution points, OCSP responders) and the timestamp authority point at
it, so timestamps and revocation data travel over real HTTP. Key files are generated for the
session into a temporary folder, encrypted; none is in the repository.

The dates in certomancer.yml are written as seen from ``ANCHOR``; each session moves every one
of them (validity periods, revocation) by the time from ``ANCHOR`` to the session's start and
serves that copy, so the signer certificates stay valid for two years after any run, the
revoked one was revoked a month before it and the expired one expired a year before it.
``TestPki.shifted`` gives a date of the file as this session sees it.

Fixtures:
- ``test_pki``: the running PKI (``TestPki``): certificates, signers for any certificate label,
  an identities folder (one encrypted PKCS#12 per role, the TSA URL, the root), ``stopped()``
  to cut the network for a while.
- ``test_pki_identities``: an ``IdentityStore`` on that folder; ``test_pki_signer``: a
  ``DocumentSigner`` with the animator's TSA.
- ``test_pki_nss``: an NSS database that trusts the test root (for pdfsig).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from asn1crypto import pem, x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

CONFIG = Path(__file__).resolve().parent / "pki" / "certomancer.yml"
ANIMATE = CONFIG.parent / "animate.py"  # `certomancer animate`, OCSP times in whole seconds (see there)
ARCH = "kmop-test"
KEY_PASSWORD = b"kmop-test-keys"  # the default-password of the key set in certomancer.yml
PKCS12_PASSPHRASE = "test-pki-passphrase"
PASSPHRASE_ENV = "KMOP_TEST_PKI_PASSPHRASE"
ROLES = ("applicant", "audit_firm", "auditor", "commission", "agency")
_KEYS = {"agency_ec": "ec-p256", "weak": "rsa-1024"}
_LABELS = ("root", "interm", "tsa", "ocsp", *ROLES, "agency_ec", "revoked", "expired", "weak")
ANCHOR = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)  # "now" as the dates in certomancer.yml see it
_DATE_FIELDS = ("valid-from", "valid-to", "revoked-since")
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def shifted_config(source: Path, target: Path, shift: dt.timedelta) -> Path:
    """Write ``source`` to ``target`` with every date moved by ``shift``."""
    import yaml

    def move(node: object) -> object:
        if isinstance(node, dict):
            return {key: (_moved(value, shift) if key in _DATE_FIELDS else move(value)) for key, value in node.items()}
        if isinstance(node, list):
            return [move(item) for item in node]
        return node

    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    target.write_text(yaml.safe_dump(move(config), sort_keys=False, allow_unicode=True), encoding="utf-8")
    return target


def _moved(value: object, shift: dt.timedelta) -> str:
    moment = value if isinstance(value, dt.datetime) else dt.datetime.strptime(str(value), _DATE_FORMAT)
    return (moment + shift).astimezone(dt.timezone.utc).strftime(_DATE_FORMAT)


def generate_keys(directory: Path) -> None:
    """One encrypted key per key label of certomancer.yml (RSA-2048 unless said otherwise)."""
    directory.mkdir(parents=True, exist_ok=True)
    encryption = serialization.BestAvailableEncryption(KEY_PASSWORD)
    for label in _LABELS:
        kind = _KEYS.get(label, "rsa-2048")
        if kind == "ec-p256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=int(kind.split("-")[1]))
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        (directory / f"{label}.key.pem").write_bytes(data)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Animator:
    """The test PKI's services (tests/pki/animate.py) in a child process; ``stop``/``start`` cut
    and restore the network."""

    def __init__(self, config: Path, key_root: Path, port: int, log: Path) -> None:
        self.config = config
        self.key_root = key_root
        self.port = port
        self.prefix = f"http://127.0.0.1:{port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        command = [sys.executable, str(ANIMATE), "--config", str(self.config), "--key-root", str(self.key_root),
                   "--url-prefix", self.prefix, "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        probe = f"{self.prefix}/{ARCH}/crls/root/latest.crl"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"certomancer animate exited with {self.process.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(probe, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"certomancer animate did not answer on {self.prefix} within {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class TestPki:
    directory: Path
    animator: Animator
    config: object
    shift: dt.timedelta
    identities_dir: Path = field(init=False)

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __post_init__(self) -> None:
        self.identities_dir = self.directory / "identities"

    @property
    def config_path(self) -> Path:
        """This session's certomancer.yml: the repository's, its dates moved (see the module)."""
        return self.animator.config

    def shifted(self, moment: dt.datetime) -> dt.datetime:
        """A date as written in certomancer.yml, as this session sees it."""
        return moment + self.shift

    @property
    def arch(self):  # type: ignore[no-untyped-def]
        from certomancer.registry import ArchLabel

        return self.config.get_pki_arch(ArchLabel(ARCH))  # type: ignore[attr-defined]

    def cert(self, label: str) -> x509.Certificate:
        from certomancer.registry import CertLabel

        return self.arch.get_cert(CertLabel(label))

    @property
    def root(self) -> x509.Certificate:
        return self.cert("root")

    @property
    def root_path(self) -> Path:
        return self.identities_dir / "root.pem"

    @property
    def tsa_url(self) -> str:
        return f"{self.animator.prefix}/{ARCH}/tsa/tsa"

    def signer(self, label: str):  # type: ignore[no-untyped-def]
        """A pyHanko signer with the key and certificate ``label`` (any, also the bad ones)."""
        from certomancer.registry import CertLabel, KeyLabel
        from pyhanko.sign.signers import SimpleSigner
        from pyhanko_certvalidator.registry import SimpleCertificateStore

        arch = self.arch
        chain = [arch.get_cert(c) for c in arch.get_chain(CertLabel(label))]
        return SimpleSigner(signing_cert=self.cert(label), signing_key=arch.key_set.get_private_key(KeyLabel(label)),
                            cert_registry=SimpleCertificateStore.from_certs(chain))

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The network cut: no TSA, no OCSP responder, no CRL repository until the block ends."""
        self.animator.stop()
        try:
            yield
        finally:
            self.animator.start()

    def write_identities(self) -> Path:
        from certomancer.registry import CertLabel

        self.identities_dir.mkdir(parents=True, exist_ok=True)
        self.root_path.write_bytes(pem.armor("CERTIFICATE", self.root.dump()))
        (self.identities_dir / "signing-ca.pem").write_bytes(pem.armor("CERTIFICATE", self.cert("interm").dump()))
        for role in ROLES:
            data = self.arch.package_pkcs12(CertLabel(role), password=PKCS12_PASSPHRASE.encode())
            path = self.identities_dir / f"{role}.p12"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        config = {
            "trust_roots": ["root.pem"],
            "revocation": {"fetch": True},
            "identities": {role: {"pkcs12": f"{role}.p12", "passphrase_env": PASSPHRASE_ENV} for role in ROLES},
            "timestamp_authority": {"url": self.tsa_url, "timeout": 5},
        }
        path = self.identities_dir / "identities.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        return path


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestPki]:
    from certomancer.registry import CertomancerConfig

    directory = tmp_path_factory.mktemp("test-pki")
    generate_keys(directory / "keys")
    shift = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - ANCHOR
    config_path = shifted_config(CONFIG, directory / "certomancer.yml", shift)
    animator = Animator(config_path, directory, free_port(), directory / "animator.log")
    config = CertomancerConfig.from_file(str(config_path), key_search_dir=str(directory),
                                         external_url_prefix=animator.prefix)
    pki = TestPki(directory, animator, config, shift)
    pki.write_identities()
    animator.start()
    try:
        yield pki
    finally:
        animator.stop()


@pytest.fixture(scope="session")
def test_pki_identities(test_pki: TestPki):  # type: ignore[no-untyped-def]
    from signing.identities import IdentityStore

    return IdentityStore.from_file(test_pki.identities_dir / "identities.json", {PASSPHRASE_ENV: PKCS12_PASSPHRASE})


@pytest.fixture(scope="session")
def test_pki_signer(test_pki_identities):  # type: ignore[no-untyped-def]
    from signing.signer import DocumentSigner
    from signing.timestamping import timestamper_for

    return DocumentSigner(test_pki_identities, timestamper_for(None, test_pki_identities, backoff=0.05))


@pytest.fixture(scope="session")
def test_pki_nss(test_pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.pdftools import nss_trust_store

    return nss_trust_store(tmp_path_factory.mktemp("test-pki-nss"), test_pki.root_path)


@pytest.fixture(scope="session")
def blank_pdf_bytes() -> bytes:
    """A one-page A4 PDF, as LibreOffice's output would be before signing."""
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def sign_raw(pdf: bytes, signer, *, timestamper=None, md_algorithm: str = "sha256",  # type: ignore[no-untyped-def]
             field_name: str = "Handtekening-extern", certify: bool = False) -> bytes:
    """A PAdES signature made with pyHanko directly, bypassing ``DocumentSigner`` and its checks
    (to make the bad signatures a verifier must refuse, or an applicant's own eID signature)."""
    import io

    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter

    metadata = signers.PdfSignatureMetadata(field_name=field_name, md_algorithm=md_algorithm,
                                            subfilter=SigSeedSubFilter.PADES, certify=certify)
    out = io.BytesIO()
    signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False), metadata, signer=signer,
                     timestamper=timestamper, output=out)
    return out.getvalue()
