"""A template's .docx package, read once per process; a render writes only the parts it changes.

docxtpl renders a template by opening it with python-docx (unzip, parse every XML part), putting
the rendered body, headers and footers in, and saving through python-docx (serialize every XML
part again, rebuild the relationships, deflate every entry): three quarters of a render, for
parts that never change. Here the package is read once; a render runs docxtpl's own passes on
the parts docxtpl renders (body, headers, footers: ``patch_xml``, ``render_xml_part``,
``fix_docpr_ids``, and ``fix_tables`` where tags can reshape a table), and writes the other
entries as they are in the template, but for the styles:
a template made by python-docx or saved by Word carries some 160 style definitions and a table
of latent styles, and LibreOffice imports every one on every conversion (a quarter of a one-page
conversion, about 30 ms); the styles the template does not refer to are dropped once, when it is
read (the pages come out the same, pixel for pixel: tests/test_templates.py). The .docx only
travels to LibreOffice, so entries are stored, not deflated.

The rendered body goes into the document part as docxtpl's passes leave it, between the
document's serialized start and end (``_DocumentFrame``), where docxtpl parses it, puts the tree
into the document and serializes the whole part again: the same XML (tests/test_templates.py
compares both canonicalized), without a parse and a serialization that cost the 20-page
preparation pack 11.9 of its 18.8 ms. Only where a pass works on the tree (``fix_tables`` for
a reshaped table, ``fix_docpr_ids`` for a drawing) is the body parsed, as docxtpl parses it.

docxtpl also renders the core properties and footnotes; a template with tags there is refused
when it is read, naming the part. What docxtpl can add to a package (pictures, sub-documents,
hyperlinks) needs objects in the context, which a JSON job cannot hold.
"""

from __future__ import annotations

import copy
import io
import posixpath
import re
import zipfile
from dataclasses import dataclass
from typing import Any, Protocol

import jinja2
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.oxml import serialize_part_xml
from docx.oxml.parser import parse_xml
from lxml import etree

from kmop.errors import RenderError

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOCUMENT_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
_JINJA_MARKS = ("{{", "{%", "{#")


class TemplatePasses(Protocol):
    """The docxtpl passes a render runs: a ``DocxTemplate`` has them, no document needed."""

    docx_ids_index: int

    def patch_xml(self, src_xml: str) -> str: ...

    def render_xml_part(self, src_xml: str, part: Any, context: dict[str, Any], jinja_env: Any) -> str: ...

    def fix_tables(self, xml: str) -> etree._Element: ...

    def fix_docpr_ids(self, tree: etree._Element) -> None: ...


