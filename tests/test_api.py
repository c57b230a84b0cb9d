"""The HTTP API end to end: uvicorn on loopback (``kmop api``), real Redis, moto's S3 server and a
real dramatiq worker, all as separate processes; every call made with httpx over a socket.

One module-scoped set-up serves every test: a private Redis namespace, a fresh bucket, the API
and a worker. A whole registration dossier is driven through HTTP once (``registered``) and the
applicant, agency, webhook and CLI tests read what it produced.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.drivers import CoverageGenerator
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.overrides import Override
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.tokens import issue_token
from api.webhook_signature import WebhookVerificationError, verify
from kmop.demo import example_applicant
from kmop.jobs import DocumentJob
from kmop.scenario import Fact, dossier_steps
from signing.devpki import PASSPHRASE_ENV
from storage.s3 import S3Store
from testing.processes import free_port
from tests.support.api import stop, wait_for

pytestmark = pytest.mark.slow  # starts the API and a worker

REPO = Path(__file__).resolve().parent.parent
SERVICE_TOKEN = "service-" + "s" * 40
AGENCY_TOKEN = "agency-" + "a" * 40
APPLICANT_KEY = "applicant-key-" + "k" * 40
WEBHOOK_SECRET = "webhook-secret-" + "w" * 40
MAX_UPLOAD = 1024 * 1024
JOB_TIMEOUT = 120.0


# --- processes ----------------------------------------------------------------------------------

@dataclass
class Stack:
    url: str
    env: dict[str, str]
    store: S3Store
    namespace: str
    worker: subprocess.Popen
    server: subprocess.Popen
    pki_dir: Path


@pytest.fixture(scope="module")
def stack(s3_endpoint: str, redis_url: str, pki_dir: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    namespace = f"kmop-api-test-{uuid.uuid4().hex[:8]}"
    store = S3Store.from_settings(endpoint_url=s3_endpoint, bucket=f"kmop-api-{uuid.uuid4().hex}",
                                  region="us-east-1", access_key="testing", secret_key="testing")
    store.ensure_bucket()
    env = {key: value for key, value in os.environ.items() if not key.startswith("KMOP_")}
    env.update({
        "KMOP_BROKER": "redis", "KMOP_REDIS_URL": redis_url, "KMOP_REDIS_NAMESPACE": namespace,
        "KMOP_STORAGE": "s3", "KMOP_S3_ENDPOINT": s3_endpoint, "KMOP_S3_BUCKET": store.bucket,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "KMOP_IDENTITIES": str(pki_dir / "identities.json"), PASSPHRASE_ENV: "test-passphrase",
        "KMOP_CONVERTER_POOL_SIZE": "1", "KMOP_JOB_MAX_RETRIES": "2",
        "KMOP_API_SERVICE_TOKEN": SERVICE_TOKEN, "KMOP_API_AGENCY_TOKEN": AGENCY_TOKEN,
        "KMOP_API_APPLICANT_KEY": APPLICANT_KEY, "KMOP_API_TRUST_ROOTS": str(pki_dir / "root.pem"),
        "KMOP_API_MAX_UPLOAD_BYTES": str(MAX_UPLOAD), "KMOP_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "KMOP_WEBHOOK_MIN_BACKOFF_MS": "200", "KMOP_WEBHOOK_MAX_BACKOFF_MS": "2000",
        "KMOP_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",  # the receiver below; internal addresses need it
    })
    logs = tmp_path_factory.mktemp("api-logs")
    worker = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "workers.app", "--processes", "1", "--threads", "2"],
        cwd=REPO, env=env, stdout=(logs / "worker.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "kmop.cli", "api", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO, env=env, stdout=(logs / "api.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 30, "the API answering /health", server)
        yield Stack(url, env, store, namespace, worker, server, pki_dir)
    finally:
        stop(server)
        stop(worker)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{namespace}*"))
        if keys:
            client.delete(*keys)
        for key in store.list(""):
            store.client.delete_object(Bucket=store.bucket, Key=key)
        store.client.delete_bucket(Bucket=store.bucket)


def _client(stack: Stack, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=stack.url, headers=headers, timeout=60, trust_env=False)


@pytest.fixture(scope="module")
def service(stack: Stack) -> Iterator[httpx.Client]:
    with _client(stack, SERVICE_TOKEN) as client:
        yield client


@pytest.fixture(scope="module")
def agency(stack: Stack) -> Iterator[httpx.Client]:
    with _client(stack, AGENCY_TOKEN) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous(stack: Stack) -> Iterator[httpx.Client]:
    with _client(stack, None) as client:
        yield client


# --- a webhook receiver that checks signatures --------------------------------------------------

@dataclass
class WebhookReceiver:
    """Accepts signed deliveries on loopback; refuses the first ``fail_first`` with 503."""

    fail_first: int = 1
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: int = 0
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.deliveries += 1
                    try:
                        event_id = verify(WEBHOOK_SECRET, dict(self.headers), body)
                    except WebhookVerificationError:
                        receiver.bad_signatures += 1
                        status = 400
                    else:
                        if receiver.fail_first > 0:
                            receiver.fail_first -= 1
                            status = 503
                        else:
                            receiver.events[event_id] = json.loads(body)
                            status = 204
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/kmop"

    def completed_for(self, dossier_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events.values() if e["data"]["dossier_id"] == dossier_id]


@pytest.fixture(scope="module")
def refusing_receiver() -> Iterator[WebhookReceiver]:
    """The registered dossier's receiver: it refuses its first delivery, one of that dossier's."""
    hooks = WebhookReceiver(fail_first=1)
    yield hooks
    hooks.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A receiver of the test's own that accepts every delivery."""
    hooks = WebhookReceiver(fail_first=0)
    yield hooks
    hooks.server.shutdown()


