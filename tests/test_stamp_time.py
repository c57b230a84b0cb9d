"""The signature block states its time on the Belgian clock, as the documents' dates and footers do."""

from __future__ import annotations

import io
import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from pypdf import PdfReader, PdfWriter

from signing.policy import policy_for
from signing.signer import DocumentSigner
from signing.stamp import text_params
from signing.timestamping import timestamper_for
from tests.pdftools import pdftotext


def test_a_signature_made_just_before_midnight_utc_reads_as_the_next_day_in_brussels() -> None:
    winter = text_params("Agentschap", "agentschap", now=datetime(2026, 12, 7, 23, 30, tzinfo=timezone.utc))
    summer = text_params("Agentschap", "agentschap", now=datetime(2026, 7, 1, 22, 15, tzinfo=timezone.utc))

    assert winter["time"] == "2026-12-08 00:30:00 CET"
    assert summer["time"] == "2026-07-02 00:15:00 CEST"


def test_the_signed_block_shows_the_time_on_the_belgian_clock(identities, tmp_path) -> None:  # type: ignore[no-untyped-def]
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    blank = io.BytesIO()
    writer.write(blank)
    signer = DocumentSigner(identities, timestamper_for(None, identities))

    signed = signer.sign(blank.getvalue(), policy_for("sworn_statement"), field_name="Handtekening-applicant",
                         reason="test")

    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    shown = re.search(r"Tijdstip: (\S+ \S+) (\S+)", pdftotext(path))
    assert shown is not None and shown.group(2) in ("CET", "CEST"), pdftotext(path)
    signed_at = PdfReader(io.BytesIO(signed)).get_fields()["Handtekening-applicant"]["/V"]["/M"]
    utc = datetime.strptime(signed_at[2:16], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    brussels = datetime.strptime(shown.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("Europe/Brussels"))
    assert abs((brussels - utc).total_seconds()) <= 2
