"""The signature blocks of a document kind, as the signer takes them: from the kind's
``kind.json`` (templates) and the signature field names and roles of the signing policy.

It lives here, where both are known, because signing reads no template and templates know no
signing.
"""

from __future__ import annotations

from signing.placement import SignatureBlock, SignatureLayout
from signing.policy import signature_field_name
from signing.roles import Role
from templates.catalog import DocumentKind, get_kind


def signature_layout(kind: DocumentKind) -> SignatureLayout:
    """Where each signature of ``kind``'s document goes; for a kind that countersigns another,
    the blocks of the document it signs."""
    document = get_kind(kind.countersigns) if kind.countersigns else kind
    blocks = []
    for spec in document.signatures:
        role = Role(spec.role)
        blocks.append(SignatureBlock(signature_field_name(spec.kind, role), f"{role.dutch} ({role.value})", spec.label))
    return SignatureLayout(document.name, tuple(blocks))
