"""Signs PDFs with pyHanko: PAdES (ETSI.CAdES.detached), one incremental update per signature.

What a signature looks like is decided by the document kind's ``SignaturePolicy``:

- B-B: the CAdES signature; B-T: plus a timestamp from the configured authority;
  B-LT: plus the chain and revocation data in the document's DSS; B-LTA: plus a document
  timestamp over all of that, so the document validates with no network, also after the
  signer's certificate has expired.
- A certifying signature (the issuing party, first signature) allows form filling and further
  signatures afterwards (DocMDP ``FILL_FORMS``); an approval signature is an incremental update
  that leaves every earlier signature valid.
- Every signature carries a visible block (signer, role, time) in the space its template
  leaves below the signer's label (``signing.placement``; the caller passes the kind's
  ``SignatureLayout``), drawn in an embedded font subset (``signing.stamp``), the role it
  was made in as a claimed signer attribute (CAdES ``signer-attributes-v2``) and a commitment
  type (proof of origin for a certification, proof of approval otherwise).

Before signing, the signer's certificate is checked against the algorithm policy and, when
trust roots are configured, validated (chain, and revocation where data is available; at B-LT
and B-LTA revocation data is required): the service does not sign with a revoked, expired or
untrusted certificate. A timestamp that cannot be had raises ``TimestampUnavailable``; no
signature is made without it.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from collections.abc import Callable, Iterable

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.ades.api import CAdESSignedAttrSpec, GenericCommitment, SignerAttrSpec
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.constants import DEFAULT_SIGNER_KEY_USAGE
from pyhanko.sign.signers.pdf_signer import (
    DSSContentSettings,
    SigDSSPlacementPreference,
    TimestampDSSContentSettings,
)
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.validation import read_certification_data
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError

from kmop.errors import SigningError, TimestampUnavailable

from .algorithms import ALGORITHM_POLICY, SIGNING_DIGEST, check_signing_certificate
from .identities import IdentityStore
from .placement import SignatureLayout, place_fields
from .policy import SignaturePolicy
from .roles import Role
from .stamp import stamp_style, text_params

ROLE_URN_PREFIX = "urn:kmop-docs:role:"
#: Seconds a signer's certificate check (and the revocation data it fetched) is reused.
REVALIDATE_AFTER = 300.0

logger = logging.getLogger(__name__)


class _OfflineRevocationAsConfigured(logging.Filter):
    """Drops pyHanko's warning that a B-LT(A) signature embeds validation data without fetching.

    That is what an identities file with ``"fetch": false`` asks for: the revocation data it
    lists is embedded, and at those levels the signer's certificate must be shown unrevoked by
    it before anything is signed (``revocation_mode="require"``), so data that is missing fails
    the signature rather than a warning. pyHanko logs it for every such signature.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_OFFLINE_REVOCATION_WARNING)


_OFFLINE_REVOCATION_WARNING = "Validation/revocation info will be embedded, but fetching is not allowed"
logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_OfflineRevocationAsConfigured())


