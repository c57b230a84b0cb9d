"""Signatures made elsewhere: a PDF the service issued comes back signed by the applicant's own
means (an eID card, a signing app). It is accepted only when

1. the returned file starts with the issued file, byte for byte (the signer appended
   incremental updates and changed nothing that was issued);
2. at least one new signature covers the whole issued document, and the revision it signs
   differs from the issued one only by the signature (a signature field, its widget and value:
   no changed page content or resources, no added or removed page, no other annotation, no
   change to the catalog or to another form field);
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
    """Compare the issued revision with the signed one: same pages (content, resources, size),
    same catalog and same non-signature form fields; the only new annotations are signature
    widgets. (pyHanko's diff policy cannot start from a revision without a form, which is what
    the service issues, so the rules are spelled out here.)"""
    try:
        reader = PdfFileReader(io.BytesIO(signed_revision), strict=False)
        old = reader.get_historical_resolver(issued_revisions - 1)
        budget = _Budget()
        old_pages, new_pages = _pages(old.root["/Pages"]), _pages(reader.root["/Pages"])
        if len(old_pages) != len(new_pages):
            raise ExternalSignatureRefused("the signed revision adds or removes pages")
        for number, (before, after) in enumerate(zip(old_pages, new_pages), start=1):
            for key in (set(before) | set(after)) - {"/Annots", "/Parent"}:
                if not _same(before.raw_get(key) if key in before else None,
                             after.raw_get(key) if key in after else None, budget):
                    raise ExternalSignatureRefused(f"the signed revision changes page {number} ({key})")
            _check_annotations(number, before.get("/Annots"), after.get("/Annots"), budget)
        # /Metadata: the XMP packet, whose modification date and producer signing software
        # updates (as it updates the trailer's /Info); it is not what the pages say.
        ignored = {"/AcroForm", "/Perms", "/Extensions", "/DSS", "/Pages", "/Version", "/Metadata"}
        for key in (set(old.root) | set(reader.root)) - ignored:
            if not _same(old.root.raw_get(key) if key in old.root else None,
                         reader.root.raw_get(key) if key in reader.root else None, budget):
                raise ExternalSignatureRefused(f"the signed revision changes the document catalog ({key})")
        old_form = old.root["/AcroForm"] if "/AcroForm" in old.root else None  # [] resolves, get() does not
        old_fields = old_form["/Fields"] if old_form is not None and "/Fields" in old_form else []
        for field_ref in old_fields:
            before = field_ref.get_object()
            if before.get("/FT") == "/Sig":
                continue
            after = reader.get_object(field_ref.reference) if hasattr(field_ref, "reference") else None
            if after is None or not _same(before, after, budget):
                raise ExternalSignatureRefused(f"the signed revision changes form field {before.get('/T')}")
    except ExternalSignatureRefused:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ExternalSignatureRefused(f"the signed revision cannot be compared with the issued one ({exc})") from exc


class _Budget:
    """Bounds the comparison of hostile files (object count) and remembers the pairs of objects
    under comparison, so that cycles (a structure element's ``/P`` back to its parent) end."""

    def __init__(self, limit: int = 50_000) -> None:
        self.left = limit
        self.compared: set[tuple[int, int, int, int]] = set()

    def first_time(self, a, b) -> bool:  # type: ignore[no-untyped-def]
        """False when ``a`` and ``b`` (indirect objects) are already being compared."""
        pair = (a.idnum, a.generation, b.idnum, b.generation)
        if pair in self.compared:
            return False
        self.compared.add(pair)
        return True

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise ExternalSignatureRefused("the returned file is too complex to compare with the issued one")


def _pages(node, depth: int = 0) -> list:  # type: ignore[no-untyped-def]
    node = node.get_object()
    if depth > 32:
        raise ExternalSignatureRefused("the page tree is too deep")
    if node.get("/Type") == "/Pages" or "/Kids" in node:
        return [page for kid in node["/Kids"] for page in _pages(kid, depth + 1)]
    return [node]


def _same(a, b, budget: _Budget, depth: int = 0) -> bool:  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils import generic

    budget.spend()
    if depth > 64:
        return False
    if isinstance(a, generic.IndirectObject) and isinstance(b, generic.IndirectObject):
        if _same_page_reference(a, b):
            return True  # pages are compared one by one, with the rules for their annotations
        if not budget.first_time(a, b):
            return True  # being compared further up: a difference is found there
    if isinstance(a, generic.IndirectObject):
        a = a.get_object()
    if isinstance(b, generic.IndirectObject):
        b = b.get_object()
    if isinstance(a, generic.StreamObject) or isinstance(b, generic.StreamObject):
        if not (isinstance(a, generic.StreamObject) and isinstance(b, generic.StreamObject)):
            return False
        if a.encoded_data != b.encoded_data:
            return False
        keys = (set(a) | set(b)) - {"/Length"}
        return all(k in a and k in b and _same(a.raw_get(k), b.raw_get(k), budget, depth + 1) for k in keys)
    if isinstance(a, generic.DictionaryObject) and isinstance(b, generic.DictionaryObject):
        if set(a) != set(b):
            return False
        return all(_same(a.raw_get(k), b.raw_get(k), budget, depth + 1) for k in a if k != "/Parent")
    if isinstance(a, generic.ArrayObject) and isinstance(b, generic.ArrayObject):
        if len(a) != len(b):
            return False
        return all(_same(x, y, budget, depth + 1) for x, y in zip(a.raw_iter() if hasattr(a, "raw_iter") else a,
                                                                     b.raw_iter() if hasattr(b, "raw_iter") else b))
    return a == b


def _same_page_reference(a, b) -> bool:  # type: ignore[no-untyped-def]
    """Both refer to the same page object: a tagged PDF's structure elements point at their page
    (``/Pg``), whose annotations include the signature widget that signing fills in."""
    from pyhanko.pdf_utils import generic

    if (a.idnum, a.generation) != (b.idnum, b.generation):
        return False
    before, after = a.get_object(), b.get_object()
    return (isinstance(before, generic.DictionaryObject) and isinstance(after, generic.DictionaryObject)
            and before.get("/Type") == after.get("/Type") == "/Page")


def _is_signature_widget(annotation) -> bool:  # type: ignore[no-untyped-def]
    annotation = annotation.get_object()
    if annotation.get("/Subtype") != "/Widget":
        return False
    if annotation.get("/FT") == "/Sig":
        return True
    parent = annotation.get("/Parent")
    return parent is not None and parent.get_object().get("/FT") == "/Sig"


def _check_annotations(number: int, before, after, budget: _Budget) -> None:  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils import generic

    def refs(annots):  # type: ignore[no-untyped-def]
        if annots is None:
            return {}
        items = annots.get_object()
        raw = items.raw_iter() if hasattr(items, "raw_iter") else items
        return {(item.idnum if isinstance(item, generic.IndirectObject) else id(item)): item for item in raw}

    old, new = refs(before), refs(after)
    for key, annotation in old.items():
        if key not in new:
            raise ExternalSignatureRefused(f"the signed revision removes an annotation from page {number}")
        if not _is_signature_widget(annotation) and not _same(annotation, new[key], budget):
            raise ExternalSignatureRefused(f"the signed revision changes an annotation on page {number}")
    for key, annotation in new.items():
        if key not in old and not _is_signature_widget(annotation):
            raise ExternalSignatureRefused(
                f"the signed revision adds an annotation that is not a signature to page {number}")
