"""The shapes the API reads and answers, as Pydantic models (they make the OpenAPI description).

A document job itself is not modelled here: ``POST /jobs`` reads it with ``kmop.jobs.parse_job``,
the same function the workers use, and its OpenAPI body schema is ``job_schema`` below, derived
from ``api/schemas/job.schema.json``.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


DOSSIER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
JOB_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"


def _iso_date(value: str) -> str:
    dt.date.fromisoformat(value)  # ValueError -> 422 naming the field
    return value


IsoDate = Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", json_schema_extra={"format": "date"}),
                    AfterValidator(_iso_date)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- jobs ---------------------------------------------------------------------------------------

class JobAccepted(BaseModel):
    job_id: str = Field(description="the dramatiq message id; GET /jobs/{job_id} follows it")
    status: Literal["queued"]
    dossier_id: str
    kind: str
    idempotency_key: str = Field(description="the job's own idempotency key (from the body)")
    webhook_url: str | None = None
    submitted_at: str


class JobError(BaseModel):
    type: str
    reason: str


class DocumentInfo(BaseModel):
    name: str = Field(description="<step>-<kind>-v<version>, e.g. 01-sworn_statement-v1")
    kind: str
    step: int
    version: int
    sha256: str
    size: int
    recorded_at: str
    event_sequence: int
    idempotency_key: str
    href: str = Field(description="where to download it (PDF)")


class JobStatus(BaseModel):
    job_id: str
    status: Literal["queued", "awaiting_signature", "completed", "failed"] = Field(
        description="awaiting_signature: a job with signature external whose document is issued and "
                    "waits for the signer's signed PDF (signing_request)")
    dossier_id: str
    kind: str
    idempotency_key: str
    submitted_at: str
    document: DocumentInfo | None = None
    error: JobError | None = None
    signing_request: str | None = Field(default=None, description="the signing request to follow (awaiting_signature)")


# --- dossiers -----------------------------------------------------------------------------------

class ExpectedStep(BaseModel):
    action: str = Field(description="a document kind or a fact")
    role: str = Field(description="who makes it")
    description: str


class EventView(BaseModel):
    sequence: int
    type: str
    idempotency_key: str
    actor: str
    at: str
    payload: dict[str, Any]
    previous_hash: str
    hash: str


class DossierView(BaseModel):
    dossier_id: str
    phase: str
    cycle: str
    state: dict[str, Any]
    expected_next: list[ExpectedStep]
    events: list[EventView]
    documents: list[DocumentInfo]


class DocumentList(BaseModel):
    dossier_id: str
    documents: list[DocumentInfo]


class DownloadLink(BaseModel):
    url: str = Field(description="a presigned URL of the storage; it works without credentials until it expires")
    expires_in: int
    sha256: str


class KnowledgeTestData(_Strict):
    passed_on: IsoDate


class AuditVisitData(_Strict):
    date: IsoDate


class KnowledgeTestFact(_Strict):
    fact: Literal["knowledge_test_passed"]
    data: KnowledgeTestData
    idempotency_key: str = Field(pattern=JOB_KEY_PATTERN)
    role: Literal["applicant"] = "applicant"


class AuditVisitFact(_Strict):
    fact: Literal["audit_visit_held"]
    data: AuditVisitData
    idempotency_key: str = Field(pattern=JOB_KEY_PATTERN)
    role: Literal["auditor"] = "auditor"


FactIn = Annotated[KnowledgeTestFact | AuditVisitFact, Field(discriminator="fact")]


class FactRecorded(BaseModel):
    dossier_id: str
    fact: str
    event_sequence: int
    created: bool = Field(description="false when the idempotency key was already recorded")
    phase: str
    expected_next: list[ExpectedStep]


DEFAULT_TOKEN_SECONDS = 86_400


class TokenRequest(_Strict):
    ttl_seconds: int = Field(default=DEFAULT_TOKEN_SECONDS, ge=60, le=365 * 86_400,
                             description="lifetime in seconds; at most KMOP_API_MAX_TOKEN_SECONDS (30 days by "
                                         "default: the maximum below is this server's); by default a day, or "
                                         "that maximum when it is shorter")


class TokenIssued(BaseModel):
    token: str
    dossier_id: str
    expires_at: str
    expires_in: int


# --- verification -------------------------------------------------------------------------------

class SignatureReport(BaseModel):
    """One signature's verdict; the fields below are always present, and the verifier may add
    more (ETSI indication, level, chain, revocation, changes after signing): they are passed on."""

    model_config = ConfigDict(extra="allow")

    field_name: str
    signer: str | None
    signing_time: str | None
    timestamp_time: str | None
    intact: bool
    valid: bool
    trusted: bool
    timestamp_ok: bool | None
    coverage: str | None
    modifications: str | None
    problems: list[str]
    ok: bool


class VerificationReport(BaseModel):
    """The same report as ``kmop verify --json`` gives for one file."""

    model_config = ConfigDict(extra="allow")

    name: str
    signatures: list[SignatureReport]
    problems: list[str]
    ok: bool


# --- signatures made elsewhere -----------------------------------------------------------------

class SigningRequestView(BaseModel):
    request_id: str
    dossier_id: str
    kind: str
    step: int
    status: Literal["issued", "accepted"]
    field_name: str = Field(description="the empty signature field to sign into")
    sha256: str = Field(description="of the PDF as issued")
    size: int
    created_at: str
    href: str = Field(description="where to download the PDF as issued (GET)")
    signed_href: str = Field(description="where to upload it signed (POST, application/pdf)")
    document: DocumentInfo | None = Field(default=None, description="the accepted document (accepted)")


class SigningRequestList(BaseModel):
    dossier_id: str
    signing_requests: list[SigningRequestView]


class SignatureAcceptedView(BaseModel):
    dossier_id: str
    request_id: str
    status: Literal["accepted"]
    signer: str | None
    phase: str = Field(description="the dossier's phase after the document")
    document: DocumentInfo
    report: VerificationReport | None = Field(
        default=None, description="the verification report (absent when the same file was accepted before)")


# --- webhooks -----------------------------------------------------------------------------------

class DeliveryAttempt(BaseModel):
    attempt: int
    at: str
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookDelivery(BaseModel):
    event_id: str
    event_type: Literal["job.completed", "job.failed"]
    dossier_id: str | None
    job_id: str | None
    url: str
    delivered: bool
    attempts: list[DeliveryAttempt]


class WebhookDeliveries(BaseModel):
    deliveries: list[WebhookDelivery]


@cache
def job_schema() -> dict[str, Any]:
    """The job body for OpenAPI: ``api/schemas/job.schema.json`` with each kind's data schema
    (``templates/<kind>/schema.json``, which it references by URI) written in place, so the
    description says what ``parse_job`` checks of the data; what a schema cannot say (the
    tariff, the norm's indicators, the dossier's state) is refused with 422 or 409."""
    from templates.catalog import TEMPLATES_DIR, get_kind
    from templates.validation import inline_refs

    schema = json.loads((SCHEMAS_DIR / "job.schema.json").read_text(encoding="utf-8"))
    common = json.loads((TEMPLATES_DIR / "common.schema.json").read_text(encoding="utf-8"))
    kinds = {}
    for name in schema["properties"]["kind"]["enum"]:
        data = inline_refs(get_kind(name).schema, {common["$id"]: common})
        kinds[data.get("$id", name)] = {k: v for k, v in data.items() if k not in ("$id", "$schema", "$defs")}

    def place(node: Any) -> Any:
        if isinstance(node, list):
            return [place(item) for item in node]
        if not isinstance(node, dict):
            return node
        if isinstance(node.get("$ref"), str) and node["$ref"] in kinds:
            return kinds[node["$ref"]]
        return {key: place(value) for key, value in node.items()}

    return {k: place(v) for k, v in schema.items() if k not in ("$schema", "$id", "$comment")}