@dataclass(frozen=True)
class DocxPackage:
    name: str
    entries: tuple[tuple[zipfile.ZipInfo, bytes], ...]  # as in the template, uncompressed
    document_part: str
    document_frame: _DocumentFrame
    body_xml: str  # the body as docxtpl reads it
    headers_footers: tuple[tuple[str, str], ...]  # part name, its XML as docxtpl reads it
    reshapes_tables: bool  # the body has tags that add or remove cells (``tables_reshaped_by``)

    @property
    def part_sources(self) -> tuple[str, ...]:
        """The XML of the parts a render runs through Jinja: the body, headers and footers."""
        return (self.body_xml, *(xml for _, xml in self.headers_footers))

    @classmethod
    def read(cls, name: str, docx: bytes) -> DocxPackage:
        """Read a template; RenderError if it is not a .docx or templates what is not rendered."""
        try:
            with zipfile.ZipFile(io.BytesIO(docx)) as archive:
                entries = tuple((info, archive.read(info)) for info in archive.infolist())
            return cls._read(name, entries)
        except (zipfile.BadZipFile, OSError, etree.XMLSyntaxError) as exc:
            raise RenderError(f"template {name!r} is not a .docx: {exc}") from exc

    @classmethod
    def _read(cls, name: str, entries: tuple[tuple[zipfile.ZipInfo, bytes], ...]) -> DocxPackage:
        blobs = {info.filename: blob for info, blob in entries}
        document_part = _target(blobs, "", _DOCUMENT_TYPE, name)[0]
        parts = _target(blobs, document_part, RT.HEADER, name) + _target(blobs, document_part, RT.FOOTER, name)
        for part_name, blob in blobs.items():
            if part_name in (document_part, *parts) or not part_name.endswith(".xml"):
                continue
            if any(mark.encode() in blob for mark in _JINJA_MARKS):
                raise RenderError(f"template {name!r}: {part_name} holds template tags, which are only "
                                  "rendered in the body, headers and footers")

        root = parse_xml(blobs[document_part])
        body = root.find(f"{{{_W}}}body")
        if body is None:
            raise RenderError(f"template {name!r}: {document_part} has no body")
        body_xml = etree.tostring(body, encoding="unicode")
        frame = _DocumentFrame.around(name, root, body)
        headers_footers = tuple(
            (part, etree.tostring(parse_xml(blobs[part]), encoding="unicode")) for part in parts if blobs[part]
        )
        # the styles part, and Word's copy of it for Word 2010 (stylesWithEffects.xml)
        trees = {part: etree.fromstring(blob) for part, blob in blobs.items() if part.endswith(".xml")}
        styles_parts = {part for part, tree in trees.items() if tree.tag == f"{{{_W}}}styles"}
        referenced = {element.get(f"{{{_W}}}val") for part, tree in trees.items() if part not in styles_parts
                      for element in tree.iter(*_STYLE_REFERENCES)}
        entries = tuple((info, slim_styles(blob, referenced) if info.filename in styles_parts else blob)
                        for info, blob in entries)
        return cls(name, entries, document_part, frame, body_xml, headers_footers, tables_reshaped_by(body_xml))

    def render(self, passes: TemplatePasses, context: dict[str, Any], jinja_env: jinja2.Environment) -> bytes:
        """The rendered .docx; jinja2's errors pass through."""

        def render_part(xml: str) -> str:
            return passes.render_xml_part(passes.patch_xml(xml), None, context, jinja_env)

        passes.docx_ids_index = 1000  # where docxtpl starts numbering drawings
        body = render_part(self.body_xml)
        if self.reshapes_tables or _DRAWING_ID in body:
            if self.reshapes_tables:
                tree = passes.fix_tables(body)
            else:  # parsed as fix_tables parses it
                tree = etree.fromstring(body, etree.XMLParser(recover=True))
            passes.fix_docpr_ids(tree)
            document = self.document_frame.with_tree(tree)
        else:
            document = self.document_frame.with_text(body)
        rendered = {self.document_part: document}
        for part, xml in self.headers_footers:
            rendered[part] = serialize_part_xml(parse_xml(render_part(xml).encode("utf-8")))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for info, blob in self.entries:
                archive.writestr(_stored(info), rendered.get(info.filename, blob))
        return out.getvalue()


_DRAWING_ID = "docPr"  # the element whose ids ``fix_docpr_ids`` renumbers (``wp:docPr``)


@dataclass(frozen=True)
class _DocumentFrame:
    """The document part serialized around its body: the bytes before and after it."""

    head: bytes
    tail: bytes
    root: etree._Element  # the document element, its body an empty placeholder
    body_index: int

    @classmethod
    def around(cls, name: str, root: etree._Element, body: etree._Element) -> _DocumentFrame:
        shell = copy.deepcopy(root)
        body_index = root.index(body)
        shell.replace(shell[body_index], etree.Element(f"{{{_W}}}body"))
        empty_body = f"<{body.prefix}:body/>".encode() if body.prefix else b"<body/>"
        head, placeholder, tail = serialize_part_xml(shell).partition(empty_body)
        if not placeholder or empty_body in tail:
            raise RenderError(f"template {name!r}: the document's body cannot be told apart from the rest")
        return cls(head, tail, shell, body_index)

    def with_text(self, body: str) -> bytes:
        """The part with ``body``, a ``w:body`` element's XML, as its body."""
        return self.head + body.encode("utf-8") + self.tail

    def with_tree(self, body: etree._Element) -> bytes:
        document = copy.deepcopy(self.root)
        document.replace(document[self.body_index], body)
        return serialize_part_xml(document)