# --- driving a dossier through HTTP -------------------------------------------------------------

def _applicant(dossier_id: str) -> dict[str, Any]:
    applicant = example_applicant()
    applicant["dossier_id"] = dossier_id
    return applicant


def _record_fact(service: httpx.Client, fact: Fact) -> httpx.Response:
    return service.post(f"/dossiers/{fact.dossier_id}/facts", json={
        "fact": fact.name, "data": fact.data, "idempotency_key": fact.idempotency_key, "role": fact.role.value})


def _submit(service: httpx.Client, job: DocumentJob | dict[str, Any], key: str | None = None,
            webhook_url: str | None = None) -> httpx.Response:
    body = job.to_message() if isinstance(job, DocumentJob) else job
    headers = {"Idempotency-Key": key or f"{body['dossier_id']}:{body['idempotency_key']}"}
    if webhook_url:
        headers["Webhook-URL"] = webhook_url
    return service.post("/jobs", json=body, headers=headers)


def _finished(service: httpx.Client, job_id: str, stack: Stack, timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = service.get(f"/jobs/{job_id}").json()
        return status if status["status"] != "queued" else None

    return wait_for(done, timeout, f"job {job_id} to finish", stack.worker, stack.server)


@dataclass(frozen=True)
class Registered:
    dossier_id: str
    job_ids: list[str]
    phases: list[str]


@pytest.fixture(scope="module")
def registered(stack: Stack, service: httpx.Client, refusing_receiver: WebhookReceiver) -> Registered:
    """A positive dossier from application to certificate, only through HTTP, one step at a time."""
    dossier_id = "API-REGISTERED-1"
    job_ids, phases = [], []
    for step in dossier_steps(_applicant(dossier_id)):
        if isinstance(step, Fact):
            answer = _record_fact(service, step)
            assert answer.status_code == 201, answer.text
            phases.append(answer.json()["phase"])
            continue
        answer = _submit(service, step, webhook_url=refusing_receiver.url)
        assert answer.status_code == 202, answer.text
        status = _finished(service, answer.json()["job_id"], stack)
        assert status["status"] == "completed", status
        assert status["document"]["kind"] == step.kind
        job_ids.append(status["job_id"])
        phases.append(service.get(f"/dossiers/{dossier_id}").json()["phase"])
    return Registered(dossier_id, job_ids, phases)


def _applicant_token(service: httpx.Client, dossier_id: str, ttl: int = 600) -> str:
    answer = service.post(f"/dossiers/{dossier_id}/applicant-tokens", json={"ttl_seconds": ttl})
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


# --- the whole dossier ---------------------------------------------------------------------------

def test_a_dossier_goes_from_application_to_certificate_through_http_alone(
    registered: Registered, service: httpx.Client
) -> None:
    assert registered.phases == ["awaiting_application", "submitted", "quoted", "quote_accepted", "prepared",
                                 "visited", "reported", "decided_positive", "registered"]
    view = service.get(f"/dossiers/{registered.dossier_id}").json()
    assert view["phase"] == "registered" and view["expected_next"] == []
    assert [e["sequence"] for e in view["events"]] == list(range(1, 10))
    assert [d["name"] for d in view["documents"]] == [
        "01-sworn_statement-v1", "02-quote-v1", "02-quote_acceptance-v1", "03-preparation_pack-v1",
        "04-audit_report-v1", "05-commission_decision-v1", "06-registration_certificate-v1"]
    assert view["state"]["registration_number"]


def test_each_completed_job_is_reported_by_a_signed_webhook_retried_after_a_refusal(
    registered: Registered, refusing_receiver: WebhookReceiver, service: httpx.Client, stack: Stack
) -> None:
    receiver = refusing_receiver
    events = wait_for(lambda: len(receiver.completed_for(registered.dossier_id)) == 7
                       and receiver.completed_for(registered.dossier_id), 30, "7 webhooks", stack.worker)
    assert receiver.bad_signatures == 0
    assert {e["type"] for e in events} == {"job.completed"}
    assert sorted(e["data"]["job_id"] for e in events) == sorted(registered.job_ids)
    documents = {d["name"]: d for d in service.get(f"/dossiers/{registered.dossier_id}/documents").json()["documents"]}
    for event in events:
        assert event["data"]["document"]["sha256"] == documents[event["data"]["document"]["name"]]["sha256"]

    listed = service.get("/webhooks/deliveries", params={"dossier_id": registered.dossier_id}).json()["deliveries"]
    assert len(listed) == 7 and all(d["delivered"] for d in listed)
    retried = [d for d in listed if len(d["attempts"]) > 1]
    assert len(retried) == 1  # the receiver refused its very first delivery
    first, second = retried[0]["attempts"]
    assert (first["ok"], first["status_code"], second["ok"], second["status_code"]) == (False, 503, True, 204)


def test_the_same_event_signature_is_refused_once_tampered_or_stale() -> None:
    body = b'{"id":"e1"}'
    from api.webhook_signature import signature_headers

    headers = signature_headers(WEBHOOK_SECRET, "e1", int(time.time()), body)
    assert verify(WEBHOOK_SECRET, headers, body) == "e1"
    with pytest.raises(WebhookVerificationError):
        verify(WEBHOOK_SECRET, headers, body + b" ")
    stale = signature_headers(WEBHOOK_SECRET, "e1", int(time.time()) - 600, body)
    with pytest.raises(WebhookVerificationError, match="more than 300 s"):
        verify(WEBHOOK_SECRET, stale, body)


# --- applicants and the agency -------------------------------------------------------------------

def test_applicant_downloads_own_documents_streamed_and_by_presigned_link(
    registered: Registered, service: httpx.Client, stack: Stack
) -> None:
    token = _applicant_token(service, registered.dossier_id)
    with _client(stack, token) as applicant:
        listed = applicant.get(f"/dossiers/{registered.dossier_id}/documents").json()["documents"]
        assert len(listed) == 7
        certificate = listed[-1]
        pdf = applicant.get(certificate["href"])
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF") and hashlib.sha256(pdf.content).hexdigest() == certificate["sha256"]
        assert 'filename="06-registration_certificate-v1.pdf"' in pdf.headers["content-disposition"]
        link = applicant.get(f"{certificate['href']}/link").json()
    assert link["sha256"] == certificate["sha256"] and link["expires_in"] == 300
    fetched = httpx.get(link["url"], trust_env=False)  # no API credentials: the URL itself grants access
    assert fetched.status_code == 200 and fetched.content == pdf.content


def test_agency_gets_the_same_report_as_kmop_verify(
    registered: Registered, service: httpx.Client, agency: httpx.Client, stack: Stack, tmp_path: Path
) -> None:
    certificate = service.get(f"/dossiers/{registered.dossier_id}/documents/06-registration_certificate-v1").content
    uploaded = agency.post("/verifications", content=certificate, params={"name": "certificate.pdf"},
                           headers={"Content-Type": "application/pdf"})
    assert uploaded.status_code == 200, uploaded.text
    report = uploaded.json()
    assert report["ok"] is True and len(report["signatures"]) == 1 and report["signatures"][0]["trusted"]

    path = tmp_path / "certificate.pdf"
    path.write_bytes(certificate)
    cli = subprocess.run([sys.executable, "-m", "kmop.cli", "verify", "--json", "--trust",
                          str(stack.pki_dir / "root.pem"), str(path)], capture_output=True, text=True, cwd=REPO)
    [expected] = json.loads(cli.stdout)
    assert report == {**expected, "name": "certificate.pdf"}

    tampered = bytearray(certificate)
    middle = len(tampered) // 3
    tampered[middle:middle + 8] = b"XXXXXXXX"
    form = agency.post("/verifications", files={"file": ("tampered.pdf", bytes(tampered), "application/pdf")})
    assert form.status_code == 200 and form.json()["name"] == "tampered.pdf" and form.json()["ok"] is False


def test_hostile_pdfs_get_a_report_not_a_server_error(registered: Registered, service: httpx.Client,
                                                     agency: httpx.Client) -> None:
    body = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /X " + b"[" * 500 + b"]" * 500 + b" >>\nendobj\n"
    nested = body + (b"xref\n0 2\n0000000000 65535 f \n0000000009 00000 n \ntrailer\n<< /Size 2 /Root 1 0 R >>\n"
                     b"startxref\n%d\n%%%%EOF\n" % len(body))  # verify_pdf raises RecursionError on it
    signed = service.get(f"/dossiers/{registered.dossier_id}/documents/01-sworn_statement-v1").content
    at = signed.index(b"/Contents <") + len(b"/Contents <") + 100
    one_digit = signed[:at] + (b"0" if signed[at:at + 1] != b"0" else b"1") + signed[at + 1:]  # AttributeError
    for hostile in (nested, one_digit):
        answer = agency.post("/verifications", content=hostile, headers={"Content-Type": "application/pdf"})
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert report["ok"] is False and (report["problems"] or report["signatures"][0]["problems"])


def test_uploads_that_are_too_large_of_another_type_or_not_a_pdf_are_refused(agency: httpx.Client) -> None:
    too_large = agency.post("/verifications", content=b"%PDF-1.7\n" + b"0" * MAX_UPLOAD,
                            headers={"Content-Type": "application/pdf"})
    assert too_large.status_code == 413 and too_large.json()["error"] == "too_large"
    as_text = agency.post("/verifications", content=b"%PDF-1.7", headers={"Content-Type": "text/plain"})
    assert as_text.status_code == 415 and as_text.json()["error"] == "unsupported_media_type"
    not_pdf = agency.post("/verifications", files={"file": ("x.pdf", b"GIF89a....", "application/pdf")})
    assert not_pdf.status_code == 422 and not_pdf.json()["field"] == "file"
    no_file = agency.post("/verifications", files={"other": ("x.pdf", b"%PDF-1.7", "application/pdf")})
    assert no_file.status_code == 422 and no_file.json()["field"] == "file"


# --- authorisation -------------------------------------------------------------------------------

def _every_protected_call(dossier_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("POST", "/jobs", {"json": {}, "headers": {"Idempotency-Key": "k"}}),
        ("GET", f"/jobs/{uuid.uuid4()}", {}),
        ("GET", f"/dossiers/{dossier_id}", {}),
        ("POST", f"/dossiers/{dossier_id}/facts", {"json": {}}),
        ("POST", f"/dossiers/{dossier_id}/applicant-tokens", {"json": {}}),
        ("GET", f"/dossiers/{dossier_id}/documents", {}),
        ("GET", f"/dossiers/{dossier_id}/documents/01-sworn_statement-v1", {}),
        ("GET", f"/dossiers/{dossier_id}/documents/01-sworn_statement-v1/link", {}),
        ("POST", "/verifications", {"content": b"%PDF-", "headers": {"Content-Type": "application/pdf"}}),
        ("GET", "/webhooks/deliveries", {}),
    ]


def test_every_route_refuses_a_missing_or_unknown_token_with_401(stack: Stack, registered: Registered) -> None:
    for token in (None, "not-a-token", "kmop1.e30.c2lnbmF0dXJl", SERVICE_TOKEN[:-1]):
        with _client(stack, token) as client:
            for method, path, options in _every_protected_call(registered.dossier_id):
                answer = client.request(method, path, **options)
                assert answer.status_code == 401, (token, method, path, answer.text)
                assert answer.headers["www-authenticate"].startswith("Bearer")
                assert answer.json()["error"] in ("missing_credentials", "invalid_credentials")


def test_each_role_is_refused_what_belongs_to_another_with_403(
    stack: Stack, registered: Registered, service: httpx.Client, agency: httpx.Client
) -> None:
    token = _applicant_token(service, registered.dossier_id)
    forbidden = {
        "agency": (agency, {"/jobs", "/jobs/{id}", "/dossiers/{id}", "/facts", "/applicant-tokens",
                            "/documents", "/documents/{name}", "/link", "/webhooks/deliveries"}),
        "service": (service, {"/verifications"}),
    }
    labels = ["/jobs", "/jobs/{id}", "/dossiers/{id}", "/facts", "/applicant-tokens", "/documents",
              "/documents/{name}", "/link", "/verifications", "/webhooks/deliveries"]
    calls = dict(zip(labels, _every_protected_call(registered.dossier_id)))
    with _client(stack, token) as applicant:
        forbidden["applicant"] = (applicant, {"/jobs", "/jobs/{id}", "/dossiers/{id}", "/facts",
                                              "/applicant-tokens", "/verifications", "/webhooks/deliveries"})
        for role, (client, refused) in forbidden.items():
            for label in refused:
                method, path, options = calls[label]
                answer = client.request(method, path, **options)
                assert answer.status_code == 403, (role, label, answer.text)
                assert answer.json()["error"] == "forbidden" and role in answer.json()["message"]


def test_a_dossier_that_is_not_yours_looks_exactly_like_one_that_does_not_exist(
    stack: Stack, registered: Registered, service: httpx.Client
) -> None:
    other = "API-OTHER-1"
    fact = dossier_steps(_applicant(other))[0]
    assert _record_fact(service, fact).status_code == 201
    token = _applicant_token(service, registered.dossier_id)
    with _client(stack, token) as applicant:
        for suffix in ("/documents", "/documents/01-sworn_statement-v1", "/documents/01-sworn_statement-v1/link"):
            not_yours = applicant.get(f"/dossiers/{other}{suffix}")
            missing = applicant.get(f"/dossiers/API-NOBODY-1{suffix}")
            assert not_yours.status_code == missing.status_code == 404
            assert not_yours.json() == {"error": "not_found", "message": f"dossier {other} not found"}
            assert missing.json() == {"error": "not_found", "message": "dossier API-NOBODY-1 not found"}
            assert sorted(not_yours.headers) == sorted(missing.headers)
        assert service.get(f"/dossiers/{other}/documents").status_code == 200  # it does exist


def test_expired_or_tampered_applicant_tokens_are_refused_with_401(
    stack: Stack, registered: Registered, service: httpx.Client
) -> None:
    now = int(time.time())
    expired = issue_token(APPLICANT_KEY.encode(), registered.dossier_id, now - 120, now - 60)
    forged = issue_token(b"another key of at least thirty-two bytes", registered.dossier_id, now, now + 600)
    genuine = _applicant_token(service, registered.dossier_id)
    payload = genuine.split(".")[1]
    widened = genuine.replace(payload, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB"))
    for token, error in ((expired, "token_expired"), (forged, "invalid_credentials"), (widened, "invalid_credentials")):
        with _client(stack, token) as client:
            answer = client.get(f"/dossiers/{registered.dossier_id}/documents")
            assert (answer.status_code, answer.json()["error"]) == (401, error)
    with _client(stack, genuine) as client:
        assert client.get(f"/dossiers/{registered.dossier_id}/documents").status_code == 200
    too_long = service.post(f"/dossiers/{registered.dossier_id}/applicant-tokens", json={"ttl_seconds": 31 * 86_400})
    assert too_long.status_code == 422 and too_long.json()["field"] == "ttl_seconds"
    unknown = service.post("/dossiers/API-NOBODY-2/applicant-tokens", json={})
    assert unknown.status_code == 404


# --- idempotency, order, validation --------------------------------------------------------------

def test_the_same_idempotency_key_and_body_replay_the_first_answer(
    registered: Registered, service: httpx.Client, stack: Stack
) -> None:
    job = dossier_steps(_applicant(registered.dossier_id))[1].to_message()  # already made: no new document
    key = f"replay-{uuid.uuid4().hex}"
    first = _submit(service, job, key)
    again = _submit(service, job, key)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["location"] == f"/jobs/{first.json()['job_id']}"

    concurrent_key = f"replay-{uuid.uuid4().hex}"
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: _submit(service, job, concurrent_key), range(6)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["job_id"] for a in answers}) == 1

    other_body = copy.deepcopy(job)
    other_body["data"]["signatory"]["place"] = "Brugge"
    refused = _submit(service, other_body, key)
    assert refused.status_code == 422
    assert refused.json()["error"] == "idempotency_key_reused" and refused.json()["field"] == "Idempotency-Key"
    assert _finished(service, first.json()["job_id"], stack)["status"] == "completed"
    documents = service.get(f"/dossiers/{registered.dossier_id}/documents").json()["documents"]
    assert len(documents) == 7  # replays and repeats made nothing new


