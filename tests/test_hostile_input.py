"""Hostile and broken input: template data that tries to break the document, files that try to
break verification.

Documents. Job data full of XML fragments, ``&``, quotes, right-to-left text, non-Latin names
and values at their schema's maxLength goes through the real pipeline stages: validation,
render, LibreOffice (the session pool; three conversions in all), pyHanko signing. The signed
PDF must open with pypdf, verify, and show each value through pdftotext. What is compared:
pdftotext's default (reading-order) output and the value, both without whitespace (a long
value wraps inside its table cell); a value that runs over a page break must show its words in
order, with the footer, the next header and the table's other cells allowed between them and without the bidi control characters pdftotext puts
around right-to-left runs (U+202B ... U+202C). pdftotext emits right-to-left text in logical
order, so Arabic and Hebrew compare as typed; digits right after a right-to-left word are not
used, because the bidi algorithm makes them part of that run and pdftotext then emits them in
visual position ("2026 שלום" for "שלום 2026"). Values are built from numbered tokens, so a
dropped or repeated piece shows. Control characters are refused before anything runs.

Verification. Truncated, malformed, huge, encrypted, many-signature and many-revision files go
to ``signing.verify.verify_pdf`` in a child process each, which reports the verdict and how far
the child's peak memory (ru_maxrss) rose during the call; a child that does not answer within
its timeout fails the test. There are no wall-clock assertions.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader, PdfWriter

from kmop.errors import InvalidJob
from kmop.jobs import parse_job
from kmop.pipeline import envelope
from signing.policy import policy_for
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for
from signing.verify import verify_pdf
from templates.render import render_docx
from tests.support.hostile_data import SWORN_MARKUP, message_of, set_at, tokens

REPO = Path(__file__).resolve().parent.parent
BIDI_CONTROLS = re.compile(r"[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
MB = 1_000_000


# --- documents -------------------------------------------------------------------------------


def _flat(text: str) -> str:
    return re.sub(r"\s+", "", BIDI_CONTROLS.sub("", text))


def _pdftotext(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "document.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout


@pytest.fixture(scope="module")
def signer(identities) -> DocumentSigner:
    return DocumentSigner(identities, timestamper_for(None, identities))


def _produce(message: dict[str, Any], converter_pool, signer: DocumentSigner) -> bytes:
    job = parse_job(message)
    docx = render_docx(job.document_kind, job.data, envelope(job))
    pdf = converter_pool.convert(docx)
    policy = policy_for(job.kind)
    return signer.sign(pdf, policy, field_name=f"Handtekening-{policy.role.value}", reason="hostile input test")


def _check_document(signed: bytes, values: dict[str, str], identities, tmp_path: Path) -> None:
    reader = PdfReader(io.BytesIO(signed))
    assert len(reader.pages) >= 1
    report = verify_pdf(signed, identities.trust_roots)
    assert report.ok, report.to_dict()
    text = _flat(_pdftotext(signed, tmp_path))
    missing = {path: value for path, value in values.items() if not _shown(value, text)}
    assert not missing, f"not shown as given: {missing}"


def _shown(value: str, text: str) -> bool:
    """``value`` appears in ``text`` (both flattened) in one piece or, when it runs over a page
    break, as its whitespace-separated words in order with other text between (the footer, the
    next page's header, the table's other cells). The test values are numbered tokens, so a
    dropped, repeated or reordered piece still shows."""
    if _flat(value) in text:
        return True
    position = 0
    for token in filter(None, (_flat(word) for word in value.split())):
        position = text.find(token, position)
        if position < 0:
            return False
        position += len(token)
    return True




def test_markup_quotes_and_non_latin_text_show_as_given_in_the_signed_pdf(
    converter_pool, signer: DocumentSigner, identities, tmp_path: Path
) -> None:
    message = message_of("sworn_statement")
    for path, value in SWORN_MARKUP.items():
        set_at(message["data"], path, value)
    signed = _produce(message, converter_pool, signer)
    _check_document(signed, SWORN_MARKUP, identities, tmp_path)
    assert b"<w:t>injected</w:t>" not in signed.split(b"endstream")[0]  # shown as text, not injected markup


def test_values_at_their_maximum_length_show_whole_in_the_signed_pdf(
    converter_pool, signer: DocumentSigner, identities, tmp_path: Path
) -> None:
    """Every text field of the sworn statement at its schema's maxLength (2000 for the
    declared involvement), in numbered tokens of Latin, Polish and Japanese letters."""
    message = message_of("sworn_statement")
    limits = {"provider.name": 300, "provider.contact.name": 200, "signatory.name": 200,
              "signatory.place": 100, "provider.registered_office.street": 200,
              "provider.registered_office.city": 100, "provider.legal_form": 60,
              "declarations.involvement": 2000}
    values = {path: tokens(f"L{i}", limit, ("Zo\u00eb", "\u0141\u00f3d\u017a", "\u6771\u4eac")[i % 3])
              for i, (path, limit) in enumerate(limits.items())}
    values["application.themes.0"] = tokens("T", 120)
    message["data"]["declarations"]["no_misuse_or_bankruptcy"] = False
    for path, value in values.items():
        set_at(message["data"], path, value)
    signed = _produce(message, converter_pool, signer)
    _check_document(signed, values, identities, tmp_path)


def test_long_finding_with_markup_and_right_to_left_text_shows_in_an_audit_report(
    converter_pool, signer: DocumentSigner, identities, tmp_path: Path
) -> None:
    message = message_of("audit_report")
    finding = (tokens("F", 3_000) + ' </w:p><w:p> & "q" \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 '
               + tokens("G", 900, "\u6771"))[:4_000]
    values = {"findings.0.finding": finding, "persons_interviewed.0.name": "P1 \u0645\u0631\u062d\u0628\u0627 Zo\u00eb"}
    for path, value in values.items():
        set_at(message["data"], path, value)
    signed = _produce(message, converter_pool, signer)
    _check_document(signed, values, identities, tmp_path)


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f",
                                       "\ufffe", "\uffff"])
def test_control_character_is_refused_naming_the_field(character: str) -> None:
    message = message_of("sworn_statement")
    set_at(message["data"], "signatory.place", f"Gent{character}Brugge")
    with pytest.raises(InvalidJob) as refused:
        parse_job(message)
    assert refused.value.field == "data.signatory.place"
    assert f"U+{ord(character):04X}" in refused.value.reason


def test_refused_character_deep_in_a_long_list_is_named_by_its_place() -> None:
    message = message_of("preparation_pack")
    message["data"]["known_dossiers"] = [
        {"reference": f"KMOP-2025-{100000 + i}", "client": f"Klant {i} BV", "service": "advies",
         "started_on": "2025-03-17"} for i in range(500)]
    message["data"]["known_dossiers"][412]["client"] = "Klant \u202e412 BV"
    with pytest.raises(InvalidJob) as refused:
        parse_job(message)
    assert refused.value.field == "data.known_dossiers[412].client"
    assert "U+202E" in refused.value.reason


def test_tab_and_line_feed_are_text_not_control_characters() -> None:
    message = message_of("sworn_statement")
    set_at(message["data"], "signatory.place", "Gent\tBrugge\nOostende")
    assert parse_job(message).data["signatory"]["place"] == "Gent\tBrugge\nOostende"


def test_lone_surrogate_is_refused_before_it_truncates_the_document() -> None:
    from docx import Document

    message = message_of("sworn_statement")
    set_at(message["data"], "provider.name", "ACME \ud800 BV")
    try:
        job = parse_job(message)
    except InvalidJob as refused:
        assert refused.field == "data.provider.name"
        return
    docx = render_docx(job.document_kind, job.data, envelope(job))
    text = "\n".join(p.text for p in Document(io.BytesIO(docx)).paragraphs)
    assert "verklaart op eer" in text  # the body after the provider's name


def test_bidi_override_is_refused_naming_the_field() -> None:
    message = message_of("sworn_statement")
    set_at(message["data"], "signatory.name", "Jan \u202eevil\u202c Peeters")
    with pytest.raises(InvalidJob) as refused:
        parse_job(message)
    assert refused.value.field == "data.signatory.name"


# --- verification of hostile files -----------------------------------------------------------

_VERIFY_IN_CHILD = r"""
import json, resource, sys
from pathlib import Path
from signing.identities import load_certificates
from signing.verify import verify_pdf
roots = load_certificates(Path(sys.argv[2]))
data = Path(sys.argv[1]).read_bytes()
verify_pdf(b"%PDF-1.7\n", roots)  # warm up imports and caches before measuring
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    report = verify_pdf(data, roots)
    outcome = {"ok": report.ok, "problems": report.problems,
               "signatures": [{"field": s.field_name, "ok": s.ok, "problems": s.problems} for s in report.signatures]}
