"""The signature policy per document kind, read from ``policy.json`` beside this file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path

from kmop.errors import SigningError

from .roles import Role


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


@cache
def _policies() -> dict[str, SignaturePolicy]:
    raw = json.loads((Path(__file__).parent / "policy.json").read_text(encoding="utf-8"))
    kinds = raw["kinds"]
    return {
        kind: SignaturePolicy(
            Role(entry["role"]), PadesLevel(entry["level"]), bool(entry["certify"]),
            tuple(signature_field_name(approval, Role(kinds[approval]["role"]))
                  for approval in entry.get("approvals", [])),
            bool(entry.get("external", False)),
        )
        for kind, entry in kinds.items()
    }


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
