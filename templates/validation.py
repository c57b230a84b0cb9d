"""Validates a job's template data against its kind's JSON Schema.

Besides the standard formats (``date``, ``email``) the schemas may use ``be-enterprise-number``,
``iban`` and ``bic``. Strings may not hold control characters (other than tab and newline): they
cannot be written into a document faithfully. Nor may they hold what a reader of the signed
document cannot see: any character of Unicode general category Cf (format: bidirectional
overrides, isolates and marks, zero-width space and joiners, soft hyphen, byte-order mark,
tag characters) or Zl/Zp (line and paragraph separators). A name that shows one way and is
another ("Jan\u200bPeeters" is not "JanPeeters"), or text that a viewer reorders, must not be
signed. No Dutch, French or German name needs one: a soft hyphen only marks where a word
may break, and the joiners serve scripts our documents do not print.

jsonschema decides and explains; data is first put to the same schema compiled to Python by
fastjsonschema, which is some twenty times faster on a long list (the pack's 830 rows) and
whose format checks are jsonschema's own. What it accepts is accepted; anything it refuses,
or fails on, goes to jsonschema, whose answer stands and whose best match names the field. So
the compiled check may be stricter than jsonschema (it is: a ``$`` in a pattern does not
match before a final newline there) but never more lenient, which the property tests check.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from functools import cache
from collections.abc import Callable
from typing import Any
from urllib.parse import urldefrag, urljoin

import fastjsonschema
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from kmop.errors import InvalidJob
from kmop.identifiers import BIC_PATTERN, InvalidIdentifier, normalise_enterprise_number, normalise_iban

from .catalog import TEMPLATES_DIR, DocumentKind

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# Explicit bidirectional overrides and isolates let a signed name display differently from the
# data (U+202E turns "evil" into "live"); natural right-to-left text does not need them.
_BIDI_CONTROL = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
_MAX_REASON = 200

format_checker = FormatChecker()


@format_checker.checks("be-enterprise-number", raises=InvalidIdentifier)
def _enterprise_number(value: object) -> bool:
    return not isinstance(value, str) or bool(normalise_enterprise_number(value))


@format_checker.checks("iban", raises=InvalidIdentifier)
def _iban(value: object) -> bool:
    return not isinstance(value, str) or bool(normalise_iban(value))


@format_checker.checks("bic")
def _bic(value: object) -> bool:
    return not isinstance(value, str) or bool(BIC_PATTERN.fullmatch(value))


def _field_path(error: ValidationError, root: str) -> str:
    parts = [root]
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    if error.validator == "required":
        missing = re.match(r"'([^']+)'", error.message)
        if missing:
            parts.append(f".{missing.group(1)}")
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(str(key) for key in error.instance if key not in allowed)
        if extra:
            parts.append(f".{extra[0]}")
    return "".join(parts)


def _reason(error: ValidationError) -> str:
    if error.validator == "required":
        return "is required"
    if error.validator == "additionalProperties":
        return "is not a field of this document kind"
    if error.validator == "format" and error.cause is not None:
        return f"is not a valid {error.validator_value}: {error.cause}"
    if error.validator == "maxLength":
        return f"is too long (at most {error.validator_value} characters)"
    if error.validator == "minLength":
        return f"is too short (at least {error.validator_value} characters)"
    if error.validator == "not" and error.validator_value == {}:
        return "is not allowed here"
    if error.validator == "const":
        return f"must be {json.dumps(error.validator_value)}"
    message = error.message
    return message if len(message) <= _MAX_REASON else message[: _MAX_REASON - 1] + "…"


INVISIBLE_CATEGORIES = frozenset({"Cf", "Zl", "Zp"})


def _class_of(code_points: list[int]) -> str:
    """A regular-expression character class of ``code_points``, as ranges."""
    parts, start, end = [], None, None
    for point in code_points + [-2]:
        if start is not None and point == end + 1:
            end = point
            continue
        if start is not None:
            parts.append(f"\\U{start:08x}" if start == end else f"\\U{start:08x}-\\U{end:08x}")
        start = end = point
    return "[" + "".join(parts) + "]"


@cache
def _invisible() -> re.Pattern[str]:
    """Every character of the invisible categories in this Python's Unicode database."""
    points = [c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in INVISIBLE_CATEGORIES]
    return re.compile(_class_of(points))


@cache
def _refused() -> re.Pattern[str]:
    return re.compile(f"{_CONTROL.pattern}|{_invisible().pattern}")


