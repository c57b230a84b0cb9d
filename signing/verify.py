"""Verifies every signature in a PDF against explicit trust roots, with pyHanko's AdES validation.

Each signature goes through ``ades_lta_validation`` (ETSI EN 319 102-1 with the document
timestamps as evidence record), with diff analysis of everything added after it. The policy:

- Trust comes only from the roots given; certificates are never fetched from URLs in the file.
- Revocation is checked for every certificate that names where its status is published (CRL
  distribution point or OCSP responder), with the data embedded in the file (DSS); with
  ``online=True`` also fetched from those URLs. A B-T signature whose status cannot be had
  offline is ``INDETERMINATE``/``TRY_LATER``, never passed silently.
- The algorithm policy (``signing.algorithms``) applies to the signature, its timestamps, the
  certificates and the revocation data.
- Changes after a signature must be of a kind its certification allows (form filling, further
  signatures, DSS updates, document timestamps); anything else is a forbidden change and the
  signature is ``TOTAL-FAILED``.
- Whatever its kind, a change after a signature that alters what the pages show (a new visible
  annotation or widget, changed page content, resources or appearances, added pages, form values
  that show: ``signing.visible_changes``) makes the signature ``TOTAL-FAILED``/``FORMAT_FAILURE``,
  with the changes listed per page. A DSS, document timestamps and a signature in a field that was
  prepared (empty) in the signed revision do not.
- A signature the service made (its field named as ``signing.policy.signature_field_name`` names
  it) is held to its kind's policy over the whole file: after it come only signatures in the
  fields the policy prepares for approvals, DSS updates and document timestamps; anything else is
  ``INDETERMINATE``/``SIG_CONSTRAINTS_FAILURE``.
- The work is bounded (``signing.limits``): a file with more signatures or revisions than allowed
  is not verified, and signatures not reached within the time allowed are reported unchecked.

``verify_pdf`` never raises for bad input (truncated, malformed, encrypted, hostile files): a
problem is reported instead. No network access happens unless ``online`` is true.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import threading
import time
from datetime import datetime, timezone

from asn1crypto import crl, ocsp, x509
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESStatus
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, ModificationLevel
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.validation import DocumentSecurityStore, async_validate_pdf_timestamp
from pyhanko.sign.validation.ades import ades_lta_validation, ades_with_time_validation
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.policy_decl import (
    CertificateFetchingRule,
    LocalKnowledge,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import CertRevTrustPolicy, RevocationCheckingPolicy, RevocationCheckingRule
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer

from .algorithms import ALGORITHM_POLICY, describe_key, key_problem
from .limits import VerificationLimits, load_verification_limits
from .policy import policy_for, signature_field_name
from .report import (
    CHANGES_ALLOWED,
    CHANGES_FORBIDDEN,
    CHANGES_NONE,
    CHANGES_VISIBLE,
    FORMAT_FAILURE,
    INDETERMINATE,
    TOTAL_FAILED,
    TOTAL_PASSED,
    FileReport,
    SignatureReport,
    TimestampReport,
    render_text,
)
from .roles import Role
from .signer import role_from_urn
from .visible_changes import visible_changes

__all__ = ["FileReport", "SignatureReport", "TimestampReport", "async_verify_pdf", "render_text", "verify_pdf"]

# pyHanko logs every failed check with a traceback; the report says it in words. Without a
# handler configured by the application, keep those logs off the terminal.
for _name in ("pyhanko", "pyhanko_certvalidator"):
    logging.getLogger(_name).addHandler(logging.NullHandler())

_TAIL = 1024  # the last line must be %%EOF, give or take trailing whitespace
_INDICATION = {AdESStatus.PASSED: TOTAL_PASSED, AdESStatus.INDETERMINATE: INDETERMINATE,
               AdESStatus.FAILED: TOTAL_FAILED}


_COPYING = threading.Lock()


def own_copies(certificates: list[x509.Certificate]) -> list[x509.Certificate]:
    """Copies of shared certificate objects for one caller.

    asn1crypto parses lazily and caches as it goes, so one certificate object read by two
    threads at once can break (``KeyError: No field numbered 1``); an API process verifies in
    a thread pool with roots loaded once. The copies are made from the DER under a lock.
    """
    with _COPYING:
        encoded = [certificate.dump() for certificate in certificates]
    return [x509.Certificate.load(der) for der in encoded]


def verify_pdf(
    data: bytes,
    trust_roots: list[x509.Certificate],
    name: str = "document.pdf",
    *,
    online: bool = False,
    validation_time: datetime | None = None,
    limits: VerificationLimits | None = None,
) -> FileReport:
    """The verification report of one PDF. Never raises for bad input: problems are reported.

    :param online: also fetch revocation data (OCSP, CRL) from the URLs in the certificates.
    :param validation_time: verify as of this moment instead of now (e.g. years ahead, to check
        that a B-LTA document carries everything it needs).
    :param limits: the bounds of work; default: from the environment (``signing.limits``).
    """
    return asyncio.run(async_verify_pdf(data, trust_roots, name, online=online, validation_time=validation_time,
                                        limits=limits))


async def async_verify_pdf(
    data: bytes,
    trust_roots: list[x509.Certificate],
    name: str = "document.pdf",
    *,
    online: bool = False,
    validation_time: datetime | None = None,
    limits: VerificationLimits | None = None,
) -> FileReport:
    limits = limits or load_verification_limits()
    deadline = time.monotonic() + limits.seconds
    result = FileReport(name=name)
    if not trust_roots:
        result.problems.append("no trust root given")
        return result
    trust_roots = own_copies(trust_roots)
    if not data[-_TAIL:].rstrip(b"\x00\t\n\x0c\r ").endswith(b"%%EOF"):
        # checked before parsing: pyHanko would look for the marker byte by byte in memory
        result.problems.append("not a readable PDF: it does not end with an EOF marker "
                               "(truncated, or data appended after it)")
        return result
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        revisions = reader.xrefs.total_revisions
        if revisions > limits.max_revisions:
            result.unchecked = (f"the file has {revisions} revisions, more than the {limits.max_revisions} "
                                "verified in one file (KMOP_VERIFY_MAX_REVISIONS): no signature was checked")
            return result
        signatures = list(reader.embedded_regular_signatures)
        timestamps = list(reader.embedded_timestamp_signatures)
    except Exception as exc:  # noqa: BLE001 - hostile input: any parser failure is a verdict
        result.problems.append(f"not a readable PDF: {_message(exc)}")
        return result
    if not signatures:
        result.problems.append("the file holds no signature")
        return result
    if len(signatures) + len(timestamps) > limits.max_signatures:
        result.unchecked = (f"the file holds {len(signatures)} signatures and {len(timestamps)} document "
                            f"timestamps, more than the {limits.max_signatures} verified in one file "
                            "(KMOP_VERIFY_MAX_SIGNATURES): no signature was checked")
        return result
    timing = _timing(validation_time)
    offline_spec = _validation_spec(trust_roots, online=False)
    online_spec = _validation_spec(trust_roots, online=True) if online else None
    for index, signature in enumerate(signatures):
        if time.monotonic() > deadline:
            result.unchecked = _out_of_time(limits, signatures[index:], timestamps)
            return result
        # What the file carries decides first; the network is asked only for what is missing
        # (a fetch that fails must not spoil data the file embeds).
        report = await _assess_signature(signature, offline_spec, timing, online=False)
        if online_spec is not None and not report.ok:
            report = await _assess_signature(signature, online_spec, timing, online=True)
        result.signatures.append(report)
    for index, stamp in enumerate(timestamps):
        if time.monotonic() > deadline:
            result.unchecked = _out_of_time(limits, [], timestamps[index:])
            return result
        stamp_report = await _assess_timestamp(stamp, trust_roots, False, validation_time)
        if online and not stamp_report.ok and validation_time is None:
            stamp_report = await _assess_timestamp(stamp, trust_roots, True, None)
        result.document_timestamps.append(stamp_report)
    return result


def _out_of_time(limits: VerificationLimits, signatures: list[EmbeddedPdfSignature],
                 timestamps: list[EmbeddedPdfSignature]) -> str:
    left = [_field_name(s) for s in signatures] + [f"{_field_name(t)} (document timestamp)" for t in timestamps]
    shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
    return (f"verification stopped after {limits.seconds} s (KMOP_VERIFY_SECONDS): not checked: {shown}")


def _timing(validation_time: datetime | None) -> ValidationTimingInfo:
    if validation_time is None:
        return ValidationTimingInfo.now(tz=timezone.utc)
    return ValidationTimingInfo(validation_time=validation_time, best_signature_time=validation_time,
                                point_in_time_validation=True)


def _revocation_policy() -> CertRevTrustPolicy:
    rule = RevocationCheckingRule.CHECK_IF_DECLARED
    return CertRevTrustPolicy(RevocationCheckingPolicy(ee_certificate_rule=rule, intermediate_ca_cert_rule=rule))


def _validation_spec(trust_roots: list[x509.Certificate], online: bool) -> PdfSignatureValidationSpec:
    policy = CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=trust_roots),
        revinfo_policy=_revocation_policy(),
        algorithm_usage_policy=ALGORITHM_POLICY,
    )
    gathering = RevocationInfoGatheringSpec(
        online_fetching_rule=RevinfoOnlineFetchingRule.NO_HISTORICAL_FETCH if online
        else RevinfoOnlineFetchingRule.LOCAL_ONLY,
        certificate_fetching_rule=CertificateFetchingRule.NEVER_FETCH,
    )
    return PdfSignatureValidationSpec(
        SignatureValidationSpec(cert_validation_policy=policy, revinfo_gathering_policy=gathering,
                                signature_algorithm_policy=ALGORITHM_POLICY),
        diff_policy=DEFAULT_DIFF_POLICY,
    )


async def _assess_signature(
    signature: EmbeddedPdfSignature, spec: PdfSignatureValidationSpec, timing: ValidationTimingInfo, online: bool
) -> SignatureReport:
    """ETSI EN 319 102-1: the validation process for signatures with long-term availability
    (§ 5.6.3) when document timestamps follow the signature, else the one for signatures with
    time (§ 5.5), with the DSS contents as local knowledge."""
    report = SignatureReport(field_name=_field_name(signature))
    try:
        signature.compute_integrity_info(diff_policy=DEFAULT_DIFF_POLICY)
        if _followed_by_document_timestamp(signature):
            result = await ades_lta_validation(signature, spec, timing_info=timing)
            lta_evidence = result.oldest_evidence_record_timestamp is not None
        else:
            result = await ades_with_time_validation(
                signature.signed_data,
                dataclasses.replace(spec.signature_validation_spec, local_knowledge=_dss_knowledge(signature.reader)),
                timing_info=timing,
                raw_digest=signature.compute_digest(),
                extra_status_kwargs=signature.summarise_integrity_info(),
                status_cls=PdfSignatureStatus,
            )
            lta_evidence = False
    except Exception as exc:  # noqa: BLE001 - a signature that breaks the validator is not valid
        report.fail(TOTAL_FAILED, FORMAT_FAILURE, f"the signature cannot be validated: {_message(exc)}")
        _describe_without_status(report, signature)
        return report
    status: PdfSignatureStatus | None = result.api_status
    subindic = result.ades_subindic
    report.indication = _INDICATION[subindic.status]
    report.sub_indication = None if subindic.status is AdESStatus.PASSED else subindic.standard_name
    report.best_signature_time = _iso(result.best_signature_time)
    if status is None:
        _describe_without_status(report, signature)
        report.problems.append(_explain(report.sub_indication, result.failure_msg, online))
        return report
    _describe(report, signature, status)
    report.level = _level_reached(signature, status, lta_evidence)
    report.revocation = _revocation_text(status, signature, online)
    report.changes_after_signing = _changes(status)
    if report.indication != TOTAL_PASSED:
        failure = result.failure_msg
        if report.revocation and report.revocation.startswith("unknown"):
            failure = f"{failure}; no revocation data" if failure else "no revocation data"
        report.problems.append(_explain(report.sub_indication, failure, online, status))
    _kmop_checks(report, signature, status)
    _visible_checks(report, signature)
    _policy_checks(report, signature, status)
    return report


def _visible_checks(report: SignatureReport, signature: EmbeddedPdfSignature) -> None:
    """What the updates after the signature change on the pages (``signing.visible_changes``)."""
    changes = visible_changes(signature.reader, signature.signed_revision)
    if not changes:
        return
    report.visible_changes = [str(change) for change in changes]
    if report.changes_after_signing != CHANGES_FORBIDDEN:  # forbidden by the certification says more
        report.changes_after_signing = CHANGES_VISIBLE
    listed = "; ".join(report.visible_changes[:3]) + (
        f"; and {len(changes) - 3} more" if len(changes) > 3 else "")
    report.fail(TOTAL_FAILED, FORMAT_FAILURE,
                f"what the document shows was changed after signing ({listed}): the signed revision is intact, "
                "but a reader sees another document")


def _issued_kind(signature: EmbeddedPdfSignature) -> str | None:
    """The document kind whose signature field the signature is in, if it is one the service
    names (``Handtekening-<role>-<kind>``)."""
    name = _field_name(signature)
    if not name.startswith("Handtekening-") or name.count("-") < 2:
        return None
    kind = name.split("-", 2)[2]
    try:
        policy = policy_for(kind)
    except Exception:  # noqa: BLE001 - not a kind, or no policy: no kind's rules apply
        return None
    return kind if signature_field_name(kind, policy.role) == name else None


def _policy_checks(report: SignatureReport, signature: EmbeddedPdfSignature, status: PdfSignatureStatus) -> None:
    """For a signature the service made: what its kind's policy lets follow it, over the whole
    file (signatures in the prepared approval fields, DSS updates, document timestamps)."""
    kind = _issued_kind(signature)
    if kind is None:
        return
    policy = policy_for(kind)
    reader = signature.reader
    later = [s for s in reader.embedded_regular_signatures if s.signed_revision > signature.signed_revision]
    if later:
        prepared = {name for name, _, _ in enumerate_sig_fields(
            reader.get_historical_resolver(signature.signed_revision), filled_status=False)}
        allowed = ", ".join(f for f in policy.approval_fields if f in prepared) or "none"
        for other in later:
            name = _field_name(other)
            if name not in policy.approval_fields or name not in prepared:
                report.fail(INDETERMINATE, "SIG_CONSTRAINTS_FAILURE",
                            f"the signature policy of {kind} allows no signature in field {name} after this one "
                            f"(prepared approval fields: {allowed})")
    ceiling = ModificationLevel.FORM_FILLING if later else ModificationLevel.LTA_UPDATES
    level = status.modification_level
    if level is not None and level > ceiling:
        follows = "signatures in its prepared approval fields, " if policy.approval_fields else ""
        report.fail(INDETERMINATE, "SIG_CONSTRAINTS_FAILURE",
                    f"the signature policy of {kind} lets only {follows}DSS updates and document timestamps "
                    f"follow this signature; the file has more ({level.name})")


def _followed_by_document_timestamp(signature: EmbeddedPdfSignature) -> bool:
    return any(stamp.signed_revision > signature.signed_revision
               for stamp in signature.reader.embedded_timestamp_signatures)


def _dss_knowledge(reader: PdfFileReader) -> LocalKnowledge:
    try:
        certs = list(DocumentSecurityStore.read_dss(reader).load_certs())
    except NoDSSFoundError:
        return LocalKnowledge()
    ocsps, crls = _dss_revinfo(reader)
    return LocalKnowledge(
        known_ocsps=[item for response in ocsps for item in OCSPContainer.load_multi(response)],
        known_crls=[CRLContainer(crl_data=revocation_list) for revocation_list in crls],
        known_certs=certs,
    )


def _kmop_checks(report: SignatureReport, signature: EmbeddedPdfSignature, status: PdfSignatureStatus) -> None:
    """What pyHanko's AdES verdict leaves to the validation policy: changes after signing,
    coverage, the signature timestamp, the key."""
    if not status.intact:
        report.fail(TOTAL_FAILED, "HASH_FAILURE", "the signed content was altered (digest mismatch)")
    if status.coverage not in (SignatureCoverageLevel.ENTIRE_FILE, SignatureCoverageLevel.ENTIRE_REVISION):
        report.fail(TOTAL_FAILED, FORMAT_FAILURE, "the signature does not cover its whole revision")
    if report.changes_after_signing == CHANGES_FORBIDDEN:
        level = status.modification_level.name if status.modification_level else "unknown changes"
        report.fail(TOTAL_FAILED, FORMAT_FAILURE,
                    f"the document was changed after signing beyond what is allowed ({level})")
    ts = status.timestamp_validity
    if ts is not None and not report.timestamp_ok:
        report.fail(INDETERMINATE, "GENERIC", "the signature timestamp is not valid or not trusted")
    if ts is not None and report.timestamp_ok:
        cert = status.signing_cert
        if ts.timestamp > cert.not_valid_after:
            report.fail(INDETERMINATE, "EXPIRED",
                        f"the signer's certificate was not valid at the signing time (EXPIRED): it ended "
                        f"{_iso(cert.not_valid_after)}, the signature timestamp says {_iso(ts.timestamp)}")
        elif ts.timestamp < cert.not_valid_before:
            report.fail(INDETERMINATE, "NOT_YET_VALID",
                        f"the signer's certificate was not valid at the signing time (NOT_YET_VALID): it starts "
                        f"{_iso(cert.not_valid_before)}")
    problem = key_problem(status.signing_cert.public_key)
    if problem:
        report.fail(INDETERMINATE, "CRYPTO_CONSTRAINTS_FAILURE", f"refused by the algorithm policy: {problem}")
    if signature.sig_object.get("/SubFilter") != "/ETSI.CAdES.detached":
        subfilter = signature.sig_object.get("/SubFilter")
        report.fail(INDETERMINATE, "FORMAT_FAILURE", f"not a PAdES signature (sub-filter {subfilter})")


def _describe(report: SignatureReport, signature: EmbeddedPdfSignature, status: PdfSignatureStatus) -> None:
    cert = status.signing_cert
    report.signer = cert.subject.human_friendly
    report.signing_time = _iso(status.signer_reported_dt or _claimed_time(signature))
    report.intact = status.intact
    report.valid = status.valid
    report.trusted = status.trusted
    report.coverage = status.coverage.name if status.coverage else None
    report.modifications = status.modification_level.name if status.modification_level else None
    report.algorithm = f"{describe_key(cert.public_key)} with {status.md_algorithm.upper().replace('SHA', 'SHA-')}"
    ts = status.timestamp_validity
    if ts is not None:
        report.timestamp_time = _iso(ts.timestamp)
        report.timestamp_ok = bool(ts.intact and ts.valid and ts.trusted)
        report.timestamp_authority = _common_name(ts.signing_cert.subject)
    path = status.validation_path
    if path is not None:
        report.chain = [_common_name(c.subject) for c in reversed(list(path.iter_certs(include_root=True)))]
        report.trust_root = report.chain[-1] if report.chain else None
    report.role, report.role_name = _role(signature, status)
    report.signature_type = _signature_type(signature)


def _describe_without_status(report: SignatureReport, signature: EmbeddedPdfSignature) -> None:
    try:
        report.signer = signature.signer_cert.subject.human_friendly
    except Exception:  # noqa: BLE001 - the CMS may not even parse
        pass
    try:
        report.role, report.role_name = _role(signature, None)
        report.signature_type = _signature_type(signature)
    except Exception:  # noqa: BLE001
        pass


def _role(signature: EmbeddedPdfSignature, status: PdfSignatureStatus | None) -> tuple[str | None, str | None]:
    role: Role | None = None
    attrs = status.cades_signer_attrs if status is not None else None
    if attrs is not None and attrs.claimed_attrs is not None and "role" in attrs.claimed_attrs:
        for value in attrs.claimed_attrs["role"].attr_values:
            try:
                role = role_from_urn(str(value["role_name"].native))
            except (KeyError, ValueError, TypeError):
                role = None
            if role is not None:
                break
    if role is None:  # documents signed before the role was a signed attribute: the pipeline's field name
        parts = (signature.field_name or "").split("-")
        if len(parts) >= 2 and parts[0] == "Handtekening":
            try:
                role = Role(parts[1])
            except ValueError:
                role = None
    return (role.value, role.dutch) if role else (None, None)


def _signature_type(signature: EmbeddedPdfSignature) -> str:
    docmdp = signature.docmdp_level
    if docmdp is not None and "/Reference" in signature.sig_object:
        allowed = {1: "no changes", 2: "form filling and signing", 3: "form filling, signing and annotations"}
        return f"certification (allowed afterwards: {allowed.get(docmdp.value, docmdp.name)})"
    return "approval"


def _changes(status: PdfSignatureStatus) -> str:
    if status.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return CHANGES_NONE
    level = status.modification_level
    if status.docmdp_ok is False or level is None or level == ModificationLevel.OTHER:
        return CHANGES_FORBIDDEN
    if level == ModificationLevel.NONE:
        return CHANGES_NONE
    return CHANGES_ALLOWED


def _level_reached(signature: EmbeddedPdfSignature, status: PdfSignatureStatus, lta_evidence: bool) -> str | None:
    """The PAdES baseline level the signature reaches, judged on what validated, not on intent."""
    if signature.sig_object.get("/SubFilter") != "/ETSI.CAdES.detached":
        return None
    ts = status.timestamp_validity
    if ts is None or not (ts.intact and ts.valid and ts.trusted):
        return "B-B"
    path = status.validation_path
    if path is None or not _revinfo_embedded(signature.reader, list(path.iter_certs(include_root=False))):
        return "B-T"
    return "B-LTA" if lta_evidence else "B-LT"


def _dss_revinfo(reader: PdfFileReader) -> tuple[list[ocsp.OCSPResponse], list[crl.CertificateList]]:
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        return [], []
    ocsps = [ocsp.OCSPResponse.load(ref.get_object().read_data(DecodePurpose.OCSP_RESPONSE)) for ref in dss.ocsps]
    crls = [crl.CertificateList.load(ref.get_object().read_data(DecodePurpose.CRL)) for ref in dss.crls]
    return ocsps, crls


def _covered(cert: x509.Certificate, ocsps: list[ocsp.OCSPResponse], crls: list[crl.CertificateList]) -> str | None:
    """How the DSS covers ``cert``'s revocation status: 'OCSP ...' / 'CRL ...' / None."""
    for response in ocsps:
        try:
            data = response["response_bytes"]["response"].parsed["tbs_response_data"]
            for single in data["responses"]:
                if single["cert_id"]["serial_number"].native == cert.serial_number:
                    return f"OCSP response produced {_iso(data['produced_at'].native)}: {single['cert_status'].name}"
        except (KeyError, ValueError, TypeError, AttributeError):
            continue
    for revocation_list in crls:
        try:
            tbs = revocation_list["tbs_cert_list"]
            if tbs["issuer"] == cert.issuer:
                revoked = any(entry["user_certificate"].native == cert.serial_number
                              for entry in tbs["revoked_certificates"])
                return f"CRL of {_iso(tbs['this_update'].native)}: {'revoked' if revoked else 'not revoked'}"
        except (KeyError, ValueError, TypeError, AttributeError):
            continue
    return None


