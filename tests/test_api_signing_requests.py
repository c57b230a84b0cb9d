"""Signatures made elsewhere through HTTP: uvicorn (``kmop api``) and a dramatiq worker as separate
processes, real Redis, moto's S3 server. The producer submits a sworn statement to be signed
elsewhere; the applicant downloads it, signs it with its "eID" (a key of the certomancer test
PKI, used with pyHanko as eID software would) and uploads it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis

from kmop.scenario import dossier_steps
from signing.roles import Role
from storage.s3 import S3Store
from testing.processes import free_port
from tests.pki_fixtures import PASSPHRASE_ENV, PKCS12_PASSPHRASE, sign_raw
from tests.signing_request_fixtures import eid_sign, external_job_message
from tests.support.api import (
    AGENCY_TOKEN,
    APPLICANT_KEY,
    JOB_TIMEOUT,
    REPO,
    SERVICE_TOKEN,
    api_client,
    applicant,
    applicant_token,
    record_fact,
    stop,
    wait_for,
)
from tests.support.s3 import remove_bucket

pytestmark = pytest.mark.slow  # starts the API and a worker

MAX_UPLOAD = 2 * 1024 * 1024
DOSSIER = "API-EID-1"


@dataclass
class EidStack:
    url: str
    store: S3Store
    processes: list[subprocess.Popen]


@pytest.fixture(scope="module")
def eid_stack(s3_endpoint: str, redis_url: str, test_pki,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[EidStack]:
    """The API and one worker, configured to accept signatures chaining to the test PKI's root."""
    namespace = f"kmop-eid-test-{uuid.uuid4().hex[:8]}"
    store = S3Store.from_settings(endpoint_url=s3_endpoint, bucket=f"kmop-eid-{uuid.uuid4().hex}",
                                  region="us-east-1", access_key="testing", secret_key="testing")
    store.ensure_bucket()
    env = {name: value for name, value in os.environ.items() if not name.startswith("KMOP_")}
    env |= {
        "KMOP_REDIS_URL": redis_url, "KMOP_REDIS_NAMESPACE": namespace, "KMOP_S3_ENDPOINT": s3_endpoint,
        "KMOP_S3_BUCKET": store.bucket, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "KMOP_IDENTITIES": str(test_pki.identities_dir / "identities.json"), PASSPHRASE_ENV: PKCS12_PASSPHRASE,
        "KMOP_API_SERVICE_TOKEN": SERVICE_TOKEN, "KMOP_API_AGENCY_TOKEN": AGENCY_TOKEN,
        "KMOP_API_APPLICANT_KEY": APPLICANT_KEY, "KMOP_API_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "KMOP_EXTERNAL_TRUST_ROOTS": str(test_pki.root_path),
    }
    port = free_port()
    logs = tmp_path_factory.mktemp("eid-logs")
    commands = {
        "worker": ["-m", "dramatiq", "workers.app", "--processes", "1", "--threads", "1"],
        "api": ["-m", "kmop.cli", "api", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
    }
    processes = [subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, stdout=(logs / f"{name}.log").open("wb"),
                                  stderr=subprocess.STDOUT, start_new_session=True)
                 for name, argv in commands.items()]
    stack = EidStack(f"http://127.0.0.1:{port}", store, processes)
    try:
        with api_client(stack.url, None) as anonymous:
            wait_for(lambda: _answers(anonymous), 30, "the API answering /health", *processes)
        yield stack
    finally:
        for process in processes:
            stop(process)
        queues = redis.Redis.from_url(redis_url)
        for key in queues.scan_iter(f"{namespace}*"):
            queues.delete(key)
        queues.close()
        remove_bucket(store)


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def service(eid_stack: EidStack) -> Iterator[httpx.Client]:
    with api_client(eid_stack.url, SERVICE_TOKEN) as client:
        yield client


@dataclass(frozen=True)
class Issued:
    job_id: str
    href: str


@pytest.fixture(scope="module")
def issued(eid_stack: EidStack, service: httpx.Client) -> Issued:
    """The producer's side: the knowledge test, then a sworn statement to be signed elsewhere."""
    assert record_fact(service, dossier_steps(applicant(DOSSIER))[0]).status_code == 201
    job = external_job_message(DOSSIER, "sworn-eid-1")
    submitted = service.post("/jobs", json=job, headers={"Idempotency-Key": f"{DOSSIER}:sworn-eid-1"})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]

    def waiting() -> dict | None:
        status = service.get(f"/jobs/{job_id}").json()
        assert status["status"] in ("queued", "awaiting_signature"), status
        return status if status["status"] == "awaiting_signature" else None

    status = wait_for(waiting, JOB_TIMEOUT, "the signing request", *eid_stack.processes)
    return Issued(job_id, status["signing_request"])


