"""The tests' certificates outlive any run: the test PKI's dates follow the run (tests/pki_fixtures.py)
and the development PKI is issued from the moment it is made (signing/devpki.py). A fixed date
that slipped back into either would fail here years before a certificate ran out under the
signing tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.pki_fixtures import ANCHOR, CONFIG, shifted_config

MARGIN = dt.timedelta(days=365)  # valid for at least this long after the run
STILL_VALID = ("root", "interm", "tsa", "ocsp", "applicant", "audit_firm", "auditor", "commission", "agency",
               "agency_ec", "weak", "revoked")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@pytest.mark.parametrize("label", STILL_VALID)
def test_every_test_pki_certificate_but_the_expired_one_is_valid_a_year_past_the_run(test_pki, label: str) -> None:
    certificate = test_pki.cert(label)
    now = _now()
    assert certificate.not_valid_before < now < certificate.not_valid_after - MARGIN, (
        label, certificate.not_valid_before, certificate.not_valid_after)


def test_the_expired_and_the_revoked_certificate_are_so_from_before_the_run(test_pki) -> None:
    now = _now()
    assert test_pki.cert("expired").not_valid_after < now - dt.timedelta(days=180)
    revoked_since = test_pki.shifted(dt.datetime(2025, 12, 1, tzinfo=dt.timezone.utc))
    assert revoked_since < now - dt.timedelta(days=7)


def test_the_test_pki_keeps_its_shape_whatever_year_it_is_moved_to(tmp_path: Path) -> None:
    """Moving the dates changes only the dates: ten years on, the same spans."""
    import yaml

    moved = yaml.safe_load(shifted_config(CONFIG, tmp_path / "moved.yml", dt.timedelta(days=3653)).read_text())
    original = yaml.safe_load(CONFIG.read_text())
    for label in ("root", "applicant"):
        before = original["pki-architectures"]["kmop-test"]["certs"][label]["validity"]
        after = moved["pki-architectures"]["kmop-test"]["certs"][label]["validity"]
        assert before.keys() == after.keys()
        for field in before:
            shifted = dt.datetime.strptime(after[field], "%Y-%m-%dT%H:%M:%S%z")
            assert shifted - dt.datetime.strptime(before[field], "%Y-%m-%dT%H:%M:%S%z") == dt.timedelta(days=3653)
    assert ANCHOR.year == 2026  # the dates in certomancer.yml are read as seen from this moment


def test_the_development_pki_is_valid_for_years_from_when_it_is_made(tmp_path: Path) -> None:
    from signing.devpki import generate_dev_pki

    made = generate_dev_pki(tmp_path / "pki", b"passphrase")
    now = _now()
    root = x509.load_pem_x509_certificate((made.directory / "root.pem").read_bytes())
    assert root.not_valid_after_utc > now + 5 * MARGIN
    for p12 in sorted(made.directory.glob("*.p12")):
        _, certificate, _ = pkcs12.load_key_and_certificates(p12.read_bytes(), b"passphrase")
        assert certificate is not None
        assert certificate.not_valid_before_utc <= now and certificate.not_valid_after_utc > now + 5 * MARGIN, p12.name