def _any_refused(value: Any) -> bool:
    """Whether some string in ``value`` holds a refused character (no paths built: most data
    has none, and a long list's paths cost more than its check)."""
    refused = _refused()
    if isinstance(value, str):
        return refused.search(value) is not None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:
        if isinstance(item, str):
            if refused.search(item) is not None:
                return True
        elif _any_refused(item):
            return True
    return False


def refusal_of(text: str) -> str | None:
    """Why ``text`` may not be printed in a document, None when it may."""
    found = _CONTROL.search(text)
    if found:
        return f"contains the control character U+{ord(found.group()):04X}"
    found = _BIDI_CONTROL.search(text)
    if found:
        return f"contains the bidirectional formatting character U+{ord(found.group()):04X}"
    found = _invisible().search(text)
    if found:
        character = found.group()
        name = unicodedata.name(character, "unnamed")
        if unicodedata.category(character) == "Cf":
            return f"contains the invisible formatting character U+{ord(character):04X} ({name})"
        return (f"contains the {name.lower()} U+{ord(character):04X}; only a line feed (U+000A) "
                "breaks a line, where the field allows several")
    return None


def _check_strings(value: Any, path: str) -> None:
    if not _any_refused(value):
        return
    _name_refused(value, path)


def _name_refused(value: Any, path: str) -> None:
    if isinstance(value, str):
        reason = refusal_of(value)
        if reason is not None:
            raise InvalidJob(path, reason)
    elif isinstance(value, dict):
        for key, item in value.items():
            _name_refused(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _name_refused(item, f"{path}[{index}]")


_ANNOTATIONS = {"title", "description", "$comment", "examples", "default", "deprecated"}


@cache
def _common_schema() -> dict[str, Any]:
    return json.loads((TEMPLATES_DIR / "common.schema.json").read_text(encoding="utf-8"))


def inline_refs(schema: dict[str, Any], resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``schema`` with every ``$ref`` replaced by what it points to (in itself or ``resources``,
    by ``$id``). jsonschema looks a reference up in its registry each time it meets it, which
    was most of the time spent on a long list (the pack's 830 rows: 62 ms -> 25 ms)."""
    documents = {**resources, schema.get("$id", ""): schema}

    def resolve(node: Any, base: str, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, base, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return {key: resolve(value, base, seen) for key, value in node.items()}
        target_uri = urljoin(base, ref)
        if target_uri in seen:
            raise ValueError(f"schema {base}: recursive $ref {ref!r} cannot be inlined")
        document_uri, pointer = urldefrag(target_uri)
        target: Any = documents[document_uri]
        for part in filter(None, pointer.split("/")):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        inlined = resolve(target, document_uri, (*seen, target_uri))
        siblings = {key: resolve(value, base, seen) for key, value in node.items() if key != "$ref"}
        if siblings.keys() <= _ANNOTATIONS:
            return {**inlined, **siblings}
        return {"allOf": [inlined, siblings]}

    return resolve(schema, schema.get("$id", ""), ())


@cache
def _inlined_schema(kind: DocumentKind) -> dict[str, Any]:
    common = _common_schema()
    return inline_refs(kind.schema, {common["$id"]: common})


@cache
def _validator(kind: DocumentKind) -> Draft202012Validator:
    return Draft202012Validator(_inlined_schema(kind), format_checker=format_checker)


def _format_check(name: str) -> Callable[[str], bool]:
    return lambda value: format_checker.conforms(value, name)


@cache
def _compiled(kind: DocumentKind) -> Callable[[Any], Any]:
    """fastjsonschema's form of the kind's schema, checking formats as jsonschema does."""
    return fastjsonschema.compile(
        _inlined_schema(kind),
        formats={name: _format_check(name) for name in format_checker.checkers},
        use_default=False,  # never fill defaults into the job's data
        use_formats=True,
    )


def prepare_validation(kind: DocumentKind) -> None:
    """Compile the kind's schema now (30-60 ms) rather than for its first job."""
    _compiled(kind)


def passes_compiled_check(kind: DocumentKind, data: Any) -> bool:
    """Whether the compiled schema accepts ``data`` (False: jsonschema is to decide)."""
    try:
        _compiled(kind)(data)
    except Exception:  # noqa: BLE001 - a refusal or a failure alike leave the decision to jsonschema
        return False
    return True


def validate_data(kind: DocumentKind, data: Any, root: str = "data") -> None:
    """Raise ``InvalidJob`` naming the most relevant offending field (jsonschema's best match)."""
    if not passes_compiled_check(kind, data):
        error = best_match(_validator(kind).iter_errors(data))
        if error is not None:
            raise InvalidJob(_field_path(error, root), _reason(error))
    _check_strings(data, root)