def _revinfo_embedded(reader: PdfFileReader, certs: list[x509.Certificate]) -> bool:
    try:
        ocsps, crls = _dss_revinfo(reader)
    except Exception:  # noqa: BLE001 - an unreadable DSS embeds nothing
        return False
    return bool(certs) and all(_covered(cert, ocsps, crls) for cert in certs)


def _declares_revocation(cert: x509.Certificate) -> bool:
    return bool(cert.crl_distribution_points_value or cert.ocsp_urls)


def _revocation_text(status: PdfSignatureStatus, signature: EmbeddedPdfSignature, online: bool) -> str:
    details = status.revocation_details
    if details is not None:
        whose = "an issuing CA's certificate" if details.ca_revoked else "the signer's certificate"
        return f"REVOKED: {whose} since {_iso(details.revocation_date)} ({details.revocation_reason.native})"
    cert = status.signing_cert
    try:
        ocsps, crls = _dss_revinfo(signature.reader)
        embedded = _covered(cert, ocsps, crls)
    except Exception:  # noqa: BLE001
        embedded = None
    if embedded:
        return f"good at signing time (embedded {embedded})"
    if not _declares_revocation(cert):
        return "not checked: the certificate names no revocation service and the document embeds no status"
    if status.trusted and online:
        return "good (checked online at verification time; nothing embedded)"
    return "unknown: no revocation data in the document" + ("" if online else " (offline verification)")


