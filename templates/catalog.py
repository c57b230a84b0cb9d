"""The document kinds: one folder each under ``templates/``.

A kind's folder holds ``template.docx`` (docxtpl), ``schema.json`` (JSON Schema of the data the
template needs) and ``kind.json`` (title and workflow step). A kind whose ``kind.json`` names
``countersigns`` has no template: its job adds a signature to the latest document of that kind. Adding or changing a template never
needs a code change.

``signatures`` in ``kind.json`` lists where each signature of the document goes: the signer's
role, the label its block starts with in the template (the signature field is placed right
below it, see signing/placement.py) and, for a signature that another kind's job makes (the
quote's acceptance), that kind.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from kmop.errors import UnknownDocumentKind

TEMPLATES_DIR = Path(__file__).resolve().parent
_KIND_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")


@dataclass(frozen=True)
class SignatureSpec:
    role: str
    label: str
    kind: str
    """The document kind whose job makes this signature (the kind itself, or one that
    countersigns it)."""


@dataclass(frozen=True)
class DocumentKind:
    name: str
    title: str
    step: int
    template_version: str
    directory: Path
    countersigns: str | None = None  # a kind with no template: it adds a signature to that kind's document
    signatures: tuple[SignatureSpec, ...] = ()

    @property
    def template_path(self) -> Path:
        return self.directory / "template.docx"

    @property
    def schema(self) -> dict[str, Any]:
        return _load_json(self.directory / "schema.json")


@cache
def _load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def kind_names() -> list[str]:
    return sorted(p.parent.name for p in TEMPLATES_DIR.glob("*/kind.json"))


@cache
def get_kind(name: str) -> DocumentKind:
    if not isinstance(name, str) or not _KIND_NAME.fullmatch(name):
        raise UnknownDocumentKind(str(name)[:60], kind_names())
    directory = TEMPLATES_DIR / name
    manifest_path = directory / "kind.json"
    if not manifest_path.is_file():
        raise UnknownDocumentKind(name, kind_names())
    manifest = _load_json(manifest_path)
    return DocumentKind(
        name=name,
        title=manifest["title"],
        step=int(manifest["step"]),
        template_version=str(manifest["template_version"]),
        directory=directory,
        countersigns=manifest.get("countersigns"),
        signatures=_signatures(name, manifest.get("signatures", [])),
    )


def _signatures(kind: str, entries: Any) -> tuple[SignatureSpec, ...]:
    """The ``signatures`` of a kind's manifest; a malformed entry is an error naming it."""
    if not isinstance(entries, list):
        raise ValueError(f"templates/{kind}/kind.json: signatures: not a list")
    specs = []
    for number, entry in enumerate(entries):
        where = f"templates/{kind}/kind.json: signatures[{number}]"
        if not isinstance(entry, dict) or set(entry) - {"role", "label", "kind"}:
            raise ValueError(f"{where}: not an object of role, label and kind")
        role, label, signed_by = entry.get("role"), entry.get("label"), entry.get("kind", kind)
        if not all(isinstance(value, str) and value.strip() for value in (role, label, signed_by)):
            raise ValueError(f"{where}: role, label and kind must be non-empty text")
        specs.append(SignatureSpec(role, label, signed_by))
    return tuple(specs)
