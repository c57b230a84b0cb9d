"""The document kinds: one folder each under ``templates/``.

A kind's folder holds ``template.docx`` (docxtpl), ``schema.json`` (JSON Schema of the data the
template needs) and ``kind.json`` (title and workflow step). A kind whose ``kind.json`` names
``countersigns`` has no template: its job adds a signature to the latest document of that kind. Adding or changing a template never
needs a code change.
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
class DocumentKind:
    name: str
    title: str
    step: int
    template_version: str
    directory: Path
    countersigns: str | None = None  # a kind with no template: it adds a signature to that kind's document

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
    )