def _explain(sub_indication: str | None, failure: str | None, online: bool,
             status: PdfSignatureStatus | None = None) -> str:
    """The sub-indication in words; the phrases are stable (tests and users rely on them)."""
    detail = f" ({failure})" if failure else ""
    if sub_indication == "HASH_FAILURE":
        return "the signed content was altered (digest mismatch)"
    if sub_indication == "SIG_CRYPTO_FAILURE":
        return "the cryptographic signature is not valid"
    if sub_indication == "NO_CERTIFICATE_CHAIN_FOUND":
        return f"the signer's certificate does not chain to a trusted root ({sub_indication})"
    if failure and "revocation" in failure.lower() and sub_indication not in ("REVOKED", "REVOKED_NO_POE",
                                                                            "REVOKED_CA_NO_POE"):
        where = "" if online else "; the document embeds none and verification was offline"
        return f"no usable revocation data for a certificate of the chain ({sub_indication}{where})"
    if sub_indication in ("NO_CERTIFICATE_CHAIN_FOUND", "CHAIN_CONSTRAINTS_FAILURE",
                          "CERTIFICATE_CHAIN_GENERAL_FAILURE", "NO_SIGNING_CERTIFICATE_FOUND"):
        return f"the signer's certificate does not chain to a trusted root ({sub_indication})"
    if sub_indication in ("REVOKED", "REVOKED_NO_POE", "REVOKED_CA_NO_POE"):
        details = status.revocation_details if status is not None else None
        when = f" since {_iso(details.revocation_date)}" if details is not None else ""
        return f"the signer's certificate (or its CA's) was revoked{when} ({sub_indication})"
    if sub_indication in ("OUT_OF_BOUNDS_NO_POE", "OUT_OF_BOUNDS_NOT_REVOKED", "EXPIRED", "NOT_YET_VALID"):
        return f"the signer's certificate was not valid at the signing time ({sub_indication}){detail}"
    if sub_indication in ("TRY_LATER", "REVOCATION_OUT_OF_BOUNDS_NO_POE"):
        where = "" if online else "; the document embeds none and verification was offline"
        return f"no usable revocation data for a certificate ({sub_indication}{where})"
    if sub_indication in ("CRYPTO_CONSTRAINTS_FAILURE", "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"):
        return f"refused by the algorithm policy ({sub_indication}){detail}"
    if sub_indication == FORMAT_FAILURE:
        return f"the signature is malformed{detail}"
    if sub_indication == "SIG_CONSTRAINTS_FAILURE" and failure and "timestamp" in failure.lower():
        return "the signature has no timestamp (PAdES B-B); the validation policy requires B-T at least"
    return f"the signature did not pass validation ({sub_indication}){detail}"


