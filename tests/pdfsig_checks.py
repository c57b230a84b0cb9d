"""pdfsig's verdict on every signature of a PDF, in poppler 22.12's words, checked against what
pyHanko finds in the file.

pdfsig checks the signer's certificate with NSS at the current time, fetching OCSP responses
from the URLs in the certificates: for the test PKI the animator must be running. poppler 22.12
cannot validate ETSI.RFC3161 document timestamps at all: it prints their type as "unknown",
"Signature has not yet been verified." and, once, "Unable to validate this type of signature".
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from pyhanko.pdf_utils.reader import PdfFileReader

from tests.pdftools import pdfsig

VALID = "Signature is Valid."
TRUSTED = "Certificate is Trusted."
NOT_VERIFIED = "Signature has not yet been verified."
UNSUPPORTED = "Unable to validate this type of signature"


@dataclass(frozen=True)
class PdfsigVerdict:
    field: str
    type: str
    signature: str
    certificate: str | None


def pdfsig_verdicts(pdf: bytes, nss_dir: Path, directory: Path, name: str = "document.pdf") -> tuple[list[PdfsigVerdict], str]:
    path = directory / name
    path.write_bytes(pdf)
    output = pdfsig(path, nss_dir)
    verdicts = []
    for block in re.split(r"^Signature #\d+:$", output, flags=re.MULTILINE)[1:]:
        lines = dict(re.findall(r"^  - ([^:\n]+): (.*)$", block, flags=re.MULTILINE))
        verdicts.append(PdfsigVerdict(lines.get("Signature Field Name", ""), lines.get("Signature Type", ""),
                                      lines.get("Signature Validation", ""), lines.get("Certificate Validation")))
    return verdicts, output


def assert_pdfsig_trusts_every_signature(pdf: bytes, nss_dir: Path, directory: Path, name: str = "document.pdf") -> None:
    """Every CAdES signature valid and its certificate trusted; every document timestamp shown
    as the timestamp poppler cannot check; nothing else and nothing missing."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    signatures = {s.field_name for s in reader.embedded_regular_signatures}
    stamps = {s.field_name for s in reader.embedded_timestamp_signatures}
    verdicts, output = pdfsig_verdicts(pdf, nss_dir, directory, name)
    assert sorted(v.field for v in verdicts) == sorted(signatures | stamps), output
    for verdict in verdicts:
        if verdict.field in signatures:
            assert (verdict.type, verdict.signature, verdict.certificate) == (
                "ETSI.CAdES.detached", VALID, TRUSTED), output
        else:
            assert (verdict.type, verdict.signature, verdict.certificate) == ("unknown", NOT_VERIFIED, None), output
    assert (UNSUPPORTED in output) == bool(stamps), output
