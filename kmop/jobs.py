"""A document job: which document of which dossier, with what data, under which idempotency key,
on behalf of which party (``role``; by default the party that signs the kind), and who signs it:
the service with the role's identity (``signature: "service"``, the default) or the signer by its
own means (``"external"``: the service issues the document to sign, see ``kmop.signing_requests``;
only for kinds whose policy allows it).

The same dict travels as the dramatiq message argument (``DocumentJob.to_message``) and is read
back with ``parse_job``, which validates everything before any work starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kmop.errors import InvalidJob, InvalidKeyPart
from signing.policy import externally_signed_kinds, policy_for
from signing.roles import Role
from storage.keys import check_dossier_id
from templates.catalog import DocumentKind, get_kind
from templates.enrich import enrich
from templates.validation import validate_data

_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_FIELDS = {"dossier_id", "kind", "data", "idempotency_key", "role", "signature"}
SIGNED_BY_SERVICE = "service"
SIGNED_ELSEWHERE = "external"


@dataclass(frozen=True)
class DocumentJob:
    dossier_id: str
    kind: str
    data: dict[str, Any]
    idempotency_key: str
    role: Role
    signature: str = SIGNED_BY_SERVICE

    @property
    def document_kind(self) -> DocumentKind:
        return get_kind(self.kind)

    @property
    def signed_elsewhere(self) -> bool:
        return self.signature == SIGNED_ELSEWHERE

    def to_message(self) -> dict[str, Any]:
        message = {
            "dossier_id": self.dossier_id,
            "kind": self.kind,
            "data": self.data,
            "idempotency_key": self.idempotency_key,
            "role": self.role.value,
        }
        if self.signed_elsewhere:  # absent by default: earlier messages and outbox records stay equal
            message["signature"] = self.signature
        return message


def parse_job(payload: Any) -> DocumentJob:
    """A validated job, or ``InvalidJob`` naming the first field at fault."""
    if not isinstance(payload, dict):
        raise InvalidJob("job", "must be a JSON object")
    unknown = sorted(set(payload) - _FIELDS)
    if unknown:
        raise InvalidJob(unknown[0], "is not a field of a document job")
    for name in ("dossier_id", "kind", "data", "idempotency_key"):
        if name not in payload:
            raise InvalidJob(name, "is required")
    try:
        dossier_id = check_dossier_id(payload["dossier_id"])
    except InvalidKeyPart as exc:
        raise InvalidJob("dossier_id", str(exc).split(": ", 1)[1]) from None
    kind_name = payload["kind"]
    if not isinstance(kind_name, str):
        raise InvalidJob("kind", "must be a string")
    kind = get_kind(kind_name)
    key = payload["idempotency_key"]
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidJob("idempotency_key", "must be 1-128 ASCII letters, digits or . _ : -")
    role_name = payload.get("role", policy_for(kind.name).role.value)
    try:
        role = Role(role_name)
    except ValueError:
        raise InvalidJob("role", f"must be one of {', '.join(r.value for r in Role)}") from None
    signature = _signature(payload.get("signature", SIGNED_BY_SERVICE), kind.name)
    data = payload["data"]
    if not isinstance(data, dict):
        raise InvalidJob("data", "must be a JSON object")
    validate_data(kind, data)
    enrich(kind.name, data)  # checks what the schema cannot: the tariff, the norm's indicators
    return DocumentJob(dossier_id, kind.name, data, key, role, signature)


def _signature(value: Any, kind: str) -> str:
    if value not in (SIGNED_BY_SERVICE, SIGNED_ELSEWHERE):
        raise InvalidJob("signature", f"must be {SIGNED_BY_SERVICE!r} or {SIGNED_ELSEWHERE!r}")
    if value == SIGNED_ELSEWHERE and not policy_for(kind).external:
        allowed = ", ".join(externally_signed_kinds()) or "none"
        raise InvalidJob("signature", f"{kind} is signed by the service; only these kinds may be signed "
                                      f"elsewhere: {allowed}")
    return value