async def _assess_timestamp(
    stamp: EmbeddedPdfSignature, trust_roots: list[x509.Certificate], online: bool, moment: datetime | None
) -> TimestampReport:
    report = TimestampReport(field_name=_field_name(stamp))
    try:
        ocsps, crls = _dss_revinfo(stamp.reader)
        context = ValidationContext(
            trust_roots=trust_roots, allow_fetching=online and moment is None, crls=crls, ocsps=ocsps,
            revinfo_policy=_revocation_policy(), algorithm_usage_policy=ALGORITHM_POLICY, moment=moment,
        )
        status = await async_validate_pdf_timestamp(stamp, context, diff_policy=DEFAULT_DIFF_POLICY)
    except Exception as exc:  # noqa: BLE001
        report.problems.append(f"the document timestamp cannot be validated: {_message(exc)}")
        return report
    report.time = _iso(status.timestamp)
    report.authority = _common_name(status.signing_cert.subject)
    report.intact, report.valid, report.trusted = status.intact, status.valid, status.trusted
    report.changes_after = _changes(status)  # type: ignore[arg-type]
    if not status.intact:
        report.problems.append("the timestamped content was altered (digest mismatch)")
    elif not status.valid:
        report.problems.append("the document timestamp's signature is not valid")
    elif not status.trusted:
        report.problems.append("the timestamp authority does not chain to a trusted root")
    if report.changes_after == CHANGES_FORBIDDEN:
        report.problems.append("the document was changed after this timestamp beyond what is allowed")
    return report


def _claimed_time(signature: EmbeddedPdfSignature) -> datetime | None:
    """The signing time the signer wrote in the signature dictionary (/M); PAdES leaves it out of
    the CMS."""
    try:
        return signature.self_reported_timestamp
    except Exception:  # noqa: BLE001
        return None


def _common_name(name: x509.Name) -> str:
    try:
        return str(name.native.get("common_name")) if name.native.get("common_name") else name.human_friendly
    except (ValueError, AttributeError):
        return name.human_friendly


def _field_name(signature: EmbeddedPdfSignature) -> str:
    try:
        return str(signature.field_name)
    except Exception:  # noqa: BLE001
        return "(unnamed)"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."
