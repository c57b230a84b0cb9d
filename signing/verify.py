"""Verifies every signature in a PDF against explicit trust roots, with pyHanko.

A file passes only when it holds at least one signature and every signature is intact,
cryptographically valid, chains to one of the given roots, has a valid timestamp when it carries
one, and was followed only by changes its certification allows.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from asn1crypto import x509
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext


@dataclass
class SignatureReport:
    field_name: str
    signer: str | None = None
    signing_time: str | None = None
    timestamp_time: str | None = None
    intact: bool = False
    valid: bool = False
    trusted: bool = False
    timestamp_ok: bool | None = None
    coverage: str | None = None
    modifications: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class FileReport:
    name: str
    signatures: list[SignatureReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.signatures) and all(s.ok for s in self.signatures)

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["ok"] = self.ok
        for entry, signature in zip(result["signatures"], self.signatures):
            entry["ok"] = signature.ok
        return result


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _report(name: str, status: PdfSignatureStatus) -> SignatureReport:
    report = SignatureReport(
        field_name=name,
        signer=status.signing_cert.subject.human_friendly,
        signing_time=_iso(status.signer_reported_dt),
        intact=status.intact,
        valid=status.valid,
        trusted=status.trusted,
        coverage=status.coverage.name if status.coverage else None,
        modifications=status.modification_level.name if status.modification_level else None,
    )
    if status.timestamp_validity is not None:
        ts = status.timestamp_validity
        report.timestamp_time = _iso(ts.timestamp)
        report.timestamp_ok = ts.intact and ts.valid and ts.trusted
        if not report.timestamp_ok:
            report.problems.append("the signature timestamp is not valid or not trusted")
    if not status.intact:
        report.problems.append("the signed content was altered (digest mismatch)")
    if not status.valid:
        report.problems.append("the cryptographic signature is not valid")
    if not status.trusted:
        reason = status.trust_problem_indic.name if status.trust_problem_indic else "no path"
        report.problems.append(f"the signer's certificate does not chain to a trusted root ({reason})")
    if status.coverage not in (SignatureCoverageLevel.ENTIRE_FILE, SignatureCoverageLevel.ENTIRE_REVISION):
        report.problems.append("the signature does not cover its whole revision")
    if status.modification_level is not None and not status.docmdp_ok:
        report.problems.append(
            f"the document was changed after signing beyond what is allowed ({status.modification_level.name})"
        )
    if not status.bottom_line and not report.problems:
        report.problems.append("pyHanko's overall judgement is negative")
    return report


def verify_pdf(data: bytes, trust_roots: list[x509.Certificate], name: str = "document.pdf") -> FileReport:
    """The verification report of one PDF. Never raises for bad input: problems are reported."""
    result = FileReport(name=name)
    if not trust_roots:
        result.problems.append("no trust root given")
        return result
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        embedded = reader.embedded_signatures
    except (PdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        result.problems.append(f"not a readable PDF: {exc}")
        return result
    if not embedded:
        result.problems.append("the file holds no signature")
        return result
    for signature in embedded:
        context = ValidationContext(trust_roots=trust_roots, allow_fetching=False)
        try:
            status = validate_pdf_signature(signature, context)
        except (SignatureValidationError, PdfError, ValueError, KeyError, TypeError) as exc:
            failed = SignatureReport(field_name=signature.field_name)
            failed.problems.append(f"the signature cannot be validated: {exc}")
            result.signatures.append(failed)
            continue
        result.signatures.append(_report(signature.field_name, status))
    return result