except BaseException as exc:
    outcome = {"raised": f"{type(exc).__name__}: {exc}"[:500]}
outcome["rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps(outcome))
"""


def _verify_in_child(pdf: bytes, pki_dir: Path, tmp_path: Path, timeout: float = 300) -> dict[str, Any]:
    path = tmp_path / f"input-{len(list(tmp_path.iterdir()))}.pdf"
    path.write_bytes(pdf)
    try:
        done = subprocess.run([sys.executable, "-c", _VERIFY_IN_CHILD, str(path), str(pki_dir / "root.pem")],
                              capture_output=True, text=True, timeout=timeout, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"verify_pdf did not give a verdict within {timeout} s on a {len(pdf)}-byte file")
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert "raised" not in outcome, f"verify_pdf raised instead of reporting: {outcome['raised']}"
    return outcome


def _refused(outcome: dict[str, Any]) -> str:
    """The verdict must be 'not ok' with a reason: the file's or a signature's first problem."""
    assert outcome["ok"] is False, outcome
    reasons = outcome["problems"] + [p for s in outcome["signatures"] for p in s["problems"]]
    assert reasons and all(isinstance(r, str) and r for r in reasons), outcome
    return reasons[0]


def _blank_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _incremental(pdf: bytes, change) -> bytes:  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    change(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _with_stream(pdf: bytes, encoded: bytes, filtered: bool, as_page_content: bool) -> bytes:
    from pyhanko.pdf_utils import generic

    def change(writer) -> None:  # type: ignore[no-untyped-def]
        header = {generic.NameObject("/Filter"): generic.NameObject("/FlateDecode")} if filtered else {}
        ref = writer.add_object(generic.StreamObject(header, encoded_data=encoded))
        if as_page_content:
            page = writer.root["/Pages"]["/Kids"][0].get_object()
            page["/Contents"] = ref
            writer.update_container(page)
        else:
            writer.root["/KmopJunk"] = ref
            writer.update_root()

    return _incremental(pdf, change)


def _sign(signer: DocumentSigner, pdf: bytes, kind: str = "sworn_statement", name: str = "Handtekening") -> bytes:
    return signer.sign(pdf, policy_for(kind), field_name=name, reason="hostile input test")


@pytest.fixture(scope="module")
def signed_pdf(signer: DocumentSigner) -> bytes:
    return _sign(signer, _blank_pdf())


def test_intact_signed_file_passes_in_the_child(signed_pdf: bytes, pki_dir: Path, tmp_path: Path) -> None:
    outcome = _verify_in_child(signed_pdf, pki_dir, tmp_path)
    assert outcome["ok"] is True, outcome


@pytest.mark.parametrize("cut", [0, 9, 100, 1_000, "half", "in-signature", "last-10"])
def test_truncated_file_is_refused_with_a_reason(signed_pdf: bytes, pki_dir: Path, tmp_path: Path, cut) -> None:
    at = {"half": len(signed_pdf) // 2, "last-10": len(signed_pdf) - 10,
          "in-signature": signed_pdf.index(b"/Contents <") + 200}.get(cut, cut)
    reason = _refused(_verify_in_child(signed_pdf[:at], pki_dir, tmp_path))
    assert reason


@pytest.mark.parametrize("case", ["junk", "header-only", "flipped-byte", "signature-bytes-zeroed",
                                  "xref-loop", "no-signature"])
def test_malformed_file_is_refused_with_a_reason(signed_pdf: bytes, pki_dir: Path, tmp_path: Path, case: str) -> None:
    start = signed_pdf.index(b"/Contents <") + len(b"/Contents <")
    middle = start // 2  # in the unsigned original (pypdf writes it the same every time), not the CMS
    files = {
        "junk": os.urandom(4096),
        "header-only": b"%PDF-1.7\n%%EOF\n",
        "flipped-byte": signed_pdf[:middle] + bytes([signed_pdf[middle] ^ 0x20]) + signed_pdf[middle + 1:],
        "signature-bytes-zeroed": signed_pdf[:start] + b"0" * 512 + signed_pdf[start + 512:],
        "xref-loop": signed_pdf + b"\nxref\n0 0\ntrailer\n<< /Size 1 /Prev %d >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(signed_pdf) + 1, len(signed_pdf) + 1),
        "no-signature": _blank_pdf(),
    }
    outcome = _verify_in_child(files[case], pki_dir, tmp_path)
    _refused(outcome)
    if case == "no-signature":
        assert outcome["problems"] == ["the file holds no signature"]


def test_50_mb_of_junk_is_refused_in_bounded_memory(pki_dir: Path, tmp_path: Path) -> None:
    junk = b"%PDF-1.7\n" + os.urandom(50 * MB)
    outcome = _verify_in_child(junk, pki_dir, tmp_path)
    assert "not a readable PDF" in _refused(outcome)
    assert outcome["rss_growth_mb"] < 200, outcome


def test_junk_without_line_breaks_costs_memory_in_proportion_to_its_size(pki_dir: Path, tmp_path: Path) -> None:
    """pyHanko looks for %%EOF by reading the last line backwards one byte at a time into a
    tuple of ints: with no line break anywhere, that is the whole file, about 8 bytes of
    memory per byte of input (reported to signing/: a cheap %%EOF check first would avoid it).
    Bounded here at 16 bytes per byte; 8 MB keeps the test quick."""
    size = 8 * MB
    junk = b"%PDF-1.7\n" + b"\x00junk" * (size // 5)
    outcome = _verify_in_child(junk, pki_dir, tmp_path)
    assert "EOF marker" in _refused(outcome)
    assert outcome["rss_growth_mb"] < 16 * size / MB + 100, outcome


def test_signed_file_with_a_50_mb_stream_verifies_in_memory_near_its_size(
    signer: DocumentSigner, pki_dir: Path, tmp_path: Path
) -> None:
    big = _sign(signer, _with_stream(_blank_pdf(), b"A" * (50 * MB), filtered=False, as_page_content=False))
    outcome = _verify_in_child(big, pki_dir, tmp_path)
    assert outcome["ok"] is True, outcome
    assert outcome["rss_growth_mb"] < 4 * 50 + 100, outcome


@pytest.fixture(scope="module")
def deflate_bomb() -> bytes:
    """1 GB of zeros deflated to about 1 MB."""
    compressor = zlib.compressobj(9)
    chunk = b"\x00" * MB
    return b"".join(compressor.compress(chunk) for _ in range(1000)) + compressor.flush()


@pytest.mark.slow
def test_signed_file_with_a_deflate_bomb_is_not_inflated(
    signer: DocumentSigner, deflate_bomb: bytes, pki_dir: Path, tmp_path: Path
) -> None:
    signed = _sign(signer, _with_stream(_blank_pdf(), deflate_bomb, filtered=True, as_page_content=True))
    outcome = _verify_in_child(signed, pki_dir, tmp_path)
    assert outcome["ok"] is True, outcome
    assert outcome["rss_growth_mb"] < 200, outcome


def test_deflate_bomb_added_after_signing_is_refused_without_inflating_it(
    signed_pdf: bytes, deflate_bomb: bytes, pki_dir: Path, tmp_path: Path
) -> None:
    tampered = _with_stream(signed_pdf, deflate_bomb, filtered=True, as_page_content=True)
    outcome = _verify_in_child(tampered, pki_dir, tmp_path)
    assert "changed after signing" in _refused(outcome)
    assert outcome["rss_growth_mb"] < 200, outcome


@pytest.mark.parametrize("user_password", ["", "secret"])
def test_encrypted_file_is_refused_with_a_reason(signed_pdf: bytes, pki_dir: Path, tmp_path: Path,
                                                 user_password: str) -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(signed_pdf)))
    writer.encrypt(user_password, "owner-password", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    assert "decrypt" in _refused(_verify_in_child(out.getvalue(), pki_dir, tmp_path))


@pytest.fixture(scope="module")
def thirty_signatures(signer: DocumentSigner) -> bytes:
    """One certifying signature, then 29 approvals, each an incremental update."""
    pdf = _sign(signer, _blank_pdf(), kind="quote", name="Handtekening-01")
    for number in range(2, 31):
        pdf = _sign(signer, pdf, name=f"Handtekening-{number:02d}")
    return pdf


def test_thirty_incremental_signatures_each_get_a_verdict(thirty_signatures: bytes, pki_dir: Path,
                                                          tmp_path: Path) -> None:
    outcome = _verify_in_child(thirty_signatures, pki_dir, tmp_path)
    assert outcome["ok"] is True, outcome
    fields = [s["field"] for s in outcome["signatures"]]
    # the second signature may take the field the certification prepared for the countersigner
    assert len(fields) == len(set(fields)) == 30 and fields[0] == "Handtekening-01", fields
    assert outcome["rss_growth_mb"] < 300, outcome


def test_thirty_signatures_with_the_first_revision_altered_are_refused(thirty_signatures: bytes, pki_dir: Path,
                                                                      tmp_path: Path) -> None:
    assert thirty_signatures.count(b"/Producer (pypdf)") == 1  # in the first revision, signed by all 30
    altered = thirty_signatures.replace(b"/Producer (pypdf)", b"/Producer (pypdF)")
    outcome = _verify_in_child(altered, pki_dir, tmp_path)
    _refused(outcome)
    assert outcome["signatures"] and not any(s["ok"] for s in outcome["signatures"]), outcome


def test_signature_with_one_hex_digit_changed_gets_a_verdict(signed_pdf: bytes, identities) -> None:
    at = signed_pdf.index(b"/Contents <") + len(b"/Contents <") + 100
    changed = signed_pdf[:at] + (b"0" if signed_pdf[at:at + 1] != b"0" else b"1") + signed_pdf[at + 1:]
    report = verify_pdf(changed, identities.trust_roots)
    assert not report.ok and report.signatures[0].problems


@pytest.mark.slow
def test_two_hundred_revisions_after_a_signature_are_refused(signed_pdf: bytes, pki_dir: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from pyhanko.pdf_utils import generic

    monkeypatch.setenv("KMOP_VERIFY_MAX_REVISIONS", "1000")  # verified, not refused unread by the default bound

    pdf = signed_pdf
    for number in range(200):
        def change(writer, number=number) -> None:  # type: ignore[no-untyped-def]
            writer.root["/KmopRevision"] = generic.NumberObject(number)
            writer.update_root()
        pdf = _incremental(pdf, change)
    outcome = _verify_in_child(pdf, pki_dir, tmp_path)
    assert "changed after signing" in _refused(outcome)
    assert outcome["rss_growth_mb"] < 300, outcome


def _deeply_nested(depth: int) -> bytes:
    body = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /X " + b"[" * depth + b"]" * depth + b" >>\nendobj\n"
    xref = len(body)
    return body + (b"xref\n0 2\n0000000000 65535 f \n0000000009 00000 n \ntrailer\n<< /Size 2 /Root 1 0 R >>\n"
                   b"startxref\n%d\n%%%%EOF\n" % xref)


def test_nesting_a_little_deep_is_read(pki_dir: Path, tmp_path: Path) -> None:
    outcome = _verify_in_child(_deeply_nested(100), pki_dir, tmp_path)
    assert _refused(outcome) == "the file holds no signature"


def test_deeply_nested_arrays_get_a_verdict_instead_of_a_recursion_error(identities) -> None:
    report = verify_pdf(_deeply_nested(500), identities.trust_roots)
    assert not report.ok and report.problems


def test_signed_file_with_a_deeply_nested_trailer_gets_a_verdict(signed_pdf: bytes, identities) -> None:
    startxref = int(signed_pdf[signed_pdf.rindex(b"startxref") + 9:].split()[0])
    root = re.search(rb"/Root (\d+) (\d+) R", signed_pdf[signed_pdf.rindex(b"trailer"):]) or \
        re.search(rb"/Root (\d+) (\d+) R", signed_pdf)
    size = int(re.findall(rb"/Size (\d+)", signed_pdf)[-1])
    tail = (b"\nxref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size %d /Root %s %s R /Prev %d /X "
            % (size, root.group(1), root.group(2), startxref) + b"[" * 500 + b"]" * 500
            + b" >>\nstartxref\n%d\n%%%%EOF\n" % (len(signed_pdf) + 1))
    report = verify_pdf(signed_pdf + tail, identities.trust_roots)
    assert not report.ok
