"""A deployment's own signature policy (``KMOP_SIGNATURE_POLICY``): the levels it names are the
ones documents are signed at, and a file that cannot be used stops the service at start-up with
the field and the reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kmop.pipeline import Pipeline
from kmop.settings import SettingsError, load_settings
from signing import policy
from signing.policy import POLICY_ENV, PadesLevel, policy_for
from signing.verify import verify_pdf
from tests.support.pipeline import sworn_job as _job


def _default() -> dict[str, Any]:
    return json.loads(policy.DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))


@pytest.fixture
def policy_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """Installs a policy file for the test (the policy is read once per process), then the
    default again."""

    def install(content: dict[str, Any]) -> Path:
        path = tmp_path / "policy.json"
        path.write_text(json.dumps(content), encoding="utf-8")
        monkeypatch.setenv(POLICY_ENV, str(path))
        policy._policies.cache_clear()
        return path

    yield install
    monkeypatch.delenv(POLICY_ENV, raising=False)
    policy._policies.cache_clear()


def test_the_default_policy_signs_the_certificate_and_decisions_for_the_long_term() -> None:
    assert policy.policy_file() == policy.DEFAULT_POLICY_FILE
    levels = {kind: policy_for(kind).level for kind in _default()["kinds"]}
    assert {kind for kind, level in levels.items() if level is PadesLevel.B_LTA} == {
        "commission_decision", "registration_certificate", "follow_up_decision"}
    assert all(level is PadesLevel.B_T for kind, level in levels.items() if "decision" not in kind
               and kind != "registration_certificate")


def test_a_deployment_policy_decides_the_level_the_pipeline_signs_at(
    policy_env, pipeline: Pipeline, identities, s3_store
) -> None:
    content = _default()
    content["kinds"]["sworn_statement"]["level"] = "B-LTA"
    policy_env(content)
    assert load_settings().signature_policy is not None

    result = pipeline.run(_job())

    report = verify_pdf(s3_store.get(result.key), identities.trust_roots)
    [signature] = report.signatures
    assert report.ok and signature.level == "B-LTA", report.to_dict()
    assert len(report.document_timestamps) == 1


def test_every_kind_at_b_t_makes_the_certificate_a_single_timestamped_signature(
    policy_env, identities, blank_pdf_bytes: bytes
) -> None:
    from signing.signer import DocumentSigner
    from signing.timestamping import timestamper_for

    content = _default()
    for entry in content["kinds"].values():
        entry["level"] = "B-T"
    policy_env(content)
    signer = DocumentSigner(identities, timestamper_for(None, identities))

    signed = signer.sign(blank_pdf_bytes, policy_for("registration_certificate"), field_name="Handtekening",
                         reason="test")

    report = verify_pdf(signed, identities.trust_roots)
    [signature] = report.signatures
    assert report.ok and signature.level == "B-T" and not report.document_timestamps, report.to_dict()


def _broken(change: str) -> dict[str, Any]:
    content = _default()
    kinds = content["kinds"]
    if change == "level":
        kinds["quote"]["level"] = "B-X"
    elif change == "role":
        kinds["quote"]["role"] = "notary"
    elif change == "unknown kind":
        kinds["invoice"] = dict(kinds["quote"])
    elif change == "missing kind":
        del kinds["audit_report"]
    elif change == "certify":
        kinds["quote"]["certify"] = "yes"
    elif change == "approvals":
        kinds["quote"]["approvals"] = ["acceptance"]
    elif change == "approved kind not an object":
        kinds["quote_acceptance"] = "B-T"
    return content


@pytest.mark.parametrize("change, message", [
    ("level", "kinds.quote.level: 'B-X' is not one of B-B, B-T, B-LT, B-LTA"),
    ("role", "kinds.quote.role: 'notary' is not one of applicant, audit_firm"),
    ("unknown kind", "kinds.invoice: not a document kind; expected one of audit_report"),
    ("missing kind", "kinds.audit_report: missing: every document kind needs a policy"),
    ("certify", "kinds.quote.certify: 'yes' is not true or false"),
    ("approvals", "kinds.quote.approvals: ['acceptance'] is not a list of document kinds"),
    ("approved kind not an object", "kinds.quote_acceptance: not an object"),
])
def test_a_policy_file_that_cannot_be_used_is_refused_at_start_naming_the_field(
    policy_env, change: str, message: str
) -> None:
    path = policy_env(_broken(change))

    with pytest.raises(SettingsError) as refused:
        load_settings()

    assert str(refused.value).startswith(f"{POLICY_ENV}: signature policy {path}: ")
    assert message in str(refused.value)


@pytest.mark.parametrize("content, message", [
    ("{not json", "file: is not JSON"),
    ("[]", "kinds: missing, or not an object of document kinds"),
])
def test_a_policy_file_that_is_not_a_policy_is_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "policy.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(SettingsError, match=message):
        load_settings({POLICY_ENV: str(path)})
    with pytest.raises(SettingsError, match="file: cannot be read"):
        load_settings({POLICY_ENV: str(tmp_path / "absent.json")})