#: docxtpl's tags that shape a row's cells: a column loop or condition (``{%tc ...%}``), a
#: cell's span (``{% colspan ... %}``), a horizontal or vertical merge (``{% hm %}``,
#: ``{% vm %}``); found in the text with Word's markup between the characters of a tag
#: removed, as docxtpl finds them.
_CELL_TAGS = re.compile(r"[{][%{#]-?\s*(?:tc\s|colspan\b|hm\b|vm\b)")
_MARKUP = re.compile(r"<[^>]*>")


def tables_reshaped_by(body_xml: str) -> bool:
    """Whether rendering can leave a table's rows with other cells than its grid declares.

    docxtpl's ``fix_tables`` then corrects the grid (``w:gridCol``); without such tags every
    rendered row has the cells its template row has, there is nothing to correct, and the pass
    (every row of every table walked in Python) is left out: the preparation pack renders in
    22.3 ms instead of 26.5, the one-page kinds 0.2-0.5 ms faster. The check errs towards
    running it: a tag in a paragraph it does not apply to counts.
    """
    return _CELL_TAGS.search(_MARKUP.sub("", body_xml)) is not None


_STYLE_REFERENCES = {f"{{{_W}}}{tag}" for tag in ("pStyle", "rStyle", "tblStyle", "numStyleLink", "styleLink")}
_STYLE_LINKS = tuple(f"{{{_W}}}{tag}" for tag in ("basedOn", "link", "next"))


def slim_styles(styles: bytes, referenced: set[str | None]) -> bytes:
    """The styles part with only the ``referenced`` styles, the default ones and the styles
    those derive from or link to; without the latent style table."""
    root = parse_xml(styles)
    by_id = {style.get(f"{{{_W}}}styleId"): style for style in root.iter(f"{{{_W}}}style")}
    wanted = {style_id for style_id, style in by_id.items() if style.get(f"{{{_W}}}default") in ("1", "true")}
    wanted |= referenced
    frontier = list(wanted)
    while frontier:
        style = by_id.get(frontier.pop())
        for link in () if style is None else style.iterchildren(*_STYLE_LINKS):
            if link.get(f"{{{_W}}}val") not in wanted:
                wanted.add(link.get(f"{{{_W}}}val"))
                frontier.append(link.get(f"{{{_W}}}val"))
    for style_id, style in by_id.items():
        if style_id not in wanted:
            root.remove(style)
    for latent in root.findall(f"{{{_W}}}latentStyles"):
        root.remove(latent)
    return serialize_part_xml(root)


def _stored(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(info.filename, info.date_time)
    entry.external_attr = info.external_attr
    return entry


def _rels_name(part: str) -> str:
    folder, file = posixpath.split(part)
    return posixpath.join(folder, "_rels", f"{file}.rels")


def _relationships(rels: bytes | None) -> list[etree._Element]:
    if rels is None:
        return []
    return list(etree.fromstring(rels).iter(f"{{{_RELS}}}Relationship"))


def _target(blobs: dict[str, bytes], source: str, reltype: str, name: str) -> list[str]:
    """The part names ``source`` (a part name, or "" for the package) relates to with ``reltype``."""
    folder = posixpath.dirname(source)
    targets = []
    for relationship in _relationships(blobs.get(_rels_name(source))):
        if relationship.get("Type") != reltype or relationship.get("TargetMode") == "External":
            continue
        target = relationship.get("Target", "")
        part = posixpath.normpath(target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target))
        if part not in blobs:
            raise RenderError(f"template {name!r}: {source or 'the package'} relates to {part}, which is missing")
        targets.append(part)
    if source == "" and not targets:
        raise RenderError(f"template {name!r} has no main document part")
    return targets
