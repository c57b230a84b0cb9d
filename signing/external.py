"""Signatures made elsewhere: a PDF the service issued comes back signed by the applicant's own
means (an eID card, a signing app). It is accepted only when

1. the returned file starts with the issued file, byte for byte (the signer appended
   incremental updates and changed nothing that was issued);
2. exactly one new signature, in the signature field the issued document prepared for it (empty
   there), covering the whole issued document; the revision it signs differs from the issued one
   only by that signature (the field's value and its widget's appearance; the widget's rectangle
   stays): no changed page content or resources, no added or removed page, no new annotation or
   field, no change to the catalog or to another form field;
3. after that signature, nothing but its validation data: DSS updates and document timestamps;
4. every signature in the returned file verifies (``signing.verify``) against the configured
   trust roots: intact, valid, trusted, timestamp and revocation as the validation policy
   requires, and nothing appended that changes what the pages show.

Otherwise ``ExternalSignatureRefused`` says why, and the caller leaves the dossier where it is.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from asn1crypto import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields

from kmop.errors import KmopError

from .report import FileReport, SignatureReport
from .verify import verify_pdf
from .visible_changes import visible_changes

_ONLY_VALIDATION_DATA = ("NONE", "LTA_UPDATES")  # pyHanko's levels: nothing, or DSS and document timestamps


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
        issued_reader = PdfFileReader(io.BytesIO(issued), strict=False)
        issued_revisions = issued_reader.xrefs.total_revisions
        prepared = [name for name, _, _ in enumerate_sig_fields(issued_reader, filled_status=False)]
        reader = PdfFileReader(io.BytesIO(returned), strict=False)
        new_signatures = [s for s in reader.embedded_regular_signatures if _signed_length(s) > len(issued)]
    except Exception as exc:  # noqa: BLE001 - hostile input gets a refusal, not a crash
        raise ExternalSignatureRefused(f"the returned file cannot be read as a PDF ({exc})") from exc
    if not prepared:
        raise ExternalSignatureRefused("the issued document has no empty signature field to sign into")
    if not new_signatures:
        raise ExternalSignatureRefused("the returned file holds no signature over the issued document")
    if len(new_signatures) > 1:
        raise ExternalSignatureRefused(
            f"the returned file adds {len(new_signatures)} signatures ({', '.join(_field(s) for s in new_signatures)})"
            f"; exactly one is expected, in field {prepared[0]}")
    [first] = new_signatures
    if _field(first) not in prepared:
        raise ExternalSignatureRefused(
            f"the signature is in field {_field(first)}, not in the field prepared for it ({', '.join(prepared)})")
    byte_range = first.byte_range
    if byte_range[0] != 0:
        raise ExternalSignatureRefused("the new signature does not cover the document from its first byte")
    signed_revision = returned[:_signed_length(first)]
    _only_a_signature_added(signed_revision, issued_revisions, _field(first))
    _nothing_shown_changed(signed_revision, issued_revisions)

    report = verify_pdf(returned, trust_roots, name="returned.pdf", online=online)
    if not report.ok:
        reasons = [report.unchecked] if report.unchecked else []
        reasons += report.problems + [f"{s.field_name}: {p}" for s in report.signatures for p in s.problems]
        reasons += [f"{t.field_name}: {p}" for t in report.document_timestamps for p in t.problems]
        raise ExternalSignatureRefused("; ".join(reasons) or f"verification verdict {report.indication}", report)
    signature = next(s for s in report.signatures if s.field_name == _field(first))
    if signature.changes_after_signing != "none" and signature.modifications not in _ONLY_VALIDATION_DATA:
        raise ExternalSignatureRefused(
            f"more than the signature's validation data (DSS, document timestamps) was appended after it "
            f"({signature.modifications})", report)
    return ExternalSignatureAccepted([signature], report)


def _signed_length(signature) -> int:  # type: ignore[no-untyped-def]
    start, first_length, second_start, second_length = signature.byte_range
    return second_start + second_length


def _field(signature) -> str:  # type: ignore[no-untyped-def]
    return str(signature.field_name)


def _nothing_shown_changed(signed_revision: bytes, issued_revisions: int) -> None:
    """What the pages show is the issued document's, but for the signature's own appearance in
    its prepared field (``signing.visible_changes`` between the issued and the signed revision)."""
    reader = PdfFileReader(io.BytesIO(signed_revision), strict=False)
    changes = visible_changes(reader, issued_revisions - 1)
    if changes:
        raise ExternalSignatureRefused("the signed revision changes what the document shows: "
                                       + "; ".join(str(change) for change in changes[:3]))


def _only_a_signature_added(signed_revision: bytes, issued_revisions: int, field_name: str) -> None:
    """Compare the issued revision with the signed one: same pages (content, resources, size),
    same catalog, same form fields but for the value of the prepared signature field
    ``field_name``; no new annotation, no new field. (pyHanko's diff policy cannot start from a
    revision without a form, which is what the service issues, so the rules are spelled out
    here.)"""
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
            _check_annotations(number, before.get("/Annots"), after.get("/Annots"), budget, field_name)
        # /Metadata: the XMP packet, whose modification date and producer signing software
        # updates (as it updates the trailer's /Info); it is not what the pages say.
        ignored = {"/AcroForm", "/Perms", "/Extensions", "/DSS", "/Pages", "/Version", "/Metadata"}
        for key in (set(old.root) | set(reader.root)) - ignored:
            if not _same(old.root.raw_get(key) if key in old.root else None,
                         reader.root.raw_get(key) if key in reader.root else None, budget):
                raise ExternalSignatureRefused(f"the signed revision changes the document catalog ({key})")
        old_form = old.root["/AcroForm"] if "/AcroForm" in old.root else None  # [] resolves, get() does not
        old_fields = old_form["/Fields"] if old_form is not None and "/Fields" in old_form else []
        new_form = reader.root["/AcroForm"] if "/AcroForm" in reader.root else None
        new_fields = new_form["/Fields"] if new_form is not None and "/Fields" in new_form else []
        old_numbers = {ref.idnum for ref in old_fields.iterate() if hasattr(ref, "idnum")} if old_fields else set()
        for field_ref in (new_fields.iterate() if new_fields else []):
            if getattr(field_ref, "idnum", None) not in old_numbers:
                name = field_ref.get_object().get("/T") if hasattr(field_ref, "get_object") else None
                raise ExternalSignatureRefused(f"the signed revision adds form field {name}")
        for field_ref in old_fields:
            before = field_ref.get_object()
            if before.get("/FT") == "/Sig" and before.get("/T") == field_name:
                continue  # the prepared field: its value is the signature
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


def _is_prepared_widget(annotation, field_name: str) -> bool:  # type: ignore[no-untyped-def]
    """The widget of the prepared signature field (on the field itself, or its kid)."""
    if not _is_signature_widget(annotation):
        return False
    annotation = annotation.get_object()
    name = annotation.get("/T")
    if name is None and annotation.get("/Parent") is not None:
        name = annotation.get("/Parent").get_object().get("/T")
    return name == field_name


def _check_annotations(number: int, before, after, budget: _Budget,  # type: ignore[no-untyped-def]
                       field_name: str) -> None:
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
        if not _is_prepared_widget(annotation, field_name) and not _same(annotation, new[key], budget):
            raise ExternalSignatureRefused(f"the signed revision changes an annotation on page {number}")
    for key, annotation in new.items():
        if key not in old:
            kind = "a signature field" if _is_signature_widget(annotation) else "an annotation"
            raise ExternalSignatureRefused(
                f"the signed revision adds {kind} to page {number}: the signature goes into the prepared field "
                f"{field_name}, nothing else is added")
