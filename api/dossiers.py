"""What the API shows of a dossier, read from its ledger: documents, events, state.

A document is named ``<step:02d>-<kind>-v<version>`` (``01-sworn_statement-v1``): the stem of the
file a client saves, stable for as long as the ledger exists. Storage keys stay internal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from storage.keys import version_of
from workflow.ledger import Event
from workflow.tracker import DOCUMENT_STORED

DOCUMENT_NAME_PATTERN = r"^[0-9]{2}-[a-z][a-z0-9_]{0,47}-v[0-9]{1,4}$"
_DOCUMENT_NAME = re.compile(DOCUMENT_NAME_PATTERN)


@dataclass(frozen=True)
class RecordedDocument:
    name: str
    kind: str
    step: int
    version: int
    sha256: str
    size: int
    key: str
    recorded_at: str
    event_sequence: int
    idempotency_key: str

    def to_dict(self, dossier_id: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "step": self.step,
            "version": self.version,
            "sha256": self.sha256,
            "size": self.size,
            "recorded_at": self.recorded_at,
            "event_sequence": self.event_sequence,
            "idempotency_key": self.idempotency_key,
            "href": f"/dossiers/{dossier_id}/documents/{self.name}",
        }


def document_name(step: int, kind: str, version: int) -> str:
    return f"{step:02d}-{kind}-v{version}"


def recorded_document(event: Event) -> RecordedDocument:
    payload = event.payload
    version = version_of(payload["key"])
    return RecordedDocument(
        name=document_name(payload["step"], payload["kind"], version),
        kind=payload["kind"],
        step=payload["step"],
        version=version,
        sha256=payload["sha256"],
        size=payload["size"],
        key=payload["key"],
        recorded_at=event.at,
        event_sequence=event.sequence,
        idempotency_key=event.idempotency_key,
    )


def documents_of(history: list[Event]) -> list[RecordedDocument]:
    return [recorded_document(e) for e in history if e.type == DOCUMENT_STORED]


def find_document(history: list[Event], name: str) -> RecordedDocument | None:
    if not _DOCUMENT_NAME.fullmatch(name):
        return None
    return next((d for d in documents_of(history) if d.name == name), None)
