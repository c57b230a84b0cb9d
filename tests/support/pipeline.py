"""The pipeline on real parts for tests (a pytest plugin: tests/conftest.py loads it).

Fixtures: ``converter`` (the session's LibreOffice pool, counting its conversions) and
``pipeline`` (on a fresh S3 bucket, the development PKI, the demo dossier past its knowledge
test). ``sworn_job`` makes the demo's sworn statement under any idempotency key."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kmop.demo import example_applicant, sworn_statement_job
from kmop.jobs import DocumentJob, parse_job
from kmop.pipeline import Pipeline
from signing.roles import Role
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for
from workflow.ledger import Ledger
from workflow.steps import KNOWLEDGE_TEST_PASSED
from workflow.tracker import Tracker


class CountingConverter:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def convert(self, docx: bytes) -> bytes:
        self.calls += 1
        return self.inner.convert(docx)


@pytest.fixture
def converter(converter_pool) -> CountingConverter:  # type: ignore[no-untyped-def]
    return CountingConverter(converter_pool)


@pytest.fixture
def pipeline(s3_store, converter, identities) -> Pipeline:  # type: ignore[no-untyped-def]
    signer = DocumentSigner(identities, timestamper_for(None, identities))
    tracker = Tracker(Ledger(s3_store))
    tracker.record_fact("DEMO-2026-0001", KNOWLEDGE_TEST_PASSED, Role.APPLICANT,
                        {"passed_on": "2026-10-28"}, "knowledge-test")
    return Pipeline(s3_store, converter, signer, tracker)


def sworn_job(idempotency_key: str = "dossier-1:sworn:1", **provider: str) -> DocumentJob:
    message = copy.deepcopy(sworn_statement_job(example_applicant()).to_message())
    message["idempotency_key"] = idempotency_key
    message["data"]["provider"].update(provider)
    return parse_job(message)
