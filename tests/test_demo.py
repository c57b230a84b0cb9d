"""The main job, run as a user runs it: ``kmop demo`` then ``kmop verify`` and pdfsig."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from signing.devpki import generate_dev_pki
from tests.pdftools import nss_trust_store, pdfsig, pdftotext

pytestmark = pytest.mark.slow  # runs kmop demo as a process

KMOP = [sys.executable, "-m", "kmop.cli"]
REPO = Path(__file__).resolve().parent.parent


def _kmop(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KMOP, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    result = _kmop("demo", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_demo_writes_signed_pdfs_and_dossier(demo_out: Path) -> None:
    dossier = json.loads((demo_out / "dossier.json").read_text())
    assert [d["kind"] for d in dossier["documents"]] == [
        "sworn_statement", "quote", "quote_acceptance", "preparation_pack", "audit_report",
        "commission_decision", "registration_certificate"]
    assert dossier["state"]["phase"] == "registered"
    for document in dossier["documents"]:
        pdf = demo_out / document["file"]
        assert document["file"] == f"{document['step']:02d}-{document['kind']}.pdf"
        assert hashlib.sha256(pdf.read_bytes()).hexdigest() == document["sha256"]
    events = dossier["events"]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    for previous, event in zip(events, events[1:]):
        assert event["previous_hash"] == previous["hash"]
    assert (demo_out / "pki" / "root.pem").is_file()
    assert "Raad & Daad <Cyber> BV" in pdftotext(demo_out / "01-sworn_statement.pdf")


def test_kmop_verify_accepts_demo_output(demo_out: Path) -> None:
    pdfs = sorted(str(p) for p in demo_out.glob("*.pdf"))
    result = _kmop("verify", "--trust", str(demo_out / "pki" / "root.pem"), "--json", *pdfs)
    assert result.returncode == 0, result.stdout + result.stderr
    reports = json.loads(result.stdout)
    assert len(reports) == len(pdfs) and all(r["ok"] for r in reports)


def test_pdfsig_accepts_demo_output(demo_out: Path, tmp_path: Path) -> None:
    nss = nss_trust_store(tmp_path / "nss", demo_out / "pki" / "root.pem")
    for pdf in demo_out.glob("*.pdf"):
        output = pdfsig(pdf, nss)
        assert "Signature is Valid" in output and "Certificate is Trusted" in output, output


def test_kmop_verify_refuses_altered_file_and_wrong_root(demo_out: Path, tmp_path: Path) -> None:
    pdf = demo_out / "01-sworn_statement.pdf"
    altered = tmp_path / "altered.pdf"
    data = bytearray(pdf.read_bytes())
    position = data.index(b"/MediaBox") + 12
    data[position] = ord("9") if data[position] != ord("9") else ord("8")
    altered.write_bytes(bytes(data))
    result = _kmop("verify", "--trust", str(demo_out / "pki" / "root.pem"), str(altered))
    assert result.returncode == 1
    assert "altered" in result.stdout



def test_kmop_verify_refuses_unknown_root(demo_out: Path, tmp_path: Path) -> None:
    other = generate_dev_pki(tmp_path / "other", b"other")
    result = _kmop("verify", "--trust", str(other.root_path), str(demo_out / "01-sworn_statement.pdf"))
    assert result.returncode == 1
    assert "trusted root" in result.stdout


def test_kmop_verify_without_trust_root_is_a_usage_error(demo_out: Path) -> None:
    result = _kmop("verify", str(demo_out / "01-sworn_statement.pdf"))
    assert result.returncode == 2 and "--trust" in result.stderr


def test_demo_input_with_bad_field_names_it(tmp_path: Path) -> None:
    applicant = json.loads((REPO / "kmop" / "examples" / "applicant.json").read_text())
    applicant["provider"]["enterprise_number"] = "0123.456.789"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(applicant))
    result = _kmop("demo", "--out", str(tmp_path / "out"), "--input", str(path))
    assert result.returncode == 2
    assert "data.provider.enterprise_number" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_conditional_scenario_runs_the_follow_up_cycle(tmp_path: Path) -> None:
    out = tmp_path / "conditional"
    result = _kmop("demo", "--out", str(out), "--scenario", "conditional")
    assert result.returncode == 0, result.stderr
    dossier = json.loads((out / "dossier.json").read_text())
    assert dossier["state"]["phase"] == "registered" and dossier["state"]["cycle"] == "follow_up"
    kinds = [d["kind"] for d in dossier["documents"]]
    assert kinds.count("quote") == 2 and "follow_up_audit_report" in kinds and "follow_up_decision" in kinds
    assert kinds.count("registration_certificate") == 2
    pdfs = sorted(str(p) for p in out.glob("*.pdf"))
    assert len(pdfs) == len(kinds)
    verified = _kmop("verify", "--trust", str(out / "pki" / "root.pem"), *pdfs)
    assert verified.returncode == 0, verified.stdout


def test_demo_input_without_a_value_the_documents_print_names_it(tmp_path: Path) -> None:
    applicant = json.loads((REPO / "kmop" / "examples" / "applicant.json").read_text())
    del applicant["people"][1]["function"]
    path = tmp_path / "incomplete.json"
    path.write_text(json.dumps(applicant))
    result = _kmop("demo", "--out", str(tmp_path / "out"), "--input", str(path))
    assert result.returncode == 2
    assert "input.people[1].function: is required" in result.stderr
    assert "Traceback" not in result.stderr