class DocumentSigner:
    """Signs documents as the role a policy names, with that role's configured identity.

    :param identities: the identities per role, trust roots and revocation sources.
    :param timestamper: the timestamp authority (``signing.timestamping.timestamper_for``);
        required for every level above B-B.
    :param visible: draw the signature block (default): below its label when ``sign`` gets the
        kind's layout, else in the lowest free space of the last page.
    :param revalidate_after: seconds a signer's certificate check and the revocation data it
        fetched are reused (default 300).
    """

    def __init__(self, identities: IdentityStore, timestamper: TimeStamper | None = None, *,
                 visible: bool = True, revalidate_after: float = REVALIDATE_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.identities = identities
        self.timestamper = timestamper
        self.visible = visible
        self.revalidate_after = revalidate_after
        self._clock = clock
        self._contexts: dict[tuple[str, bool], tuple[float, ValidationContext]] = {}
        #: per role and with or without timestamp, the context of the last check at B-B or B-T
        self._checked: dict[tuple[str, bool], ValidationContext] = {}
        self._reserved: dict[tuple[str, str, bool, bool], int] = {}
        # The identities' certificates are asn1crypto objects, parsed lazily and cached as they
        # are read: two threads signing with them at once can break them. Signing is CPU work
        # under the GIL anyway; only a remote TSA's round trip is waited out one at a time.
        self._one_at_a_time = threading.Lock()

    def sign(
        self,
        pdf: bytes,
        policy: SignaturePolicy,
        *,
        field_name: str,
        reason: str,
        location: str | None = None,
        visible: bool | None = None,
        layout: SignatureLayout | None = None,
    ) -> bytes:
        """``pdf`` signed as ``policy`` says, in the field ``field_name``: the empty field of that
        name if there is one, else a new one below its label in ``layout`` (and, for a
        certification, the empty fields of the approvals that follow, below theirs)."""
        level = policy.level
        if level.needs_timestamp and self.timestamper is None:
            raise SigningError(f"PAdES {level.value} needs a timestamp authority and none is configured")
        visible = self.visible if visible is None else visible
        size_key = _size_key(policy, visible)
        with self._one_at_a_time:
            reserved = self._reserved.get(size_key)
            try:
                signed = self._sign(pdf, policy, field_name, reason, location, visible, reserved, layout)
            except _ReservationTooSmall:
                reserved = None
                signed = self._sign(pdf, policy, field_name, reason, location, visible, None, layout)
            if reserved is None:
                self._reserved[size_key] = _reserved_size(signed)
        return signed

    def prepare(self, pdf: bytes, policies: Iterable[SignaturePolicy]) -> int:
        """Sign ``pdf`` once for each way of signing that ``policies`` name (identity, level,
        certification) not made before, and throw the results away; the number made.

        A first signature of each way pays once what later ones reuse: pyHanko's estimate of the
        container's size (a dry-run signature, then the signed file read to measure it), the
        validation context and the signer's certificate check; about 25-30 ms of CPU each. A
        worker makes these at start instead of its first jobs of each kind. They are real
        signatures: above B-B each asks the timestamp authority for a timestamp.
        """
        made = 0
        for policy in policies:
            if _size_key(policy, self.visible) in self._reserved:
                continue
            self.sign(pdf, policy, field_name="Voorbereiding", reason="voorbereiding")
            made += 1
        return made

    def _sign(
        self,
        pdf: bytes,
        policy: SignaturePolicy,
        field_name: str,
        reason: str,
        location: str | None,
        visible: bool,
        reserved: int | None,
        layout: SignatureLayout | None = None,
    ) -> bytes:
        """One signature; ``reserved`` is the space for the CMS container (hex digits), or None
        for pyHanko's estimate (a dry-run signature, about a third of the signing time)."""
        level = policy.level
        signer = self.identities.signer_for(policy.role)
        cert = signer.signing_cert
        check_signing_certificate(cert, SIGNING_DIGEST)
        try:
            writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
            shown_name = cert.subject.native.get("common_name") or cert.subject.human_friendly
            field_name, field_spec, stamp_text = self._field(writer, pdf, policy, field_name, visible, layout,
                                                             shown_name)
            metadata = signers.PdfSignatureMetadata(
                field_name=field_name,
                md_algorithm=SIGNING_DIGEST,
                subfilter=SigSeedSubFilter.PADES,
                reason=reason,
                location=location,
                name=cert.subject.native.get("common_name"),
                certify=policy.certify,
                docmdp_permissions=MDPPerm.FILL_FORMS,
                validation_context=self._presign_context(policy, signer),
                embed_validation_info=level.embeds_validation_info,
                use_pades_lta=level.needs_document_timestamp,
                dss_settings=_DSS_SETTINGS,
                cades_signed_attr_spec=_cades_attributes(policy),
            )
            pdf_signer = signers.PdfSigner(
                metadata,
                signer=signer,
                timestamper=self.timestamper if level.needs_timestamp else None,
                stamp_style=stamp_style() if stamp_text else None,
                new_field_spec=field_spec,
            )
            output = io.BytesIO()
            pdf_signer.sign_pdf(writer, output=output, appearance_text_params=stamp_text, bytes_reserved=reserved)
        except (TimestampUnavailable, SigningError):
            raise
        except PyHankoSigningError as exc:
            if reserved is not None and _RESERVATION_EXCEEDED in str(exc):
                raise _ReservationTooSmall() from exc
            raise SigningError(f"cannot sign as {policy.role.value}: {_with_cause(exc)}") from exc
        except TimestampRequestError as exc:
            raise TimestampUnavailable(f"timestamp authority failed: {exc}") from exc
        except (PdfError, ValueError, KeyError, TypeError) as exc:
            raise SigningError(f"cannot sign this PDF: {exc}") from exc
        return output.getvalue()

    def _field(
        self, writer: IncrementalPdfFileWriter, pdf: bytes, policy: SignaturePolicy, field_name: str, visible: bool,
        layout: SignatureLayout | None, signer: str,
    ) -> tuple[str, fields.SigFieldSpec | None, dict[str, str]]:
        """The field to sign (name, spec of a new field or None for an existing one, stamp text).

        An empty field of that name (one a certification prepared) is signed as it is. After a
        certification, a new visible field would be a forbidden change, so a signature without
        a prepared field is made invisible. A certifying signature prepares the empty fields of
        the approvals its policy names (``signing.policy.signature_field_name``), each below its
        label in ``layout``.
        """
        empty = {name for name, _, _ in fields.enumerate_sig_fields(writer.prev, filled_status=False)}
        filled = {name for name, _, _ in fields.enumerate_sig_fields(writer.prev, filled_status=True)}
        text = text_params(signer, policy.role.dutch)
        if field_name in filled:
            raise SigningError(f"signature field {field_name!r} is already signed")
        if field_name in empty:
            return field_name, None, text
        if read_certification_data(writer.prev) is not None:
            logger.warning("%s: no prepared signature field after certification; signing invisibly", field_name)
            return field_name, fields.SigFieldSpec(field_name), {}
        if not visible:
            return field_name, fields.SigFieldSpec(field_name), {}
        wanted = [(field_name, f"{policy.role.dutch} ({policy.role.value})")]
        if policy.certify:
            wanted += [(approval, _signer_of(layout, approval)) for approval in policy.approval_fields
                       if approval not in empty]
        places = place_fields(pdf, layout, wanted)
        for place in places[1:]:
            prepared = fields.SigFieldSpec(place.field_name, on_page=place.page, box=place.box)
            fields.append_signature_field(writer, prepared)
        return field_name, fields.SigFieldSpec(field_name, on_page=places[0].page, box=places[0].box), text

    def _presign_context(self, policy: SignaturePolicy, signer: signers.Signer) -> ValidationContext | None:
        """The validation context pyHanko signs with: before signing it checks the signer's
        certificate (and the timestamp authority's) with it, and at B-LT and B-LTA it collects
        from it what the document embeds.

        At B-B and B-T nothing is embedded, so the check is all it is for: it is made here with
        a new context and not again while that context is kept (``_validation_context``), and
        pyHanko gets none (its check took about 1 ms of a 9-23 ms B-T signature)."""
        context = self._validation_context(policy)
        if context is None or policy.level.embeds_validation_info:
            return context
        check = (policy.role.value, policy.level.needs_timestamp)
        if self._checked.get(check) is not context:
            asyncio.run(self._check_before_signing(signer, context, policy.level.needs_timestamp))
            self._checked[check] = context  # only once passed: a failure is checked again
        return None

    async def _check_before_signing(self, signer: signers.Signer, context: ValidationContext,
                                    with_timestamp: bool) -> None:
        """pyHanko's check before signing (``PdfSigningSession.perform_presign_validation``)."""
        validator = CertificateValidator(signer.signing_cert, intermediate_certs=signer.cert_registry,
                                         validation_context=context)
        try:
            await validator.async_validate_usage(set(DEFAULT_SIGNER_KEY_USAGE))
            if with_timestamp and self.timestamper is not None:
                async for _ in self.timestamper.validation_paths(context):
                    pass
        except (PathBuildingError, PathValidationError) as exc:
            raise PyHankoSigningError("The signer's certificate could not be validated") from exc
        finally:
            await context.aclose()  # the HTTP sessions it opened, in the loop that opened them

    def _validation_context(self, policy: SignaturePolicy) -> ValidationContext | None:
        """Checks the signer's certificate before signing and collects what B-LT(A) embeds.

        One context per role and kind of level is kept for ``revalidate_after`` seconds: it
        keeps the revocation data it fetched (OCSP responses, CRLs), so a busy signer does not
        ask the responder again for every signature; a certificate revoked meanwhile stops
        signing within that time.
        """
        roots = self.identities.trust_roots
        if not roots:
            if policy.level.embeds_validation_info:
                raise SigningError(f"PAdES {policy.level.value} needs trust roots in the identities file")
            return None
        key = (policy.role.value, policy.level.embeds_validation_info)
        now = self._clock()
        kept = self._contexts.get(key)
        if kept is not None and now - kept[0] < self.revalidate_after:
            return kept[1]
        context = self._new_validation_context(policy, roots)
        self._contexts[key] = (now, context)
        return context

    def _new_validation_context(self, policy: SignaturePolicy, roots: list[asn1_x509.Certificate]) -> ValidationContext:
        revocation = self.identities.revocation
        return ValidationContext(
            trust_roots=roots,
            crls=list(revocation.crls),
            ocsps=list(revocation.ocsps),
            allow_fetching=revocation.fetch,
            revocation_mode="require" if policy.level.embeds_validation_info else "soft-fail",
            algorithm_usage_policy=ALGORITHM_POLICY,
        )


_RESERVATION_EXCEEDED = "larger than expected"

#: B-LTA in two revisions instead of three: the timestamp authority's chain and revocation data
#: are known before the document timestamp is taken, so they go into the DSS of the timestamp's
#: own revision (with the signature's), not into a third revision written after it. The VRI
#: dictionary, deprecated in PAdES, is then left out for the timestamp only (its key would be
#: the timestamp's own contents).
_DSS_SETTINGS = DSSContentSettings(
    placement=SigDSSPlacementPreference.TOGETHER_WITH_NEXT_TS,
    next_ts_settings=TimestampDSSContentSettings(include_vri=False, update_before_ts=True),
)


class _ReservationTooSmall(Exception):
    """The container outgrew the space reserved from an earlier signature's estimate."""


def _size_key(policy: SignaturePolicy, visible: bool) -> tuple[str, str, bool, bool]:
    """What a signature's size depends on: signatures alike in these reuse one reservation."""
    return policy.role.value, policy.level.value, policy.certify, visible


def _reserved_size(signed: bytes) -> int:
    """The space pyHanko reserved for the last signature's container, in hex digits.

    Signatures by the same identity at the same level differ in size by a few bytes (times,
    serial numbers, the timestamp token) and pyHanko's estimate keeps a 50 % margin, so later
    signatures reuse it instead of building a dry-run container each time; one that does not
    fit is made again with a fresh estimate.
    """
    signature = PdfFileReader(io.BytesIO(signed), strict=False).embedded_regular_signatures[-1]
    return 2 * len(signature.sig_object["/Contents"].original_bytes)


def _signer_of(layout: SignatureLayout | None, field_name: str) -> str:
    block = layout.block(field_name) if layout is not None else None
    return block.signer if block is not None else field_name


def role_from_urn(value: str) -> Role | None:
    if value.startswith(ROLE_URN_PREFIX):
        try:
            return Role(value[len(ROLE_URN_PREFIX):])
        except ValueError:
            return None
    return None


def _cades_attributes(policy: SignaturePolicy) -> CAdESSignedAttrSpec:
    role = cms.AttCertAttribute({
        "type": "role",
        "values": [cms.RoleSyntax({"role_name": asn1_x509.GeneralName(
            name="uniform_resource_identifier", value=ROLE_URN_PREFIX + policy.role.value)})],
    })
    commitment = GenericCommitment.PROOF_OF_ORIGIN if policy.certify else GenericCommitment.PROOF_OF_APPROVAL
    return CAdESSignedAttrSpec(
        commitment_type=commitment.asn1,
        signer_attributes=SignerAttrSpec(claimed_attrs=[role], certified_attrs=[]),
    )


def _with_cause(exc: BaseException) -> str:
    message = str(exc)
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in message:
        message = f"{message}: {cause}"
    return message
