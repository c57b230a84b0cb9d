"""A job's data is validated against its kind's schema before anything runs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kmop.demo import example_applicant, sworn_statement_job
from kmop.errors import InvalidJob
from kmop.jobs import parse_job


@pytest.fixture
def job() -> dict[str, Any]:
    return sworn_statement_job(example_applicant()).to_message()


def _error(payload: Any) -> InvalidJob:
    with pytest.raises(InvalidJob) as caught:
        parse_job(payload)
    return caught.value


def test_example_job_is_valid(job: dict[str, Any]) -> None:
    parsed = parse_job(job)
    assert parsed.kind == "sworn_statement"
    assert parsed.document_kind.step == 1


@pytest.mark.parametrize(
    ("mutate", "field", "reason_part"),
    [
        (lambda j: j["data"]["provider"].__setitem__("enterprise_number", "0123.456.789"),
         "data.provider.enterprise_number", "check digits"),
        (lambda j: j["data"]["provider"].__setitem__("iban", "BE68 5390 0754 7035"),
         "data.provider.iban", "check digits"),
        (lambda j: j["data"]["signatory"].pop("place"), "data.signatory.place", "is required"),
        (lambda j: j["data"]["declarations"].__setitem__("not_an_audit_firm", False),
         "data.declarations.not_an_audit_firm", "must be true"),
        (lambda j: j["data"]["application"].__setitem__("date", "2026-13-01"),
         "data.application.date", "date"),
        (lambda j: j["data"]["application"].__setitem__("service", "catering"),
         "data.application.service", "catering"),
        (lambda j: j["data"]["provider"].__setitem__("colour", "blue"),
         "data.provider.colour", "not a field"),
        (lambda j: j["data"]["provider"].__setitem__("name", "ACME\x01BV"),
         "data.provider.name", "U+0001"),
        (lambda j: j.__setitem__("kind", "love_letter"), "kind", "unknown document kind"),
        (lambda j: j.__setitem__("dossier_id", "../other-dossier"), "dossier_id", "must be"),
        (lambda j: j.__setitem__("idempotency_key", "key with spaces"), "idempotency_key", "must be"),
        (lambda j: j.pop("idempotency_key"), "idempotency_key", "is required"),
    ],
)
def test_bad_field_is_named(job: dict[str, Any], mutate, field: str, reason_part: str) -> None:
    payload = copy.deepcopy(job)
    mutate(payload)
    error = _error(payload)
    assert error.field == field
    assert reason_part in error.reason


def test_missing_involvement_when_declaring_involvement(job: dict[str, Any]) -> None:
    job["data"]["declarations"]["no_misuse_or_bankruptcy"] = False
    error = _error(job)
    assert error.field == "data.declarations.involvement"


def test_not_an_object_is_refused() -> None:
    assert _error(["not", "a", "job"]).field == "job"
