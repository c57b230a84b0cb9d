"""Characters a reader of a signed document cannot see are refused in the data, naming the field:
every character of Unicode general category Cf (format), Zl and Zp (line and paragraph
separators), besides the control characters refused before (tests/test_hostile_input.py).
"""

from __future__ import annotations

import copy
import sys
import unicodedata
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmop.demo import example_applicant
from kmop.errors import InvalidJob
from kmop.jobs import DocumentJob, parse_job
from kmop.scenario import dossier_steps

# What the issue found passing into names, and the other invisible characters a name could hide.
NAMED = {
    "\u200f": "RIGHT-TO-LEFT MARK", "\u061c": "ARABIC LETTER MARK", "\u200b": "ZERO WIDTH SPACE",
    "\u00ad": "SOFT HYPHEN", "\ufeff": "ZERO WIDTH NO-BREAK SPACE", "\u2028": "LINE SEPARATOR",
    "\u2029": "PARAGRAPH SEPARATOR", "\u200e": "LEFT-TO-RIGHT MARK", "\u200c": "ZERO WIDTH NON-JOINER",
    "\u200d": "ZERO WIDTH JOINER", "\u2060": "WORD JOINER", "\u180e": "MONGOLIAN VOWEL SEPARATOR",
    "\U000e0041": "TAG LATIN CAPITAL LETTER A",
}
FIELDS = ["signatory.name", "provider.name", "provider.contact.name", "signatory.place"]


@cache
def _sworn_statement() -> dict[str, Any]:
    for step in dossier_steps(example_applicant()):
        if isinstance(step, DocumentJob) and step.kind == "sworn_statement":
            return step.to_message()
    raise LookupError("sworn_statement")


def _with(path: str, value: str) -> dict[str, Any]:
    message = copy.deepcopy(_sworn_statement())
    target = message["data"]
    *parents, last = path.split(".")
    for part in parents:
        target = target[part]
    target[last] = value
    return message


@pytest.mark.parametrize("character", sorted(NAMED))
@pytest.mark.parametrize("path", FIELDS)
def test_each_invisible_character_is_refused_naming_the_field_and_the_character(character: str, path: str) -> None:
    with pytest.raises(InvalidJob) as refused:
        parse_job(_with(path, f"Jan{character}Peeters"))
    assert refused.value.field == f"data.{path}"
    assert f"U+{ord(character):04X}" in refused.value.reason
    assert NAMED[character].lower() in refused.value.reason.lower()


@cache
def _by_category() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for point in range(sys.maxunicode + 1):
        character = chr(point)
        found.setdefault(unicodedata.category(character), []).append(character)
    return found


invisible = st.sampled_from(sorted({c for cat in ("Cf", "Zl", "Zp") for c in _by_category()[cat]}))
visible = st.characters(categories=("L", "M", "N", "P", "S", "Zs"))


@settings(max_examples=300, deadline=None, database=None)
@given(character=invisible, before=st.text(visible, max_size=20), after=st.text(visible, max_size=20),
       path=st.sampled_from(FIELDS))
def test_any_character_of_category_cf_zl_or_zp_is_refused(character: str, before: str, after: str, path: str) -> None:
    """Text of the visible categories around it (letters, marks, digits, punctuation, symbols,
    spaces of every script) is not what is refused: the reason names the invisible character."""
    with pytest.raises(InvalidJob) as refused:
        parse_job(_with(path, f"X{before}{character}{after}"))
    assert refused.value.field == f"data.{path}"
    assert f"U+{ord(character):04X}" in refused.value.reason


def test_every_character_of_the_categories_is_refused() -> None:
    from templates.validation import refusal_of

    categories = _by_category()
    unrefused = [f"U+{ord(c):04X}" for cat in ("Cf", "Zl", "Zp") for c in categories[cat] if refusal_of(c) is None]
    assert unrefused == []
