"""The API's parts that need no server: settings, tokens, signatures, idempotency records, the
documented job and message formats, and the callback stamping on enqueue."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from api.callbacks import JOB_FAILED, JOB_SUCCEEDED, WebhookCallbacks, with_webhook
from api.errors import ApiError
from api.idempotency import IdempotencyRecords, fingerprint
from api.settings import load_api_settings
from api.tokens import TokenExpired, TokenInvalid, issue_token, read_token
from api.webhook_signature import WebhookVerificationError, sign, signature_headers, verify
from kmop.demo import example_applicant
from kmop.errors import InvalidJob
from kmop.jobs import DocumentJob, parse_job
from kmop.scenario import SCENARIOS, dossier_steps
from kmop.settings import SettingsError
from signing.roles import Role
from storage.local import LocalFolderStore
from templates.catalog import TEMPLATES_DIR, get_kind, kind_names

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "api" / "schemas"
SECRET = "x" * 40


# --- settings ------------------------------------------------------------------------------------

def _env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    root = tmp_path / "root.pem"
    root.write_text("not read here")
    env = {"KMOP_API_SERVICE_TOKEN": "s" * 32, "KMOP_API_AGENCY_TOKEN": "a" * 32,
           "KMOP_API_APPLICANT_KEY": "k" * 32, "KMOP_API_TRUST_ROOTS": str(root)}
    env.update(overrides)
    return {k: v for k, v in env.items() if v}


def test_api_settings_refuse_missing_weak_or_shared_secrets_naming_the_variable(tmp_path: Path) -> None:
    assert load_api_settings(_env(tmp_path)).max_upload_bytes == 20 * 1024 * 1024
    for overrides, variable in (({"KMOP_API_SERVICE_TOKEN": ""}, "KMOP_API_SERVICE_TOKEN"),
                                ({"KMOP_API_AGENCY_TOKEN": "short"}, "KMOP_API_AGENCY_TOKEN"),
                                ({"KMOP_API_AGENCY_TOKEN": "s" * 32}, "KMOP_API_AGENCY_TOKEN"),
                                ({"KMOP_API_APPLICANT_KEY": ""}, "KMOP_API_APPLICANT_KEY"),
                                ({"KMOP_WEBHOOK_SECRET": "short"}, "KMOP_WEBHOOK_SECRET"),
                                ({"KMOP_API_MAX_UPLOAD_BYTES": "many"}, "KMOP_API_MAX_UPLOAD_BYTES"),
                                ({"KMOP_API_TRUST_ROOTS": str(tmp_path / "missing.pem")}, "KMOP_API_TRUST_ROOTS"),
                                ({"KMOP_API_TRUST_ROOTS": ""}, "KMOP_API_TRUST_ROOTS")):
        with pytest.raises(SettingsError, match=variable):
            load_api_settings(_env(tmp_path, **overrides))


def test_trust_roots_default_to_those_of_the_identities_file(tmp_path: Path) -> None:
    (tmp_path / "identities.json").write_text(json.dumps({"trust_roots": ["root.pem"], "identities": {}}))
    settings = load_api_settings(_env(tmp_path, KMOP_API_TRUST_ROOTS="",
                                      KMOP_IDENTITIES=str(tmp_path / "identities.json")))
    assert settings.trust_roots == (tmp_path / "root.pem",)


def test_kmop_api_will_not_start_without_its_secrets(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "kmop.cli", "api", "--port", "1"], cwd=REPO, capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", "KMOP_STORAGE": "local",
                                            "KMOP_LOCAL_STORAGE_DIR": str(tmp_path)})
    assert result.returncode == 2 and "KMOP_API_SERVICE_TOKEN" in result.stderr


# --- applicant tokens ---------------------------------------------------------------------------

def test_an_applicant_token_opens_its_dossier_until_it_expires() -> None:
    key = b"k" * 32
    token = issue_token(key, "D-1", 1000, 1600)
    assert read_token(key, token, 1599).dossier_id == "D-1"
    with pytest.raises(TokenExpired):
        read_token(key, token, 1600)
    with pytest.raises(TokenInvalid):
        read_token(b"j" * 32, token, 1100)
    prefix, payload, mac = token.split(".")
    other = issue_token(key, "D-2", 1000, 1600).split(".")[1]
    for forged in (f"{prefix}.{other}.{mac}", f"{prefix}.{payload}", f"kmop2.{payload}.{mac}", f"{prefix}.{payload}.é"):
        with pytest.raises(TokenInvalid):
            read_token(key, forged, 1100)


# --- webhook signatures -------------------------------------------------------------------------

def test_webhook_signatures_follow_standard_webhooks_and_bound_replays() -> None:
    body = b'{"id":"evt"}'
    now = int(time.time())
    headers = signature_headers(SECRET, "evt", now, body)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert verify(SECRET, {k.title(): v for k, v in headers.items()}, body) == "evt"
    rotated = {**headers, "webhook-signature": f"v1,AAAA {headers['webhook-signature']}"}
    assert verify(SECRET, rotated, body) == "evt"
    for broken in ({**headers, "webhook-id": "other"}, {k: v for k, v in headers.items() if k != "webhook-timestamp"},
                   {**headers, "webhook-timestamp": "soon"}):
        with pytest.raises(WebhookVerificationError):
            verify(SECRET, broken, body)
    with pytest.raises(WebhookVerificationError, match="more than 60 s"):
        verify(SECRET, headers, body, tolerance=60, now=now + 61)
    # A whsec_ secret signs with its decoded bytes, as Standard Webhooks libraries do.
    assert sign("whsec_" + "a2V5" * 8, "evt", now, body) == sign("key" * 8, "evt", now, body)


# --- idempotency records ------------------------------------------------------------------------

def test_idempotency_records_replay_the_first_answer_and_refuse_another_body(tmp_path: Path) -> None:
    records = IdempotencyRecords(LocalFolderStore(tmp_path))
    first, other = fingerprint({"a": 1, "b": [1, 2]}), fingerprint({"a": 2})
    assert fingerprint({"b": [1, 2], "a": 1}) == first
    assert records.replay("scope", "k", first) is None
    records.claim("scope", "k", first)
    records.claim("scope", "k", first)  # a twin of the same request goes ahead
    with pytest.raises(ApiError) as refused:
        records.claim("scope", "k", other)
    assert refused.value.status == 422 and refused.value.body.field == "Idempotency-Key"
    assert records.complete("scope", "k", first, 202, {"job_id": "j1"}).body == {"job_id": "j1"}
    assert records.complete("scope", "k", first, 202, {"job_id": "j2"}).body == {"job_id": "j1"}
    assert records.replay("scope", "k", first).body == {"job_id": "j1"}
    with pytest.raises(ApiError):
        records.replay("scope", "k", other)
    assert records.replay("another scope", "k", other) is None


# --- the documented job and message formats -----------------------------------------------------

def _validator(name: str) -> Draft202012Validator:
    resources = [json.loads((TEMPLATES_DIR / "common.schema.json").read_text())]
    resources += [get_kind(kind).schema for kind in kind_names()]
    resources += [json.loads((SCHEMAS / f).read_text()) for f in ("job.schema.json", "message.schema.json")]
    registry = Registry().with_resources((r["$id"], Resource.from_contents(r)) for r in resources)
    return Draft202012Validator(json.loads((SCHEMAS / name).read_text()), registry=registry)


def test_job_schema_accepts_every_job_of_every_scenario_and_covers_every_kind() -> None:
    schema = json.loads((SCHEMAS / "job.schema.json").read_text())
    assert schema["properties"]["kind"]["enum"] == kind_names()
    assert [b["then"]["properties"]["data"]["$ref"] for b in schema["allOf"]] == [
        get_kind(k).schema["$id"] for k in kind_names()]
    assert schema["properties"]["role"]["enum"] == [r.value for r in Role]
    validator = _validator("job.schema.json")
    for scenario in SCENARIOS:
        for step in dossier_steps(example_applicant(), scenario):
            if isinstance(step, DocumentJob):
                assert list(validator.iter_errors(step.to_message())) == [], step.kind


def test_job_schema_refuses_what_parse_job_refuses() -> None:
    validator = _validator("job.schema.json")
    job = dossier_steps(example_applicant())[1].to_message()
    broken = [
        {**job, "colour": "red"},
        {**job, "kind": "invoice"},
        {**job, "dossier_id": "../escape"},
        {**job, "dossier_id": "x" * 65},
        {**job, "idempotency_key": "with space"},
        {**job, "role": "notary"},
        {**job, "data": {**job["data"], "signatory": {}}},
        {k: v for k, v in job.items() if k != "idempotency_key"},
    ]
    for payload in broken:
        assert list(validator.iter_errors(payload)), payload
        with pytest.raises(InvalidJob):
            parse_job(payload)
    for dossier_id in ("a", "A-1_b", "x" * 64):
        assert not list(validator.iter_errors({**job, "dossier_id": dossier_id}))
        parse_job({**job, "dossier_id": dossier_id})


def test_message_schema_describes_what_dramatiq_puts_on_redis() -> None:
    from dramatiq import Message

    job = dossier_steps(example_applicant())[1].to_message()
    message = Message(queue_name="documents", actor_name="generate_document", args=(job,), kwargs={},
                      options={"redis_message_id": str(uuid.uuid4())})
    encoded = json.loads(message.encode())
    assert list(_validator("message.schema.json").iter_errors(encoded)) == []
    assert list(_validator("message.schema.json").iter_errors({**encoded, "actor_name": "other"}))


# --- callbacks on enqueue -----------------------------------------------------------------------

def test_with_webhook_puts_the_callbacks_on_the_jobs_enqueued_inside_it_only() -> None:
    broker = StubBroker(middleware=[])
    broker.add_middleware(WebhookCallbacks())
    generate = dramatiq.Actor(lambda job: None, broker=broker, actor_name="generate_document",
                              queue_name="documents", priority=0, options={})
    other = dramatiq.Actor(lambda: None, broker=broker, actor_name="other", queue_name="documents",
                           priority=0, options={})
    with with_webhook("https://producer.example/hooks"):
        stamped = generate.send({"job": 1})
        untouched = other.send()
    plain = generate.send({"job": 2})
    assert stamped.options["on_success"] == JOB_SUCCEEDED and stamped.options["on_failure"] == JOB_FAILED
    assert stamped.options["webhook_url"] == "https://producer.example/hooks"
    assert "on_success" not in untouched.options and "on_success" not in plain.options
    queued = [json.loads(m) for m in broker.queues["documents"].queue]
    assert [("webhook_url" in m["options"]) for m in queued] == [True, False, False]


# --- the application in-process: storage trouble and the local-folder store --------------------

def _app(tmp_path: Path, store):  # type: ignore[no-untyped-def]
    from api.app import Services, create_app
    from kmop.settings import load_settings
    from workflow.ledger import Ledger
    from workflow.tracker import Tracker

    settings = load_api_settings(_env(tmp_path))
    core = load_settings({"KMOP_BROKER": "stub", "KMOP_STORAGE": "local", "KMOP_LOCAL_STORAGE_DIR": str(tmp_path)})
    return create_app(Services(settings, core, store, Tracker(Ledger(store)), [], IdempotencyRecords(store)))


def _get(app, path: str):  # type: ignore[no-untyped-def]
    import asyncio

    import httpx

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get(path, headers={"Authorization": "Bearer " + "s" * 32})

    return asyncio.run(call())


def test_unreachable_storage_answers_503_with_retry_after_not_500(tmp_path: Path) -> None:
    from storage.s3 import S3Store
    from testing.processes import free_port

    dead = S3Store.from_settings(endpoint_url=f"http://127.0.0.1:{free_port()}", bucket="b",
                                 region="us-east-1", access_key="x", secret_key="y", max_attempts=1)
    answer = _get(_app(tmp_path, dead), "/dossiers/D-1")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.json() == {"error": "unavailable", "message": "storage cannot be reached now; try again later"}


def test_local_storage_streams_documents_checks_their_hash_and_has_no_presigned_links(tmp_path: Path) -> None:
    from storage.keys import document_key
    from workflow.ledger import Ledger
    from workflow.tracker import DOCUMENT_STORED

    store = LocalFolderStore(tmp_path / "store")
    ledger = Ledger(store)
    for version, content in ((1, b"%PDF-1.7 genuine"), (2, b"%PDF-1.7 other")):
        key = document_key("D-1", 1, "sworn_statement", version)
        stored = store.put_once(key, content, "application/pdf")
        recorded_sha = stored.sha256 if version == 1 else "0" * 64  # version 2: bytes that do not match
        ledger.append("D-1", DOCUMENT_STORED, f"job-{version}", "applicant",
                      {"kind": "sworn_statement", "step": 1, "key": key, "sha256": recorded_sha, "size": len(content)})
    app = _app(tmp_path, store)
    listed = _get(app, "/dossiers/D-1/documents").json()["documents"]
    assert [d["name"] for d in listed] == ["01-sworn_statement-v1", "01-sworn_statement-v2"]
    genuine = _get(app, "/dossiers/D-1/documents/01-sworn_statement-v1")
    assert genuine.status_code == 200 and genuine.content == b"%PDF-1.7 genuine"
    altered = _get(app, "/dossiers/D-1/documents/01-sworn_statement-v2")
    assert altered.status_code == 502 and altered.json()["error"] == "integrity_error"
    link = _get(app, "/dossiers/D-1/documents/01-sworn_statement-v1/link")
    assert link.status_code == 409 and link.json()["error"] == "not_available"
    assert _get(app, "/dossiers/D-1/documents/01-sworn_statement-v9").status_code == 404
