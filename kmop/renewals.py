"""Renewing the document timestamps of the stored B-LTA documents (``kmop renew-timestamps``).

The documents recorded in the dossiers' ledgers are immutable: a renewal is stored as a new
object, ``storage.keys.renewed_key(original, n)``, created once (``put_once``), its metadata
naming the original (key and SHA-256) and the object it was made from. Renewal ``n`` is made from
renewal ``n - 1`` (the original for the first), so each renewed file begins with the bytes of
the one before. ``renewal_chain`` lists them.

Running it again is safe: whether a document is due is judged on the newest object of its
chain, so a run with nothing due stores nothing, and a run that died after storing a renewal is
not repeated. Two runs racing for the same renewal cannot both store it. A document renewed less
than ``min_age`` ago (30 days) is not renewed again even when its newest timestamp's authority
certificate is still within the margin: the authority has not rolled over to a new certificate
yet, and renewing at every run would only pile up timestamps.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from pyhanko.sign.timestamps import TimeStamper

from kmop.errors import KmopError, ObjectExists
from signing.identities import IdentityStore
from signing.policy import PadesLevel, policy_for
from signing.renewal import DEFAULT_MARGIN, check_renewal, renew
from storage.base import DocumentStore, StoredObject
from storage.keys import renewed_key
from workflow.deadlines import dossier_ids
from workflow.tracker import DOCUMENT_STORED, Tracker

PDF = "application/pdf"
DEFAULT_MIN_AGE = dt.timedelta(days=30)


@dataclass(frozen=True)
class RecordedDocument:
    dossier_id: str
    kind: str
    key: str
    sha256: str


@dataclass(frozen=True)
class RenewalOutcome:
    key: str
    status: str  # "renewed", "due" (dry run), "not due" or "failed"
    reason: str
    renewed_key: str | None = None


def renewal_chain(store: DocumentStore, original_key: str) -> list[StoredObject]:
    """The renewals of the document under ``original_key``, oldest first."""
    chain: list[StoredObject] = []
    while (found := store.head(renewed_key(original_key, len(chain) + 1))) is not None:
        chain.append(found)
    return chain


def recorded_lta_documents(store: DocumentStore, tracker: Tracker) -> Iterator[RecordedDocument]:
    """Every document the ledgers record for a kind signed at B-LTA."""
    for dossier_id in dossier_ids(store):
        for event in tracker.history(dossier_id):
            if event.type != DOCUMENT_STORED:
                continue
            kind = event.payload["kind"]
            try:
                level = policy_for(kind).level
            except KmopError:
                continue
            if level is PadesLevel.B_LTA:
                yield RecordedDocument(dossier_id, kind, event.payload["key"], event.payload["sha256"])


@dataclass
class Renewer:
    store: DocumentStore
    identities: IdentityStore
    timestamper: TimeStamper
    margin: dt.timedelta = DEFAULT_MARGIN
    min_age: dt.timedelta = DEFAULT_MIN_AGE
    dry_run: bool = False

    def run(self, documents: Iterator[RecordedDocument]) -> list[RenewalOutcome]:
        outcomes = []
        for document in documents:
            try:
                outcomes.append(self.renew_document(document))
            except KmopError as exc:
                outcomes.append(RenewalOutcome(document.key, "failed", str(exc)))
        return outcomes

    def renew_document(self, document: RecordedDocument, now: dt.datetime | None = None) -> RenewalOutcome:
        chain = renewal_chain(self.store, document.key)
        latest_key, expected = (chain[-1].key, chain[-1].sha256) if chain else (document.key, document.sha256)
        data = self.store.get(latest_key)
        if hashlib.sha256(data).hexdigest() != expected:
            raise KmopError(f"{latest_key}: its SHA-256 does not match the recorded one; not renewed")
        now = now or dt.datetime.now(dt.timezone.utc)
        check = check_renewal(data, self.margin, now)
        if not check.due:
            return RenewalOutcome(document.key, "not due", check.reason)
        if chain and check.timestamp_time is not None and now - check.timestamp_time < self.min_age:
            return RenewalOutcome(document.key, "not due", f"renewed on {check.timestamp_time:%Y-%m-%d}, less than "
                                                           f"{self.min_age.days} days ago ({check.reason})")
        if self.dry_run:
            return RenewalOutcome(document.key, "due", check.reason)
        renewed = renew(data, self.identities, self.timestamper)
        if not renewed.startswith(data):
            raise KmopError(f"{latest_key}: the renewal did not keep the earlier bytes; not stored")
        key = renewed_key(document.key, len(chain) + 1)
        metadata = {"original-key": document.key, "original-sha256": document.sha256,
                    "renewed-from-key": latest_key, "renewed-from-sha256": expected}
        try:
            self.store.put_once(key, renewed, PDF, metadata)
        except ObjectExists:
            return RenewalOutcome(document.key, "not due", f"{key} was stored by another run meanwhile")
        return RenewalOutcome(document.key, "renewed", check.reason, key)