def test_applicant_signs_with_its_eid_and_the_dossier_moves(
    eid_stack: EidStack, service: httpx.Client, issued: Issued, test_pki, test_pki_signer, identities,
) -> None:
    request = service.get(issued.href).json()
    assert (request["status"], request["kind"], request["document"]) == ("issued", "sworn_statement", None)
    assert service.get(f"/dossiers/{DOSSIER}").json()["phase"] == "awaiting_application"
    token = applicant_token(service, DOSSIER)
    with api_client(eid_stack.url, token) as applicant_client:
        [listed] = applicant_client.get(f"/dossiers/{DOSSIER}/signing-requests").json()["signing_requests"]
        assert listed == request
        download = applicant_client.get(request["href"])
        assert download.status_code == 200 and download.headers["content-type"] == "application/pdf"
        pdf = download.content
        assert hashlib.sha256(pdf).hexdigest() == request["sha256"]

        def upload(body: bytes, content_type: str = "application/pdf") -> httpx.Response:
            return applicant_client.post(request["signed_href"], content=body, headers={"Content-Type": content_type})

        unsigned = upload(pdf)
        assert unsigned.status_code == 422 and unsigned.json()["error"] == "signature_refused"
        assert unsigned.json()["reason"] == "the returned file is the issued document, unsigned"
        foreign = upload(sign_raw(pdf, identities.signer_for(Role.APPLICANT), field_name=request["field_name"]))
        assert foreign.status_code == 422 and "trusted root" in foreign.json()["reason"]
        assert foreign.json()["report"]["ok"] is False
        assert upload(pdf, "text/plain").status_code == 415
        assert upload(b"%PDF-" + b"0" * MAX_UPLOAD).status_code == 413
        assert service.get(f"/dossiers/{DOSSIER}").json()["documents"] == []

        signed = eid_sign(pdf, test_pki, test_pki_signer.timestamper, request["field_name"])
        accepted = upload(signed)
        assert accepted.status_code == 201, accepted.text
        body = accepted.json()
        assert body["phase"] == "submitted" and "Aanvrager (test)" in body["signer"]
        assert body["document"]["name"] == "01-sworn_statement-v1" and body["report"]["ok"] is True
        assert body["document"]["sha256"] == hashlib.sha256(signed).hexdigest()
        again = upload(signed)
        assert again.status_code == 200 and again.json()["document"] == body["document"]
        other = upload(eid_sign(pdf, test_pki, test_pki_signer.timestamper, request["field_name"]))
        assert other.status_code == 409 and other.json()["error"] == "already_accepted"
        assert applicant_client.get(body["document"]["href"]).content == signed

    view = service.get(f"/dossiers/{DOSSIER}").json()
    assert view["phase"] == "submitted" and [d["name"] for d in view["documents"]] == ["01-sworn_statement-v1"]
    assert service.get(issued.href).json()["status"] == "accepted"
    job = service.get(f"/jobs/{issued.job_id}").json()
    assert job["status"] == "completed" and job["document"]["name"] == "01-sworn_statement-v1"


def test_another_dossiers_request_looks_exactly_like_one_that_does_not_exist(
    eid_stack: EidStack, service: httpx.Client, issued: Issued
) -> None:
    other = "API-EID-OTHER"
    assert record_fact(service, dossier_steps(applicant(other))[0]).status_code == 201
    token = applicant_token(service, other)
    missing_href = issued.href.replace(DOSSIER, "API-EID-NOBODY")
    with api_client(eid_stack.url, token) as stranger:
        for suffix in ("", "/document"):
            not_yours = stranger.get(issued.href + suffix)
            missing = stranger.get(missing_href + suffix)
            assert not_yours.status_code == missing.status_code == 404
            assert not_yours.json() == {"error": "not_found", "message": f"dossier {DOSSIER} not found"}
            assert sorted(not_yours.headers) == sorted(missing.headers)
        posted = stranger.post(issued.href + "/signed", content=b"%PDF-1.7", headers={"Content-Type": "application/pdf"})
        assert posted.status_code == 404 and posted.json()["message"] == f"dossier {DOSSIER} not found"
        assert stranger.get(f"/dossiers/{other}/signing-requests").json() == {"dossier_id": other,
                                                                             "signing_requests": []}
    unknown = issued.href.rsplit("/", 1)[0] + f"/{uuid.uuid4()}"
    assert service.get(unknown).status_code == 404
    assert service.post(issued.href + "/signed", content=b"%PDF-", headers={"Content-Type": "application/pdf"}
                        ).status_code == 403
