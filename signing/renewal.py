"""Archive timestamp renewal: keeping a B-LTA document verifiable after its timestamps age.

A B-LTA document proves its signatures with the validation data in its DSS, sealed by a document
timestamp. That proof holds while the last document timestamp can itself be validated: until
its authority's certificate expires (or its algorithms are broken). Before then the archive adds
the validation data of that last timestamp to the DSS and seals everything with a new document
timestamp (ETSI EN 319 142-1, PAdES-B-LTA "augmentation"), as EU DSS and SignServer do for the
documents they keep. pyHanko does the work: ``PdfTimeStamper.update_archival_timestamp_chain``.

A renewal is an incremental update: the earlier bytes are a prefix of the renewed file and every
earlier signature and timestamp stays as it was.

When is a document due (``check_renewal``)?

- its latest document timestamp's authority certificate expires within ``margin`` (default a
  year; once that certificate has expired the timestamp no longer validates and renewing is
  too late);
- or it carries signatures but no document timestamp at all: the validation data of its
  signatures is added first, then a first document timestamp.

How often a renewed document is renewed again is the archive's decision (``kmop.renewals``).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.validation import add_validation_info
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathError, ValidationError

from kmop.errors import SigningError, TimestampUnavailable

from .algorithms import ALGORITHM_POLICY
from .identities import IdentityStore

DEFAULT_MARGIN = dt.timedelta(days=365)


@dataclass(frozen=True)
class RenewalCheck:
    due: bool
    reason: str
    timestamp_time: dt.datetime | None = None
    """When the latest document timestamp was made (None: the document has none)."""
    authority_expires: dt.datetime | None = None
    """When that timestamp's authority certificate expires."""


def check_renewal(pdf: bytes, margin: dt.timedelta = DEFAULT_MARGIN, now: dt.datetime | None = None) -> RenewalCheck:
    """Whether ``pdf`` needs a new document timestamp now (see the module's description)."""
    if margin < dt.timedelta(0):
        raise ValueError("margin: must not be negative")
    now = now or dt.datetime.now(dt.timezone.utc)
    reader = _reader(pdf)
    stamps = reader.embedded_timestamp_signatures
    if not stamps:
        if reader.embedded_regular_signatures:
            return RenewalCheck(True, "signed but without a document timestamp")
        return RenewalCheck(False, "no signatures to preserve")
    last = stamps[-1]
    made = _stamp_time(last)
    expires = last.signer_cert.not_valid_after
    left = expires - now
    if left > margin:
        return RenewalCheck(False, f"timestamp authority certificate valid until {expires:%Y-%m-%d}, "
                                   f"more than {margin.days} days away", made, expires)
    when = f"expired on {expires:%Y-%m-%d}" if left <= dt.timedelta(0) else f"expires on {expires:%Y-%m-%d}"
    return RenewalCheck(True, f"timestamp authority certificate {when}, within {margin.days} days", made, expires)


def renew(pdf: bytes, identities: IdentityStore, timestamper: TimeStamper) -> bytes:
    """``pdf`` with the validation data of its latest document timestamp (or, without one, of
    its signatures) in the DSS and a new document timestamp from ``timestamper`` over it all."""
    context = archival_validation_context(identities)
    try:
        reader = _reader(pdf)
        if not reader.embedded_timestamp_signatures:
            for index in range(len(reader.embedded_regular_signatures)):
                signature = _reader(pdf).embedded_regular_signatures[index]
                pdf = add_validation_info(signature, context, output=io.BytesIO()).getvalue()
            reader = _reader(pdf)
        output = PdfTimeStamper(timestamper).update_archival_timestamp_chain(
            reader, context, in_place=False, output=io.BytesIO())
    except TimestampUnavailable:
        raise
    except TimestampRequestError as exc:
        raise TimestampUnavailable(f"timestamp authority failed: {exc}") from exc
    except (PathError, ValidationError, SignatureValidationError) as exc:
        raise SigningError(f"cannot renew: the latest timestamp or a signature does not validate ({exc})") from exc
    except (PyHankoSigningError, PdfError, ValueError, KeyError, TypeError) as exc:
        raise SigningError(f"cannot renew this PDF: {exc}") from exc
    return output.getvalue()


def archival_validation_context(identities: IdentityStore) -> ValidationContext:
    """Validation against the configured roots; revocation data is required (it goes into the
    DSS) and fetched when the identities file allows it."""
    if not identities.trust_roots:
        raise SigningError("renewal needs trust roots in the identities file")
    revocation = identities.revocation
    return ValidationContext(
        trust_roots=identities.trust_roots,
        crls=list(revocation.crls),
        ocsps=list(revocation.ocsps),
        allow_fetching=revocation.fetch,
        revocation_mode="require",
        algorithm_usage_policy=ALGORITHM_POLICY,
    )


def _stamp_time(stamp: EmbeddedPdfSignature) -> dt.datetime | None:
    try:
        return stamp.signed_data["encap_content_info"]["content"].parsed["gen_time"].native
    except (KeyError, ValueError, TypeError):
        return None


def _reader(pdf: bytes) -> PdfFileReader:
    try:
        return PdfFileReader(io.BytesIO(pdf), strict=False)
    except (PdfError, ValueError) as exc:
        raise SigningError(f"not a readable PDF: {exc}") from exc
