"""Signatures made elsewhere: a PDF the service issued comes back signed by the applicant's own
means (an eID card, a signing app). It is accepted only when

1. the returned file starts with the issued file, byte for byte (the signer appended
   incremental updates and changed nothing that was issued);
2. at least one new signature covers the whole issued document, and the revision it signs
   differs from the issued one only by the signature (a signature field, its widget and value:
   no changed page, no new annotation, no other filled field);
3. every signature in the returned file verifies (``signing.verify``) against the configured
   trust roots: intact, valid, trusted, timestamp and revocation as the validation policy
   requires, and nothing forbidden added after the signature.

Otherwise ``ExternalSignatureRefused`` says why, and the caller leaves the dossier where it is.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from asn1crypto import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, ModificationLevel, SuspiciousModification

from kmop.errors import KmopError

from .report import FileReport, SignatureReport
from .verify import verify_pdf


class ExternalSignatureRefused(KmopError):
    """The returned PDF is not accepted; ``reason`` says why in words a user can act on."""

    def __init__(self, reason: str, report: FileReport | None = None) -> None:
        self.reason = reason
        self.report = report
        super().__init__(f"signed document refused: {reason}")


@dataclass(frozen=True)
class ExternalSignatureAccepted:
    signatures: list[SignatureReport]
    """The reports of the signatures added to the issued document (the first one is the
    signature over the issued revision)."""
    report: FileReport

    @property
    def signer(self) -> str | None:
        return self.signatures[0].signer


def accept_external_signature(
    issued: bytes,
    returned: bytes,
    trust_roots: list[x509.Certificate],
    *,
    online: bool = False,
) -> ExternalSignatureAccepted:
    """Check a returned PDF against the issued one; raise ``ExternalSignatureRefused`` if not."""
    if not trust_roots:
        raise ExternalSignatureRefused("no trust root is configured for signatures made elsewhere")
    if len(returned) <= len(issued):
        if returned == issued:
            raise ExternalSignatureRefused("the returned file is the issued document, unsigned")
        raise ExternalSignatureRefused("the returned file is not the issued document with a signature added")
    if not returned.startswith(issued):
        raise ExternalSignatureRefused(
            "the returned file does not start with the issued document: what was issued was changed "
            "(sign the document as it was issued, without saving it first)"
        )
    try:
        issued_revisions = PdfFileReader(io.BytesIO(issued), strict=False).xrefs.total_revisions
        reader = PdfFileReader(io.BytesIO(returned), strict=False)
        new_signatures = [s for s in reader.embedded_regular_signatures if _signed_length(s) > len(issued)]
    except Exception as exc:  # noqa: BLE001 - hostile input gets a refusal, not a crash
        raise ExternalSignatureRefused(f"the returned file cannot be read as a PDF ({exc})") from exc
    if not new_signatures:
        raise ExternalSignatureRefused("the returned file holds no signature over the issued document")
    first = min(new_signatures, key=_signed_length)
    byte_range = first.byte_range
    if byte_range[0] != 0:
        raise ExternalSignatureRefused("the new signature does not cover the document from its first byte")
    _only_a_signature_added(returned[:_signed_length(first)], issued_revisions, _field(first))

    report = verify_pdf(returned, trust_roots, name="returned.pdf", online=online)
    if not report.ok:
        reasons = report.problems + [f"{s.field_name}: {p}" for s in report.signatures for p in s.problems]
        reasons += [f"{t.field_name}: {p}" for t in report.document_timestamps for p in t.problems]
        raise ExternalSignatureRefused("; ".join(reasons) or f"verification verdict {report.indication}", report)
    added = {_field(s) for s in new_signatures}
    return ExternalSignatureAccepted([s for s in report.signatures if s.field_name in added], report)


def _signed_length(signature) -> int:  # type: ignore[no-untyped-def]
    start, first_length, second_start, second_length = signature.byte_range
    return second_start + second_length


def _field(signature) -> str:  # type: ignore[no-untyped-def]
    return str(signature.field_name)


def _only_a_signature_added(signed_revision: bytes, issued_revisions: int, field_name: str) -> None:
    """The revision(s) between the issued document and the signature add a signature, nothing else."""
    try:
        reader = PdfFileReader(io.BytesIO(signed_revision), strict=False)
        outcome = DEFAULT_DIFF_POLICY.review_file(reader, issued_revisions - 1)
    except Exception as exc:  # noqa: BLE001
        raise ExternalSignatureRefused(f"the signed revision cannot be compared with the issued one ({exc})") from exc
    if isinstance(outcome, SuspiciousModification):
        raise ExternalSignatureRefused(f"the signed revision changes the issued document ({outcome})")
    if outcome.modification_level > ModificationLevel.FORM_FILLING:
        raise ExternalSignatureRefused(
            f"the signed revision changes the issued document beyond adding a signature "
            f"({outcome.modification_level.name})"
        )
    others = set(outcome.changed_form_fields) - {field_name}
    if others:
        raise ExternalSignatureRefused(f"the signed revision also fills in form fields {sorted(others)}")
