"""The verification report: an overall verdict in ETSI EN 319 102-1 terms, and one entry per
signature and per document timestamp. Text for people (``render_text``), JSON for programs
(``FileReport.to_dict``).

Indications: ``TOTAL-PASSED``, ``INDETERMINATE`` (with a sub-indication such as
``NO_CERTIFICATE_CHAIN_FOUND``, ``TRY_LATER``, ``OUT_OF_BOUNDS_NO_POE``) and ``TOTAL-FAILED``
(with ``HASH_FAILURE``, ``SIG_CRYPTO_FAILURE``, ``REVOKED``, ``FORMAT_FAILURE``). A file's
verdict is its worst signature's; a file that cannot be read or holds no signature is
``TOTAL-FAILED``/``FORMAT_FAILURE``; one not verified, or not wholly, because it exceeds a limit
of work (``unchecked`` says what) is at best ``INDETERMINATE``. ``ok`` is true only for
``TOTAL-PASSED`` with no problem.

A signature followed by updates that change what the pages show (``visible_changes``) is
``TOTAL-FAILED``/``FORMAT_FAILURE``: the hash holds, but the document a person sees is not the
one signed (docs/verification.md says why this indication).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TOTAL_PASSED = "TOTAL-PASSED"
INDETERMINATE = "INDETERMINATE"
TOTAL_FAILED = "TOTAL-FAILED"
FORMAT_FAILURE = "FORMAT_FAILURE"

_SEVERITY = {TOTAL_PASSED: 0, INDETERMINATE: 1, TOTAL_FAILED: 2}

CHANGES_NONE = "none"
CHANGES_ALLOWED = "allowed additions"
CHANGES_FORBIDDEN = "forbidden changes"
CHANGES_VISIBLE = "changes to what is shown"


@dataclass
class SignatureReport:
    """One signature. ``problems`` says in words what keeps it from passing (empty: it passes)."""

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
    indication: str = INDETERMINATE
    sub_indication: str | None = None
    role: str | None = None
    role_name: str | None = None
    signature_type: str | None = None
    timestamp_authority: str | None = None
    best_signature_time: str | None = None
    chain: list[str] = field(default_factory=list)
    trust_root: str | None = None
    revocation: str | None = None
    level: str | None = None
    changes_after_signing: str | None = None
    algorithm: str | None = None
    visible_changes: list[str] = field(default_factory=list)
    """What the updates after this signature change on the pages (``signing.visible_changes``):
    a signature with any is not ``TOTAL-PASSED``."""

    @property
    def ok(self) -> bool:
        return not self.problems and self.indication == TOTAL_PASSED

    def fail(self, indication: str, sub_indication: str | None, problem: str) -> None:
        """Record a problem and lower the verdict to ``indication`` if that is worse."""
        if problem not in self.problems:
            self.problems.append(problem)
        if _SEVERITY[indication] > _SEVERITY[self.indication] or (
            indication == self.indication and self.sub_indication is None
        ):
            self.indication, self.sub_indication = indication, sub_indication


@dataclass
class TimestampReport:
    """One document timestamp (the evidence that keeps B-LTA signatures verifiable)."""

    field_name: str
    time: str | None = None
    authority: str | None = None
    intact: bool = False
    valid: bool = False
    trusted: bool = False
    changes_after: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class FileReport:
    name: str
    signatures: list[SignatureReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    document_timestamps: list[TimestampReport] = field(default_factory=list)
    unchecked: str | None = None
    """Set when the file was not verified, or not wholly, because it exceeds a limit of work
    (``signing.limits``): what was left unchecked and why."""

    @property
    def indication(self) -> str:
        if self.unchecked is not None and not self.signatures:
            return INDETERMINATE  # not verified: nothing is known either way
        if self.problems and not self.signatures:
            return TOTAL_FAILED
        worst = max((s.indication for s in self.signatures), key=_SEVERITY.__getitem__, default=TOTAL_FAILED)
        if worst == TOTAL_PASSED and (self.problems or self.unchecked is not None
                                      or any(s.problems for s in self.signatures)
                                      or any(t.problems for t in self.document_timestamps)):
            return INDETERMINATE
        return worst

    @property
    def sub_indication(self) -> str | None:
        if self.unchecked is not None and not self.signatures:
            return "GENERIC"
        if self.problems and not self.signatures:
            return FORMAT_FAILURE
        indication = self.indication
        for signature in self.signatures:
            if signature.indication == indication and signature.sub_indication:
                return signature.sub_indication
        return None if indication == TOTAL_PASSED else "GENERIC"

    @property
    def ok(self) -> bool:
        return (not self.problems and self.unchecked is None and bool(self.signatures) and all(s.ok for s in self.signatures)
                and all(t.ok for t in self.document_timestamps))

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["ok"] = self.ok
        result["indication"] = self.indication
        result["sub_indication"] = self.sub_indication
        for entry, signature in zip(result["signatures"], self.signatures):
            entry["ok"] = signature.ok
        for entry, stamp in zip(result["document_timestamps"], self.document_timestamps):
            entry["ok"] = stamp.ok
        return result


def render_text(report: FileReport) -> str:
    """The report as people read it: verdict first, then one block per signature."""
    verdict = "valid" if report.ok else "INVALID"
    sub = f" / {report.sub_indication}" if report.sub_indication and not report.ok else ""
    lines = [f"{report.name}: {verdict} ({report.indication}{sub})"]
    lines += [f"  - {problem}" for problem in report.problems]
    if report.unchecked:
        lines.append(f"  NOT CHECKED: {report.unchecked}")
    for sig in report.signatures:
        status = sig.indication + (f" / {sig.sub_indication}" if sig.sub_indication else "")
        lines.append(f"  signature {sig.field_name}: {'valid' if sig.ok else 'invalid'} ({status})")
        role = f"{sig.role_name} ({sig.role})" if sig.role else "not stated"
        timestamp = (f"{sig.timestamp_time} by {sig.timestamp_authority}"
                     + ("" if sig.timestamp_ok else " (NOT VALID)")) if sig.timestamp_time else "none"
        details = [
            ("signer", sig.signer),
            ("role", role),
            ("signing time", f"{sig.signing_time} (claimed by the signer)" if sig.signing_time else None),
            ("timestamp", timestamp),
            ("integrity", "intact" if sig.intact else "ALTERED"),
            ("signature", ("valid" if sig.valid else "NOT VALID") + (f", {sig.algorithm}" if sig.algorithm else "")),
            ("chain", " -> ".join(sig.chain) if sig.chain else "no path to a trusted root"),
            ("revocation", sig.revocation),
            ("PAdES level", sig.level),
            ("changes after", sig.changes_after_signing),
            ("type", sig.signature_type),
        ]
        lines += [f"    {(label + ':').ljust(13)} {value}" for label, value in details if value]
        lines += [f"    - {problem}" for problem in sig.problems]
        if sig.visible_changes:
            lines.append("    changed after signing, on what is shown:")
            lines += [f"      * {change}" for change in sig.visible_changes]
    for stamp in report.document_timestamps:
        lines.append(f"  document timestamp {stamp.field_name}: {'valid' if stamp.ok else 'invalid'}; "
                     f"time: {stamp.time}; authority: {stamp.authority}")
        lines += [f"    - {problem}" for problem in stamp.problems]
    return "\n".join(lines)