def test_facts_replay_and_refuse_another_fact_under_the_same_key(service: httpx.Client) -> None:
    fact = dossier_steps(_applicant("API-FACTS-1"))[0]
    assert _record_fact(service, fact).status_code == 201
    again = _record_fact(service, fact)
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["event_sequence"] == 1
    other = Fact(fact.dossier_id, fact.name, fact.role, {"passed_on": "2026-10-29"}, fact.idempotency_key)
    refused = _record_fact(service, other)
    assert refused.status_code == 422 and refused.json()["field"] == "idempotency_key"


def test_a_step_out_of_order_is_refused_with_409_and_says_what_is_expected(service: httpx.Client) -> None:
    steps = dossier_steps(_applicant("API-ORDER-1"))
    quote = next(s for s in steps if isinstance(s, DocumentJob) and s.kind == "quote")
    early = _submit(service, quote)
    assert early.status_code == 409 and early.json()["error"] == "step_out_of_order"
    assert "expected next: knowledge_test_passed (by applicant), sworn_statement (by applicant)" in early.json()["message"]
    visit = next(s for s in steps if isinstance(s, Fact) and s.name == "audit_visit_held")
    assert _record_fact(service, visit).status_code == 409


def test_invalid_jobs_and_requests_name_the_field_at_fault(service: httpx.Client) -> None:
    job = dossier_steps(_applicant("API-INVALID-1"))[1].to_message()
    job["data"]["provider"]["enterprise_number"] = "0123.456.789"
    bad_data = _submit(service, job)
    assert bad_data.status_code == 422
    assert bad_data.json()["field"] == "data.provider.enterprise_number" and bad_data.json()["reason"]
    assert _submit(service, {**job, "colour": "red"}).json()["field"] == "colour"
    no_key = service.post("/jobs", json=job)
    assert no_key.status_code == 400 and no_key.json()["field"] == "Idempotency-Key"
    malformed = service.post("/jobs", content=b'{"dossier_id": ', headers={"Idempotency-Key": "k",
                                                                          "Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"] == "malformed_json"
    as_form = service.post("/jobs", data={"a": "b"}, headers={"Idempotency-Key": "k"})
    assert as_form.status_code == 415
    huge = service.post("/jobs", content=b" " * (1024 * 1024 + 1),
                        headers={"Idempotency-Key": "k", "Content-Type": "application/json"})
    assert huge.status_code == 413
    bad_date = service.post("/dossiers/API-INVALID-1/facts", json={
        "fact": "knowledge_test_passed", "data": {"passed_on": "2026-02-30"}, "idempotency_key": "kt"})
    assert bad_date.status_code == 422 and bad_date.json()["field"] == "data.passed_on"
    no_webhooks = _submit(service, dossier_steps(_applicant("API-INVALID-1"))[1], webhook_url="ftp://example/")
    assert no_webhooks.status_code == 422 and no_webhooks.json()["field"] == "Webhook-URL"


# --- failures, other producers, the CLI ----------------------------------------------------------

def test_a_job_that_fails_in_the_worker_is_reported_failed_and_by_webhook(
    stack: Stack, service: httpx.Client, receiver: WebhookReceiver
) -> None:
    steps = dossier_steps(_applicant("API-RACE-1"))
    assert _record_fact(service, steps[0]).status_code == 201
    sworn = steps[1].to_message()
    twin = {**sworn, "idempotency_key": sworn["idempotency_key"] + ":twin"}
    # Both pass the state check now; whichever runs second finds the step taken.
    answers = [_submit(service, job, webhook_url=receiver.url) for job in (sworn, twin)]
    assert [a.status_code for a in answers] == [202, 202]
    outcomes = sorted((_finished(service, a.json()["job_id"], stack) for a in answers), key=lambda s: s["status"])
    assert [s["status"] for s in outcomes] == ["completed", "failed"]
    assert outcomes[1]["error"]["type"] == "StepOutOfOrder", outcomes[1]["error"]
    failed_id = outcomes[1]["job_id"]
    reported = wait_for(lambda: [e for e in receiver.completed_for("API-RACE-1") if e["type"] == "job.failed"],
                         30, "the job.failed webhook", stack.worker)
    assert reported[0]["data"]["job_id"] == failed_id and reported[0]["data"]["error"]["type"] == "StepOutOfOrder"


def test_a_job_enqueued_by_redis_cli_without_python_is_processed(stack: Stack, service: httpx.Client,
                                                                   tmp_path: Path) -> None:
    steps = dossier_steps(_applicant("API-REDISCLI-1"))
    assert _record_fact(service, steps[0]).status_code == 201
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(steps[1].to_message(), indent=2, ensure_ascii=False), encoding="utf-8")
    enqueued = subprocess.run(["sh", str(REPO / "api" / "producers" / "redis-enqueue.sh"), str(job_file)],
                              env={"PATH": os.environ["PATH"], "KMOP_REDIS_URL": stack.env["KMOP_REDIS_URL"],
                                   "KMOP_REDIS_NAMESPACE": stack.namespace},
                              capture_output=True, text=True, check=True)
    message_id = enqueued.stdout.strip()
    assert uuid.UUID(message_id)

    def stored() -> list[dict[str, Any]]:
        return service.get("/dossiers/API-REDISCLI-1/documents").json()["documents"]

    [document] = wait_for(stored, JOB_TIMEOUT, "the redis-cli job's document", stack.worker)
    assert document["name"] == "01-sworn_statement-v1"
    assert service.get("/dossiers/API-REDISCLI-1").json()["phase"] == "submitted"


