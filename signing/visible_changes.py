"""What a person would see differently: the updates appended after a signed revision that can
change how the document renders (the "shadow attacks": hide, replace, hide-and-replace).

A PDF signature covers one revision; incremental updates appended later are outside it, and
pyHanko's difference analysis rates them by what they are (form filling, annotations, other),
not by what they show: a new unsigned signature field whose widget paints a white box over the
page is "form filling". This module compares the signed revision with the file's last revision
on everything rendering depends on:

- the pages: their number, and each page's dictionary (content streams, resources: fonts,
  images, form XObjects, colour spaces, graphics states; boxes, rotation; attributes inherited
  from the page tree included) with every object they reach, to any depth;
- each page's annotations: a new one that can be seen, a changed one, a removed one;
- the form: a field whose value or appearance settings changed while a widget of it can be
  seen, ``/NeedAppearances`` turned on (viewers then redraw every field), XFA;
- the document catalog (optional content, open actions, JavaScript and other names), the DSS,
  the XMP metadata and the form dictionary aside.

What does not change what is shown passes: a DSS update, document timestamps and signatures in
fields nobody can see (hidden, or an empty rectangle), and a signature put into a signature field
that was already there, empty, in the signed revision: its appearance is drawn inside that
field's rectangle, which must not change (nor the field's name and type). An annotation counts
as visible unless its flags hide it (Hidden, NoView) or its rectangle is empty; where it lies on
the page is not judged (the structural check does not know where the page's own content is).

The comparison reads a bounded number of objects (``ComparisonTooLarge`` beyond that): a file
too complex to compare is reported as not checked, never passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader

DEFAULT_OBJECT_LIMIT = 200_000
_INHERITED = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")
_NOT_COMPARED = frozenset({"/P", "/Parent"})  # back links: the page loop and the field walk compare those
_CATALOG_IGNORED = frozenset({"/Type", "/Pages", "/AcroForm", "/DSS", "/Metadata", "/Extensions", "/Version"})
_SIGNED_WIDGET_KEEPS = ("/Rect", "/Subtype", "/FT", "/T")  # where it draws, and which field it is
_HIDDEN, _NO_VIEW = 2, 32
_PAGE_KEYS = {
    "/Contents": "page content (/Contents)",
    "/Resources": "page resources",
    "/MediaBox": "page size (/MediaBox)",
    "/CropBox": "visible area (/CropBox)",
    "/Rotate": "rotation (/Rotate)",
}
_CATALOG_KEYS = {
    "/OCProperties": "optional content: which layers are shown",
    "/OpenAction": "the action run on opening",
    "/AA": "the document's actions",
    "/Names": "names (JavaScript, embedded files, destinations)",
}


class ComparisonTooLarge(Exception):
    """The revisions reach more objects, or nest them deeper, than the comparison may read."""


@dataclass(frozen=True)
class VisibleChange:
    """One change after signing that can alter what is shown; ``page`` counts from 1 (None: the
    document as a whole)."""

    page: int | None
    what: str

    def __str__(self) -> str:
        return f"page {self.page}: {self.what}" if self.page is not None else self.what


def visible_changes(reader: PdfFileReader, revision: int, limit: int = DEFAULT_OBJECT_LIMIT) -> list[VisibleChange]:
    """The changes between ``revision`` (0-based, as ``EmbeddedPdfSignature.signed_revision``)
    and the file's last revision that can alter what is shown; empty when there are none.

    A file that cannot be compared (malformed, or more than ``limit`` objects to read) gives one
    change saying so: what is shown was not checked, so it cannot pass."""
    last = reader.xrefs.total_revisions - 1
    if revision >= last:
        return []
    try:
        return _Comparison(reader.get_historical_resolver(revision), reader.get_historical_resolver(last),
                           limit).run()
    except ComparisonTooLarge as exc:
        return [VisibleChange(None, f"the updates after signing {exc}: what they change on the pages "
                                    "was not checked")]
    except (RecursionError, Exception) as exc:  # noqa: BLE001 - hostile files: any failure is a finding
        return [VisibleChange(None, f"the updates after signing cannot be compared with the signed revision "
                                    f"({type(exc).__name__}): what they change on the pages was not checked")]


class _Comparison:
    def __init__(self, old: HistoricalResolver, new: HistoricalResolver, limit: int) -> None:
        self.old, self.new = old, new
        self.left = self.limit = limit
        self.pairs: dict[tuple[int, int, int, int], bool] = {}
        self.changes: list[VisibleChange] = []

    def run(self) -> list[VisibleChange]:
        old_pages = self._pages(self.old.root.raw_get("/Pages"))
        new_pages = self._pages(self.new.root.raw_get("/Pages"))
        if len(old_pages) != len(new_pages):
            self.add(None, f"pages added or removed: {len(old_pages)} in the signed revision, {len(new_pages)} now")
        for number, (before, after) in enumerate(zip(old_pages, new_pages), start=1):
            self._page(number, before, after)
        self._form()
        self._catalog()
        return self.changes

    def add(self, page: int | None, what: str) -> None:
        change = VisibleChange(page, what)
        if change not in self.changes:
            self.changes.append(change)

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise ComparisonTooLarge(f"reach more than {self.limit} objects")

    # --- pages -------------------------------------------------------------------------------

    def _pages(self, node: Any, inherited: dict[str, Any] | None = None, depth: int = 0) -> list[tuple[Any, dict]]:
        """Every page in order, with the attributes it inherits from the page tree."""
        self.spend()
        if depth > 64:
            raise ComparisonTooLarge("nest the page tree more than 64 levels deep")
        ref = node
        node = node.get_object() if isinstance(node, generic.IndirectObject) else node
        if not isinstance(node, generic.DictionaryObject):
            return []
        attributes = dict(inherited or {})
        attributes.update({key: node.raw_get(key) for key in _INHERITED if key in node})
        if node.get("/Type") == "/Pages" or "/Kids" in node:
            kids = node.get("/Kids")
            kids = kids.get_object() if isinstance(kids, generic.IndirectObject) else kids
            if not isinstance(kids, generic.ArrayObject):
                return []
            return [page for kid in kids.iterate() for page in self._pages(kid, attributes, depth + 1)]
        return [(ref, attributes)]

    def _page(self, number: int, before: tuple[Any, dict], after: tuple[Any, dict]) -> None:
        (old_ref, old_inherited), (new_ref, new_inherited) = before, after
        old_page, new_page = old_ref.get_object(), new_ref.get_object()
        keys = (set(old_page) | set(new_page) | set(old_inherited) | set(new_inherited)) - {"/Annots", "/Parent"}
        for key in sorted(keys):
            a = old_page.raw_get(key) if key in old_page else old_inherited.get(key)
            b = new_page.raw_get(key) if key in new_page else new_inherited.get(key)
            if key == "/Resources":
                self._resources(number, a, b)
            elif not self.same(a, b):
                self.add(number, f"{_PAGE_KEYS.get(key, f'page entry {key}')} changed")
        self._annotations(number, old_page, new_page)

    def _resources(self, number: int, a: Any, b: Any) -> None:
        if self.same(a, b):
            return
        a, b = _resolved(a), _resolved(b)
        if not (isinstance(a, generic.DictionaryObject) and isinstance(b, generic.DictionaryObject)):
            self.add(number, "page resources changed")
            return
        for key in sorted(set(a) | set(b)):
            if not self.same(a.raw_get(key) if key in a else None, b.raw_get(key) if key in b else None):
                what = {"/Font": "fonts", "/XObject": "images or form XObjects", "/ExtGState": "graphics states",
                        "/ColorSpace": "colour spaces", "/Pattern": "patterns", "/Shading": "shadings",
                        "/Properties": "marked-content properties (optional content)"}.get(key, key)
                self.add(number, f"page resources changed: {what} ({key})")

    # --- annotations -------------------------------------------------------------------------

    def _annotations(self, number: int, old_page: Any, new_page: Any) -> None:
        old, new = self._annots(old_page), self._annots(new_page)
        for key, item in new.items():
            annotation = _resolved(item)
            if not isinstance(annotation, generic.DictionaryObject):
                continue
            if key not in old:
                if _visible(annotation):
                    self.add(number, f"new {_describe(annotation)} {_where(annotation, new_page)}")
                continue
            if self.same(old[key], item):
                continue
            before = _resolved(old[key])
            if isinstance(before, generic.DictionaryObject) and self._prepared_signature_filled(before, annotation):
                continue
            if _visible(annotation) or (isinstance(before, generic.DictionaryObject) and _visible(before)):
                changed = self._changed_keys(before, annotation)
                self.add(number, f"{_describe(annotation)} changed ({', '.join(changed) or 'objects it uses'})")
        for key, item in old.items():
            annotation = _resolved(item)
            if key not in new and isinstance(annotation, generic.DictionaryObject) and _visible(annotation):
                self.add(number, f"{_describe(annotation)} removed")

    def _annots(self, page: Any) -> dict[Any, Any]:
        annots = _resolved(page.raw_get("/Annots")) if "/Annots" in page else None
        if not isinstance(annots, generic.ArrayObject):
            return {}
        found: dict[Any, Any] = {}
        for index, item in enumerate(annots.iterate()):
            self.spend()
            key = (item.idnum, item.generation) if isinstance(item, generic.IndirectObject) else ("direct", index)
            found[key] = item
        return found

    def _prepared_signature_filled(self, before: Any, after: Any) -> bool:
        """A signature widget that was empty in the signed revision and now holds a signature,
        in the same rectangle: a viewer maps the appearance onto the rectangle, so whatever the
        signing software writes into the appearance (and its flags, border and colours) shows
        inside the field the document prepared, nowhere else."""
        if _field_type(before) != "/Sig" or _field_type(after) != "/Sig":
            return False
        if _field_value(before) is not None:
            return False
        value = _field_value(after)
        if not isinstance(value, generic.DictionaryObject) or "/ByteRange" not in value:
            return False
        return all((key in before) == (key in after)
                   and (key not in before or self.same(before.raw_get(key), after.raw_get(key)))
                   for key in _SIGNED_WIDGET_KEEPS)

    def _changed_keys(self, before: Any, after: Any) -> list[str]:
        keys = sorted((set(before) | set(after)) - _NOT_COMPARED)
        return [key for key in keys if not self.same(before.raw_get(key) if key in before else None,
                                                     after.raw_get(key) if key in after else None)]

    # --- form ----------------------------------------------------------------------------------

    def _form(self) -> None:
        old_form = _resolved(self.old.root.raw_get("/AcroForm")) if "/AcroForm" in self.old.root else None
        new_form = _resolved(self.new.root.raw_get("/AcroForm")) if "/AcroForm" in self.new.root else None
        old_form = old_form if isinstance(old_form, generic.DictionaryObject) else generic.DictionaryObject()
        new_form = new_form if isinstance(new_form, generic.DictionaryObject) else generic.DictionaryObject()
        if _truthy(new_form.get("/NeedAppearances")) and not _truthy(old_form.get("/NeedAppearances")):
            self.add(None, "form: /NeedAppearances turned on (viewers redraw every field from its value)")
        if not self.same(old_form.raw_get("/XFA") if "/XFA" in old_form else None,
                         new_form.raw_get("/XFA") if "/XFA" in new_form else None):
            self.add(None, "form: XFA form data changed (some viewers show the XFA form instead of the pages)")
        old_fields = self._fields(old_form.raw_get("/Fields") if "/Fields" in old_form else None)
        new_fields = self._fields(new_form.raw_get("/Fields") if "/Fields" in new_form else None)
        for key, (name, ref) in new_fields.items():
            if key not in old_fields:
                continue  # a new field shows only through its widgets: the annotation check sees them
            before, after = _resolved(old_fields[key][1]), _resolved(ref)
            if _field_type(after) == "/Sig":
                old_value = _field_value(before)
                if old_value is not None and not self.same(old_value, _field_value(after)):
                    self.add(None, f"signature field {name}: the signature in it was replaced")
                continue
            if self._changed_keys(before, after) and (_shows(before) or _shows(after)):
                self.add(_page_number(self.new, after), f"form field {name}: value or appearance settings changed")

    def _fields(self, fields: Any, prefix: str = "", depth: int = 0) -> dict[Any, tuple[str, Any]]:
        """The terminal fields by object number, with their full names."""
        found: dict[Any, tuple[str, Any]] = {}
        fields = _resolved(fields)
        if depth > 32 or not isinstance(fields, generic.ArrayObject):
            return found
        for index, item in enumerate(fields.iterate()):
            self.spend()
            field = _resolved(item)
            if not isinstance(field, generic.DictionaryObject):
                continue
            name = f"{prefix}.{field.get('/T')}" if prefix else str(field.get("/T", "(unnamed)"))
            key = (item.idnum, item.generation) if isinstance(item, generic.IndirectObject) else (prefix, index)
            kids = _resolved(field.raw_get("/Kids")) if "/Kids" in field else None
            if isinstance(kids, generic.ArrayObject) and any("/T" in _resolved(k) for k in kids.iterate()
                                                             if isinstance(_resolved(k), generic.DictionaryObject)):
                found.update(self._fields(kids, name, depth + 1))
            else:
                found[key] = (name, item)
        return found

    # --- catalog -------------------------------------------------------------------------------

    def _catalog(self) -> None:
        old, new = self.old.root, self.new.root
        for key in sorted((set(old) | set(new)) - _CATALOG_IGNORED):
            if not self.same(old.raw_get(key) if key in old else None, new.raw_get(key) if key in new else None):
                self.add(None, f"document catalog changed: {_CATALOG_KEYS.get(key, key)} ({key})")

    # --- deep comparison -----------------------------------------------------------------------

    def same(self, a: Any, b: Any, depth: int = 0) -> bool:
        """``a`` (read in the signed revision) and ``b`` (in the last one) are equal, objects they
        refer to included; page references count as equal (pages are compared one by one)."""
        self.spend()
        if depth > 100:
            raise ComparisonTooLarge("nest objects more than 100 levels deep")
        if isinstance(a, generic.IndirectObject) and isinstance(b, generic.IndirectObject):
            pair = (a.idnum, a.generation, b.idnum, b.generation)
            if pair in self.pairs:
                return self.pairs[pair]
            self.pairs[pair] = True  # under comparison: a difference is found where it is
            a_obj, b_obj = a.get_object(), b.get_object()
            if (a.idnum, a.generation) == (b.idnum, b.generation) and _is_page(a_obj) and _is_page(b_obj):
                return True
            result = self._same_direct(a_obj, b_obj, depth)
            self.pairs[pair] = result
            return result
        return self._same_direct(_resolved(a), _resolved(b), depth)

    def _same_direct(self, a: Any, b: Any, depth: int) -> bool:
        if isinstance(a, generic.StreamObject) or isinstance(b, generic.StreamObject):
            if not (isinstance(a, generic.StreamObject) and isinstance(b, generic.StreamObject)):
                return False
            if a.encoded_data != b.encoded_data:
                return False
            return self._same_dict(a, b, depth, ignore={"/Length"})
        if isinstance(a, generic.DictionaryObject) and isinstance(b, generic.DictionaryObject):
            return self._same_dict(a, b, depth)
        if isinstance(a, generic.ArrayObject) and isinstance(b, generic.ArrayObject):
            if len(a) != len(b):
                return False
            return all(self.same(x, y, depth + 1) for x, y in zip(a.iterate(), b.iterate()))
        if isinstance(a, (generic.DictionaryObject, generic.ArrayObject)) or isinstance(
                b, (generic.DictionaryObject, generic.ArrayObject)):
            return False
        return type(a) is type(b) and a == b

    def _same_dict(self, a: Any, b: Any, depth: int, ignore: set[str] | frozenset[str] = frozenset()) -> bool:
        keys_a, keys_b = set(a) - _NOT_COMPARED - ignore, set(b) - _NOT_COMPARED - ignore
        if keys_a != keys_b:
            return False
        return all(self.same(a.raw_get(key), b.raw_get(key), depth + 1) for key in keys_a)


def _resolved(obj: Any) -> Any:
    return obj.get_object() if isinstance(obj, generic.IndirectObject) else obj


def _is_page(obj: Any) -> bool:
    return isinstance(obj, generic.DictionaryObject) and obj.get("/Type") == "/Page"


def _truthy(value: Any) -> bool:
    return bool(_resolved(value)) if value is not None else False


def _inherited(field: Any, key: str) -> Any:
    depth = 0
    while isinstance(field, generic.DictionaryObject) and depth < 32:
        if key in field:
            return _resolved(field.raw_get(key))
        field = _resolved(field.raw_get("/Parent")) if "/Parent" in field else None
        depth += 1
    return None


def _field_type(annotation: Any) -> Any:
    return _inherited(annotation, "/FT")


def _field_value(annotation: Any) -> Any:
    return _inherited(annotation, "/V")


def _flags(annotation: Any) -> int:
    value = _resolved(annotation.raw_get("/F")) if "/F" in annotation else 0
    return int(value) if isinstance(value, (int, generic.NumberObject)) else 0


def _rect(annotation: Any) -> tuple[float, float, float, float] | None:
    rect = _resolved(annotation.raw_get("/Rect")) if "/Rect" in annotation else None
    if not isinstance(rect, generic.ArrayObject) or len(rect) != 4:
        return None
    try:
        x1, y1, x2, y2 = (float(_resolved(v)) for v in rect.iterate())
    except (TypeError, ValueError):
        return None
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def _visible(annotation: Any) -> bool:
    """Whether a viewer can draw the annotation: not hidden by its flags, a rectangle with an
    area (an annotation without a usable rectangle counts as visible: viewers differ)."""
    if _flags(annotation) & (_HIDDEN | _NO_VIEW):
        return False
    rect = _rect(annotation)
    return rect is None or (rect[2] - rect[0] > 0 and rect[3] - rect[1] > 0)


def _shows(field: Any) -> bool:
    """A field shows its value when it, or one of its widgets, is visible."""
    if "/Rect" in field and _visible(field):
        return True
    kids = _resolved(field.raw_get("/Kids")) if "/Kids" in field else None
    if isinstance(kids, generic.ArrayObject):
        return any(isinstance(_resolved(kid), generic.DictionaryObject) and _visible(_resolved(kid))
                   for kid in kids.iterate())
    return False


def _page_number(resolver: HistoricalResolver, widget: Any) -> int | None:
    page = widget.raw_get("/P") if "/P" in widget else None
    if not isinstance(page, generic.IndirectObject):
        return None
    for number, (ref, _) in enumerate(_Comparison(resolver, resolver, 10_000)._pages(
            resolver.root.raw_get("/Pages")), start=1):
        if isinstance(ref, generic.IndirectObject) and ref.idnum == page.idnum:
            return number
    return None


def _describe(annotation: Any) -> str:
    subtype = str(annotation.get("/Subtype", "(no subtype)"))
    if subtype != "/Widget":
        return f"{subtype} annotation"
    kind = {"/Sig": "signature field", "/Tx": "text field", "/Btn": "button field", "/Ch": "choice field"}.get(
        str(_field_type(annotation)), "form field")
    name = _inherited(annotation, "/T")
    state = ""
    if _field_type(annotation) == "/Sig":
        state = "signed " if _field_value(annotation) is not None else "unsigned "
    return f"{state}{kind}" + (f" '{name}'" if name is not None else "") + " (widget)"


def _where(annotation: Any, page: Any) -> str:
    rect = _rect(annotation)
    if rect is None:
        return "without a usable rectangle"
    box = _resolved(page.raw_get("/MediaBox")) if "/MediaBox" in page else None
    text = f"at [{rect[0]:g} {rect[1]:g} {rect[2]:g} {rect[3]:g}]"
    try:
        x1, y1, x2, y2 = (float(_resolved(v)) for v in box.iterate())  # type: ignore[union-attr]
        page_area = abs(x2 - x1) * abs(y2 - y1)
        width = max(0.0, min(rect[2], max(x1, x2)) - max(rect[0], min(x1, x2)))
        height = max(0.0, min(rect[3], max(y1, y2)) - max(rect[1], min(y1, y2)))
        if page_area > 0:
            text += f", covering {100 * width * height / page_area:.0f} % of the page"
    except (AttributeError, TypeError, ValueError):
        pass
    return text
