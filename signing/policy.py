"""The signature policy per document kind, read from ``policy.json`` beside this file, or from
the file ``KMOP_SIGNATURE_POLICY`` names (same format, every document kind in it): a deployment's
own levels, say B-T where a timestamp authority charges per timestamp. Every process that
builds, signs or verifies documents must read the same policy."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

from kmop.errors import SigningError

from .roles import Role

POLICY_ENV = "KMOP_SIGNATURE_POLICY"
DEFAULT_POLICY_FILE = Path(__file__).parent / "policy.json"


class PadesLevel(str, Enum):
    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"

    @property
    def needs_timestamp(self) -> bool:
        return self is not PadesLevel.B_B

    @property
    def embeds_validation_info(self) -> bool:
        """B-LT and B-LTA: the chain and revocation data go into the document's DSS."""
        return self in (PadesLevel.B_LT, PadesLevel.B_LTA)

    @property
    def needs_document_timestamp(self) -> bool:
        """B-LTA: a document timestamp over the signature and its DSS."""
        return self is PadesLevel.B_LTA

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {PadesLevel.B_B: 1, PadesLevel.B_T: 2, PadesLevel.B_LT: 3, PadesLevel.B_LTA: 4}


@dataclass(frozen=True)
class SignaturePolicy:
    """Who signs a document kind, at which PAdES level, and whether the signature certifies
    the document (the first signature; later changes limited to form filling and signing) or
    approves it (an incremental update that leaves earlier signatures valid)."""

    role: Role
    level: PadesLevel
    certify: bool
    approval_fields: tuple[str, ...] = ()
    """Empty signature fields a certifying signature prepares for the approvals that follow
    (a new visible field after certification would be a change the certification forbids)."""
    external: bool = False
    """The signer may sign with its own means instead (``kmop.signing_requests``)."""


def signature_field_name(kind: str, role: Role) -> str:
    """The signature field of a kind's signature (the pipeline's naming)."""
    return f"Handtekening-{role.value}-{kind}"


class PolicyFileError(SigningError):
    """A signature policy file that cannot be used; the message names the file and the field."""


def policy_file(env: Mapping[str, str] | None = None) -> Path:
    """The policy file in force: ``KMOP_SIGNATURE_POLICY``, else the one beside this module."""
    override = (os.environ if env is None else env).get(POLICY_ENV)
    return Path(override) if override else DEFAULT_POLICY_FILE


def load_policies(path: Path) -> dict[str, SignaturePolicy]:
    """The policy of every document kind from ``path``; ``PolicyFileError`` naming what is wrong."""
    from templates.catalog import kind_names  # the kinds that exist; templates do not import signing

    def fail(where: str, reason: str) -> PolicyFileError:
        return PolicyFileError(f"signature policy {path}: {where}: {reason}")

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise fail("file", f"cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise fail("file", f"is not JSON ({exc})") from None
    kinds = raw.get("kinds") if isinstance(raw, dict) else None
    if not isinstance(kinds, dict):
        raise fail("kinds", "missing, or not an object of document kinds")
    known = kind_names()
    for kind in kinds:
        if kind not in known:
            raise fail(f"kinds.{kind}", f"not a document kind; expected one of {', '.join(known)}")
    for kind in known:
        if kind not in kinds:
            raise fail(f"kinds.{kind}", "missing: every document kind needs a policy")
        if not isinstance(kinds[kind], dict):  # before any entry is read: approvals read others'
            raise fail(f"kinds.{kind}", "not an object")

    def choice(kind: str, field: str, enum: type[Enum]) -> Any:
        value = kinds[kind].get(field)
        try:
            return enum(value)
        except ValueError:
            raise fail(f"kinds.{kind}.{field}", f"{value!r} is not one of "
                       f"{', '.join(member.value for member in enum)}") from None

    def flag(kind: str, field: str, default: bool | None = None) -> bool:
        value = kinds[kind].get(field, default)
        if not isinstance(value, bool):
            raise fail(f"kinds.{kind}.{field}", f"{value!r} is not true or false")
        return value

    policies = {}
    for kind, entry in kinds.items():
        approvals = entry.get("approvals", [])
        if not isinstance(approvals, list) or any(approval not in kinds for approval in approvals):
            raise fail(f"kinds.{kind}.approvals", f"{approvals!r} is not a list of document kinds")
        policies[kind] = SignaturePolicy(
            choice(kind, "role", Role), choice(kind, "level", PadesLevel), flag(kind, "certify"),
            tuple(signature_field_name(approval, choice(approval, "role", Role)) for approval in approvals),
            flag(kind, "external", False),
        )
    return policies


@cache
def _policies() -> dict[str, SignaturePolicy]:
    return load_policies(policy_file())


def externally_signed_kinds() -> list[str]:
    """The kinds whose signer may sign with its own means."""
    return sorted(kind for kind, policy in _policies().items() if policy.external)


def all_policies() -> tuple[SignaturePolicy, ...]:
    """The policies of every kind (what a signer may be asked to sign with)."""
    return tuple(_policies().values())


def policy_for(kind: str) -> SignaturePolicy:
    try:
        return _policies()[kind]
    except KeyError:
        raise SigningError(f"no signature policy for document kind {kind!r}") from None
