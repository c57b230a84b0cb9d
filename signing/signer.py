"""Signs PDFs with pyHanko: PAdES (ETSI.CAdES.detached), one incremental update per signature."""

from __future__ import annotations

import io

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError

from kmop.errors import SigningError, TimestampUnavailable

from .identities import IdentityStore
from .policy import SignaturePolicy


class DocumentSigner:
    """Signs documents as the role a policy names, with that role's configured identity."""

    def __init__(self, identities: IdentityStore, timestamper: TimeStamper | None = None) -> None:
        self.identities = identities
        self.timestamper = timestamper

    def sign(
        self,
        pdf: bytes,
        policy: SignaturePolicy,
        *,
        field_name: str,
        reason: str,
        location: str | None = None,
    ) -> bytes:
        if policy.level.needs_timestamp and self.timestamper is None:
            raise SigningError(
                f"PAdES {policy.level.value} needs a timestamp authority and none is configured"
            )
        signer = self.identities.signer_for(policy.role)
        metadata = signers.PdfSignatureMetadata(
            field_name=field_name,
            md_algorithm="sha256",
            subfilter=SigSeedSubFilter.PADES,
            reason=reason,
            location=location,
            name=signer.signing_cert.subject.native.get("common_name"),
            certify=policy.certify,
            docmdp_permissions=MDPPerm.FILL_FORMS,
        )
        try:
            writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
            output = io.BytesIO()
            signers.sign_pdf(
                writer,
                metadata,
                signer=signer,
                timestamper=self.timestamper if policy.level.needs_timestamp else None,
                new_field_spec=fields.SigFieldSpec(field_name),
                output=output,
            )
        except TimestampRequestError as exc:
            raise TimestampUnavailable(f"timestamp authority failed: {exc}") from exc
        except (PdfError, ValueError) as exc:
            raise SigningError(f"cannot sign this PDF: {exc}") from exc
        return output.getvalue()