def _kmop(stack: Stack, *args: str, token: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "KMOP_API_URL": stack.url, "KMOP_API_TOKEN": token, "NO_PROXY": "127.0.0.1"}
    return subprocess.run([sys.executable, "-m", "kmop.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, check=check)


def test_kmop_submit_status_and_download_talk_to_the_api(
    stack: Stack, registered: Registered, service: httpx.Client, tmp_path: Path
) -> None:
    steps = dossier_steps(_applicant("API-CLI-1"))
    assert _record_fact(service, steps[0]).status_code == 201
    job_file = tmp_path / "sworn.json"
    job_file.write_text(json.dumps(steps[1].to_message()), encoding="utf-8")
    submitted = _kmop(stack, "submit", str(job_file), "--wait", "--timeout", str(JOB_TIMEOUT), token=SERVICE_TOKEN)
    assert "completed: 01-sworn_statement-v1" in submitted.stdout

    status = _kmop(stack, "status", "API-CLI-1", token=SERVICE_TOKEN)
    assert "dossier API-CLI-1: submitted (initial audit)" in status.stdout
    assert "expected next: quote (by audit_firm)" in status.stdout and "sworn_statement" in status.stdout
    as_json = json.loads(_kmop(stack, "status", "API-CLI-1", "--json", token=SERVICE_TOKEN).stdout)
    assert as_json["state"]["phase"] == "submitted" and len(as_json["documents"]) == 1

    token = _applicant_token(service, registered.dossier_id)
    downloaded = _kmop(stack, "download", registered.dossier_id, "--out", str(tmp_path / "pdfs"), token=token)
    files = sorted(p.name for p in (tmp_path / "pdfs").iterdir())
    assert len(files) == 7 and files[0] == "01-sworn_statement-v1.pdf" and "sha256=" in downloaded.stdout
    refused = _kmop(stack, "download", "API-CLI-1", "--out", str(tmp_path / "other"), token=token, check=False)
    assert refused.returncode == 2 and "404" in refused.stderr


# --- the OpenAPI description ---------------------------------------------------------------------

def test_openapi_declares_every_refusal_with_the_error_body(anonymous: httpx.Client) -> None:
    description = anonymous.get("/openapi.json").json()
    operations = [(path, method, op) for path, item in description["paths"].items() for method, op in item.items()]
    assert len(operations) == 15
    for path, method, operation in operations:
        if path == "/health":
            continue
        assert {"401", "403", "422"} <= set(operation["responses"]), (method, path)
        for status, response in operation["responses"].items():
            if status.startswith("4") or status.startswith("5"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    jobs = description["paths"]["/jobs"]["post"]
    assert jobs["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "dossier_id", "kind", "data", "idempotency_key"]
    assert {"409", "413", "415"} <= set(jobs["responses"])


# --- property-based: schemathesis over the OpenAPI description -----------------------------------

EXAMPLES_PER_OPERATION_AND_MODE = 15
COVERAGE_CASES_PER_OPERATION = 200
# Operations that may refuse data their description allows, for what a schema cannot say: a
# job's tariff, indicators and idempotency; a fact's calendar date and idempotency; an upload
# that is not a PDF or not signed. The others must accept whatever fits their description.
REFUSE_VALID_DATA_FOR_REASONS_BEYOND_THE_SCHEMA = {
    ("POST", "/jobs"), ("POST", "/dossiers/{dossier_id}/facts"), ("POST", "/verifications"),
    ("POST", "/dossiers/{dossier_id}/signing-requests/{request_id}/signed")}


def test_generated_requests_get_no_500_and_no_answer_the_description_does_not_allow(stack: Stack) -> None:
    """Every operation, with data that fits its description and data that does not (schemathesis'
    positive and negative modes), under the right role's token: no 5xx, answers as described,
    data that does not fit is refused (negative_data_rejection) and, where the description is
    the whole rule, data that fits is accepted (positive_data_acceptance: 2xx, 404 or 409);
    schemathesis' pytest plugin is not used (its lazy loader relies on pytest internals that
    pytest 9 no longer has)."""
    config = SchemathesisConfig.from_dict({"checks": {
        "positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409"]},
        "negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "405", "409", "413", "415",
                                                          "422"]}}})
    schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json", config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 15
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance, response_headers_conformance]
    for operation in operations:
        token = AGENCY_TOKEN if operation.path == "/verifications" else SERVICE_TOKEN
        negatable = any((operation.path_parameters, operation.query, operation.headers, operation.body))
        exact = (operation.method.upper(), operation.path) not in REFUSE_VALID_DATA_FOR_REASONS_BEYOND_THE_SCHEMA
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if negatable else (GenerationMode.POSITIVE,):
            extra = [negative_data_rejection] if mode is GenerationMode.NEGATIVE else \
                [positive_data_acceptance] if exact else []

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES_PER_OPERATION_AND_MODE, deadline=None, database=None,
                      derandomize=True, suppress_health_check=list(HealthCheck))
            def call(case) -> None:  # type: ignore[no-untyped-def]
                case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=checks + extra)

            call()
        # schemathesis' coverage phase: each bound of the description and one step past it
        # (ttl_seconds at its maximum and one above), evenly sampled where there are many.
        cases = list(CoverageGenerator(
            operation=operation, generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
            generation_config=schema.config.generation_for(operation=operation, phase="coverage"),
            auth_storage=None, override=Override(), feedback=FeedbackSources()))
        for case in cases[::max(1, len(cases) // COVERAGE_CASES_PER_OPERATION)]:
            positive = case.meta.generation.mode is GenerationMode.POSITIVE
            extra = [positive_data_acceptance] if positive and exact else [] if positive else [negative_data_rejection]
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=checks + extra)
