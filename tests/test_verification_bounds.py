"""The bounds of verification work: a file with more signatures or revisions than allowed is not
verified (the report, the API's 422 and ``kmop verify`` say what was not checked, and no
signature is validated), a verification out of time reports the rest unchecked, and the API
verifies in worker processes with a bounded queue: other routes answer while a verification
runs, and a request beyond the queue is answered 503."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from signing.limits import VerificationLimits, VerificationPoolSettings, load_verification_limits
from signing.verify import render_text, verify_pdf
from signing.verify_worker import verify_in_worker
from tests.pki_fixtures import sign_raw

HOLD_ENV = "KMOP_TEST_VERIFY_HOLD_DIR"
AGENCY = {"Authorization": "Bearer " + "a" * 32, "Content-Type": "application/pdf"}


@pytest.fixture(scope="module")
def four_signatures(test_pki, blank_pdf_bytes: bytes) -> bytes:
    pdf = blank_pdf_bytes
    for number in range(1, 5):
        pdf = sign_raw(pdf, test_pki.signer("applicant"), field_name=f"Handtekening-{number}")
    return pdf


def _revisions(pdf: bytes, count: int) -> bytes:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    for number in range(count):
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        writer.root["/KmopNote"] = generic.TextStringObject(f"update {number}")
        writer.update_root()
        out = io.BytesIO()
        writer.write(out)
        pdf = out.getvalue()
    return pdf


def test_more_signatures_or_revisions_than_allowed_are_not_verified_and_say_so(
    four_signatures: bytes, test_pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signing.verify

    assessed: list[str] = []
    assess = signing.verify._assess_signature

    async def counting(signature, *args, **kwargs):  # type: ignore[no-untyped-def]
        assessed.append(str(signature.field_name))
        return await assess(signature, *args, **kwargs)

    monkeypatch.setattr(signing.verify, "_assess_signature", counting)
    report = verify_pdf(four_signatures, [test_pki.root], limits=VerificationLimits(max_signatures=3))
    assert assessed == [] and report.signatures == [] and not report.ok
    assert report.indication == "INDETERMINATE" and report.sub_indication == "GENERIC"
    assert report.unchecked == ("the file holds 4 signatures and 0 document timestamps, more than the 3 verified "
                                "in one file (KMOP_VERIFY_MAX_SIGNATURES): no signature was checked")
    assert "NOT CHECKED: the file holds 4 signatures" in render_text(report)

    many_revisions = _revisions(four_signatures, 3)  # 4 signing revisions + 1 original + 3
    report = verify_pdf(many_revisions, [test_pki.root], limits=VerificationLimits(max_revisions=7))
    assert assessed == [] and report.unchecked is not None and not report.ok
    assert report.unchecked.startswith("the file has 8 revisions, more than the 7 verified in one file")
    assert verify_pdf(four_signatures, [test_pki.root], limits=VerificationLimits(max_signatures=4)).signatures
    assert assessed == [f"Handtekening-{n}" for n in range(1, 5)]


def test_signatures_not_reached_in_time_are_reported_unchecked(four_signatures: bytes, test_pki) -> None:
    report = verify_pdf(four_signatures, [test_pki.root], limits=VerificationLimits(seconds=0))
    assert report.signatures == [] and not report.ok
    assert report.unchecked == ("verification stopped after 0 s (KMOP_VERIFY_SECONDS): not checked: "
                                "Handtekening-1, Handtekening-2, Handtekening-3, Handtekening-4")


def test_limits_come_from_the_environment_within_bounds() -> None:
    from kmop.settings import SettingsError

    assert load_verification_limits({}) == VerificationLimits(max_signatures=50, max_revisions=200, seconds=30)
    assert load_verification_limits({"KMOP_VERIFY_MAX_SIGNATURES": "5"}).max_signatures == 5
    with pytest.raises(SettingsError, match="KMOP_VERIFY_SECONDS"):
        load_verification_limits({"KMOP_VERIFY_SECONDS": "0"})


def test_kmop_verify_says_what_was_not_checked(four_signatures: bytes, test_pki, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from kmop.cli import main

    (tmp_path / "many.pdf").write_bytes(four_signatures)
    monkeypatch.setenv("KMOP_VERIFY_MAX_SIGNATURES", "3")
    code = main(["verify", "--trust", str(test_pki.root_path), str(tmp_path / "many.pdf")])
    out = capsys.readouterr().out
    assert code != 0
    assert "INVALID (INDETERMINATE / GENERIC)" in out and "NOT CHECKED: the file holds 4 signatures" in out


# --- the API --------------------------------------------------------------------------------------

def _app(tmp_path: Path, test_pki, **env: str):  # type: ignore[no-untyped-def]
    from api.app import Services, create_app
    from api.idempotency import IdempotencyRecords
    from api.settings import load_api_settings
    from kmop.settings import load_settings
    from storage.local import LocalFolderStore
    from workflow.ledger import Ledger
    from workflow.tracker import Tracker

    settings = load_api_settings({"KMOP_API_SERVICE_TOKEN": "s" * 32, "KMOP_API_AGENCY_TOKEN": "a" * 32,
                                  "KMOP_API_APPLICANT_KEY": "k" * 32, "KMOP_API_TRUST_ROOTS": str(test_pki.root_path),
                                  **env})
    core = load_settings({"KMOP_BROKER": "stub", "KMOP_STORAGE": "local", "KMOP_LOCAL_STORAGE_DIR": str(tmp_path)})
    store = LocalFolderStore(tmp_path / "store")
    return create_app(Services(settings, core, store, Tracker(Ledger(store)), [test_pki.root],
                               IdempotencyRecords(store)))


def _client(app) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url="http://api")


def test_the_api_answers_422_for_a_file_beyond_the_limits(four_signatures: bytes, test_pki, tmp_path: Path) -> None:
    app = _app(tmp_path, test_pki, KMOP_VERIFY_MAX_SIGNATURES="3", KMOP_API_VERIFY_WORKERS="1")

    async def call() -> httpx.Response:
        async with _client(app) as client:
            return await client.post("/verifications", content=four_signatures, headers=AGENCY)

    try:
        response = asyncio.run(call())
    finally:
        app.state.verification_pool.shutdown()
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "verification_limit" and body["field"] == "file"
    assert "more than the 3 verified in one file (KMOP_VERIFY_MAX_SIGNATURES)" in body["message"]


def held_verification(data: bytes, roots_der: list[bytes], name: str, limits: dict[str, int]) -> dict[str, Any]:
    """A verification that says when it starts (and in which process) and waits to be released:
    the FIFOs in ``$KMOP_TEST_VERIFY_HOLD_DIR`` order the events without sleeping."""
    hold = Path(os.environ[HOLD_ENV])
    with open(hold / "started", "w") as started:
        started.write(str(os.getpid()))
    with open(hold / "release") as release:
        release.read()
    return verify_in_worker(data, roots_der, name, limits)


def test_other_routes_answer_while_a_verification_runs_and_a_full_queue_answers_503(
    four_signatures: bytes, test_pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.routes.verifications import VerificationPool

    hold = tmp_path / "hold"
    hold.mkdir()
    os.mkfifo(hold / "started")
    os.mkfifo(hold / "release")
    monkeypatch.setenv(HOLD_ENV, str(hold))
    app = _app(tmp_path, test_pki)
    app.state.verification_pool = VerificationPool(VerificationPoolSettings(workers=1, queue=0), held_verification)
    events: list[str] = []

    def wait_started() -> int:
        with open(hold / "started") as started:
            return int(started.read())

    def release() -> None:
        with open(hold / "release", "w") as fifo:
            fifo.write("go")

    async def scenario() -> tuple[httpx.Response, int]:
        loop = asyncio.get_running_loop()
        async with _client(app) as client:
            verification = asyncio.create_task(client.post("/verifications", content=four_signatures,
                                                           headers=AGENCY))
            worker_pid = await loop.run_in_executor(None, wait_started)
            events.append("verification started")
            health = await client.get("/health")
            events.append(f"health answered {health.status_code}")
            second = asyncio.create_task(client.post("/verifications", content=four_signatures, headers=AGENCY))
            # a guard, not a measure: a queue that took the second request would hold it behind the
            # first, which waits for the release below
            done, _ = await asyncio.wait({second}, timeout=120)
            if done:
                answer = second.result()
                events.append(f"second verification answered {answer.status_code} {answer.json().get('error')}")
                assert answer.headers.get("Retry-After")
            await loop.run_in_executor(None, release)
            response = await verification
            events.append(f"verification answered {response.status_code}")
            if not done:  # let the queued one through too, to end the test with its failure
                await loop.run_in_executor(None, wait_started)
                await loop.run_in_executor(None, release)
                answer = await second
                events.append(f"second verification answered {answer.status_code}")
            return response, worker_pid

    try:
        response, worker_pid = asyncio.run(scenario())
    finally:
        app.state.verification_pool.shutdown()
    assert events == ["verification started", "health answered 200", "second verification answered 503 busy",
                      "verification answered 200"]
    assert worker_pid != os.getpid()  # verified in another process: the API's interpreter stays free
    assert [s["field_name"] for s in response.json()["signatures"]] == [f"Handtekening-{n}" for n in range(1, 5)]
