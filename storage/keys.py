"""The one place that names objects in the bucket.

Layout::

    dossiers/<dossier_id>/documents/<step:02d>-<kind>/v<version:04d>.pdf
    dossiers/<dossier_id>/events/<sequence:08d>.json
    dossiers/<dossier_id>/signing-requests/<request_id>.pdf   (issued to be signed elsewhere)
    dossiers/<dossier_id>/signing-requests/<request_id>.json  (the request's record)
    dossiers/<dossier_id>/registration/<service>.json          (the dossier's registration number)
    registration-numbers/<letter>/<number:06d>.json            (who holds each number)

Every component is checked so that a key built from user input stays inside its dossier.
"""

from __future__ import annotations

import re

from kmop.errors import InvalidKeyPart

_DOSSIER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def check_dossier_id(dossier_id: str) -> str:
    if not isinstance(dossier_id, str) or not _DOSSIER_ID.fullmatch(dossier_id):
        raise InvalidKeyPart(
            "dossier_id",
            str(dossier_id),
            "must be 1-64 ASCII letters, digits, '-' or '_', starting with a letter or digit",
        )
    return dossier_id


def check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise InvalidKeyPart("kind", str(kind), "must be lower-case ASCII letters, digits or '_'")
    return kind


def dossier_prefix(dossier_id: str) -> str:
    return f"dossiers/{check_dossier_id(dossier_id)}/"


def document_prefix(dossier_id: str, step: int, kind: str) -> str:
    if not isinstance(step, int) or not 1 <= step <= 99:
        raise InvalidKeyPart("step", str(step), "must be a whole number from 1 to 99")
    return f"{dossier_prefix(dossier_id)}documents/{step:02d}-{check_kind(kind)}/"


def document_key(dossier_id: str, step: int, kind: str, version: int) -> str:
    if not isinstance(version, int) or not 1 <= version <= 9999:
        raise InvalidKeyPart("version", str(version), "must be a whole number from 1 to 9999")
    return f"{document_prefix(dossier_id, step, kind)}v{version:04d}.pdf"


def version_of(key: str) -> int:
    """The version number of a key made by ``document_key``."""
    name = key.rsplit("/", 1)[-1]
    digits = name[1:-4]
    if not (name.startswith("v") and name.endswith(".pdf") and digits.isascii() and digits.isdigit()):
        raise InvalidKeyPart("key", key, "is not a document key")
    return int(name[1:-4])


def renewed_key(original_key: str, renewal: int) -> str:
    """Where renewal ``renewal`` (1, 2, ...) of the document under ``original_key`` is stored:
    ``dossiers/<dossier_id>/renewals/<step:02d>-<kind>/v<version:04d>/r<renewal:04d>.pdf``
    (the document with fresh validation data and a new document timestamp, ``signing.renewal``)."""
    parts = original_key.split("/") if isinstance(original_key, str) else []
    try:
        dossier_id, step_kind, name = parts[1], parts[3], parts[4]
        step, kind = int(step_kind[:2]), step_kind[3:]
        is_document = len(parts) == 5 and document_key(dossier_id, step, kind, version_of(original_key)) == original_key
    except (IndexError, ValueError, InvalidKeyPart):
        is_document = False
    if not is_document:
        raise InvalidKeyPart("original_key", str(original_key), "is not a document key")
    if not isinstance(renewal, int) or not 1 <= renewal <= 9999:
        raise InvalidKeyPart("renewal", str(renewal), "must be a whole number from 1 to 9999")
    return f"{dossier_prefix(dossier_id)}renewals/{step_kind}/{name[:-4]}/r{renewal:04d}.pdf"


def events_prefix(dossier_id: str) -> str:
    return f"{dossier_prefix(dossier_id)}events/"


def event_key(dossier_id: str, sequence: int) -> str:
    if not isinstance(sequence, int) or not 1 <= sequence <= 99_999_999:
        raise InvalidKeyPart("sequence", str(sequence), "must be a whole number from 1 to 99999999")
    return f"{events_prefix(dossier_id)}{sequence:08d}.json"


def signing_requests_prefix(dossier_id: str) -> str:
    return f"{dossier_prefix(dossier_id)}signing-requests/"


def signing_request_key(dossier_id: str, request_id: str, part: str) -> str:
    """The issued PDF (``part`` "pdf") or the record ("json") of a signing request."""
    if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
        raise InvalidKeyPart("request_id", str(request_id), "must be a lower-case UUID")
    if part not in ("pdf", "json"):
        raise InvalidKeyPart("part", str(part), "must be pdf or json")
    return f"{signing_requests_prefix(dossier_id)}{request_id}.{part}"


def job_record_key(dossier_id: str, idempotency_key: str) -> str:
    """Where the outbox keeps a submitted job until the ledger shows it done."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", idempotency_key or ""):
        raise InvalidKeyPart("idempotency_key", str(idempotency_key), "must be 1-128 ASCII letters, digits or . _ : -")
    return f"jobs/{check_dossier_id(dossier_id)}/{idempotency_key}.json"


JOBS_PREFIX = "jobs/"

_REGISTRATION_LETTERS = {"opleiding": "O", "advies": "A"}


def registration_letter(service: str) -> str:
    """The letter a service's registration numbers carry: ``O`` (opleiding) or ``A`` (advies)."""
    try:
        return _REGISTRATION_LETTERS[service]
    except (KeyError, TypeError):
        raise InvalidKeyPart("service", str(service), "must be opleiding or advies") from None


def registration_number_key(service: str, number: int) -> str:
    """The record of who holds registration number ``number`` of ``service``."""
    if not isinstance(number, int) or not 1 <= number <= 999_999:
        raise InvalidKeyPart("number", str(number), "must be a whole number from 1 to 999999")
    return f"registration-numbers/{registration_letter(service)}/{number:06d}.json"


def dossier_registration_key(dossier_id: str, service: str) -> str:
    """The registration number a dossier holds for ``service``."""
    registration_letter(service)
    return f"{dossier_prefix(dossier_id)}registration/{service}.json"
