"""Job data for hostile-input tests: a dossier step's message to change, a value set at a dotted
path, tokens of an exact length, and values full of markup and other scripts."""

from __future__ import annotations

import copy
from typing import Any

from kmop.demo import example_applicant
from kmop.jobs import DocumentJob
from kmop.scenario import dossier_steps


def message_of(kind: str) -> dict[str, Any]:
    for step in dossier_steps(example_applicant(), "positive"):
        if isinstance(step, DocumentJob) and step.kind == kind:
            return copy.deepcopy(step.to_message())
    raise LookupError(kind)


def set_at(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        data = data[int(part)] if isinstance(data, list) else data[part]
    data[int(last) if isinstance(data, list) else last] = value


def tokens(prefix: str, length: int, word: str = "Zo\u00eb") -> str:
    """Exactly ``length`` characters of numbered tokens: ``<prefix>-Zoë001 Zoë002 ...``."""
    text, number = f"{prefix}-", 1
    while len(text) < length:
        text += f"{word}{number:03d} "
        number += 1
    return text[:length]


SWORN_MARKUP = {
    "provider.name": 'M1 </w:t></w:r><w:r><w:t>injected</w:t> & "dubbel" \'enkel\' <b>vet</b> ]]> &amp; {{ x }} {% raw %}',
    "provider.legal_form": "M2 <!-- -->&#x41;",
    "provider.contact.name": "M3 Zo\u00eb Van den Broeck \u0141\u00f3d\u017a \u6771\u4eac\u90fd",
    "signatory.name": "M4 \u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 Zo\u00eb",
    "signatory.place": "M5 \u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd \u0141\u00f3d\u017a 2026",
    "provider.registered_office.street": "M6 \u0394\u03b7\u03bc\u03bf\u03ba\u03c1\u03b1\u03c4\u03af\u03b1\u03c2 1 \u041c\u043e\u0441\u043a\u0432\u0430 \u0130stanbul stra\u00dfe",
    "provider.registered_office.city": "M7 \uc11c\uc6b8 \u0e01\u0e23\u0e38\u0e07\u0e40\u0e17\u0e1e \u0939\u093f\u0928\u094d\u0926\u0940",
}
