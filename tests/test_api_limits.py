"""Large bodies cost the API neither memory nor a look before the caller is known.

``kmop api`` runs as a uvicorn process on loopback (local-folder storage, stub broker). Every
route that takes a body (the application's own ``app.routes``: one added later is covered)
gets 64 MB, streamed from a generator so this test never holds it, without a token and with a
valid one, chunked (no Content-Length) and with the length declared, and as a multipart form
where the route takes uploads: 401 without a token, 413 naming the limit with one. Meanwhile
the API process's peak resident memory (VmHWM in /proc) must grow by far less than one body.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from api.bodies import accepts_upload
from api.guard import every_route
from api.settings import MAX_JOB_BYTES
from testing.processes import free_port
from tests.support.api import stop, wait_for
from tests.support.in_process_api import AGENCY, APPLICANT_KEY, SERVICE, concrete_path, in_process_app, token_for

REPO = Path(__file__).resolve().parent.parent
BODY_BYTES = 64 * 1024 * 1024
CHUNK = 64 * 1024
MAX_UPLOAD = 1024 * 1024
GROWTH_ALLOWED = 16 * 1024 * 1024  # a quarter of one body


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


@pytest.fixture(scope="module")
def api_process(pki_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen]]:
    folder = tmp_path_factory.mktemp("api-limits")
    env = {key: value for key, value in os.environ.items() if not key.startswith("KMOP_")}
    env.update({
        "KMOP_BROKER": "stub", "KMOP_STORAGE": "local", "KMOP_LOCAL_STORAGE_DIR": str(folder / "store"),
        "KMOP_API_SERVICE_TOKEN": SERVICE, "KMOP_API_AGENCY_TOKEN": AGENCY, "KMOP_API_APPLICANT_KEY": APPLICANT_KEY,
        "KMOP_API_TRUST_ROOTS": str(pki_dir / "root.pem"), "KMOP_API_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
    })
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "kmop.cli", "api", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO, env=env, stdout=(folder / "api.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 60, "the API answering /health", server)
        yield url, server
    finally:
        stop(server)


def _body(total: int, opening: bytes = b'{"x": "') -> Iterator[bytes]:
    yield opening
    sent = len(opening)
    block = b"a" * CHUNK
    while sent < total:
        piece = block[: min(CHUNK, total - sent)]
        sent += len(piece)
        yield piece


def _routes_with_bodies(tmp_path: Path) -> list[APIRoute]:
    app = in_process_app(tmp_path)
    routes = [r for r in every_route(app.router.routes) if isinstance(r, APIRoute) and r.methods & {"POST", "PUT", "PATCH"}]
    assert len(routes) == 5, [r.path_format for r in routes]
    return routes


def _variants(route: APIRoute) -> list[tuple[str, dict[str, str], bytes]]:
    """(label, headers, opening bytes) of each way the body is sent."""
    json = ("json", {"Content-Type": "application/json"}, b'{"x": "')
    if not accepts_upload(route):
        return [json]
    boundary = uuid.uuid4().hex
    form = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n").encode()
    return [json, ("pdf", {"Content-Type": "application/pdf"}, b"%PDF-1.7\n"),
            ("multipart", {"Content-Type": f"multipart/form-data; boundary={boundary}"}, form)]


def test_large_bodies_are_refused_before_they_are_read_and_cost_no_memory(
    api_process: tuple[str, subprocess.Popen], tmp_path: Path
) -> None:
    url, server = api_process
    routes = _routes_with_bodies(tmp_path)
    with httpx.Client(base_url=url, timeout=120, trust_env=False) as client:
        for route in routes:  # warm up every route's code path with a small body
            [method] = route.methods
            client.request(method, concrete_path(route), content=b"{}",
                           headers={"Authorization": f"Bearer {token_for(route)}", "Content-Type": "application/json"})
        before = _memory_kib(server.pid, "VmHWM")
        for route in routes:
            [method] = route.methods
            path = concrete_path(route)
            for label, headers, opening in _variants(route):
                for token in (None, token_for(route)):
                    for declared in (False, True):
                        sent = dict(headers)
                        if token:
                            sent["Authorization"] = f"Bearer {token}"
                        if declared:
                            sent["Content-Length"] = str(BODY_BYTES)
                        answer = client.request(method, path, content=_body(BODY_BYTES, opening), headers=sent)
                        case = (method, path, label, token is not None, declared, answer.text[:200])
                        if token is None:
                            assert answer.status_code == 401, case
                            assert answer.json()["error"] == "missing_credentials", case
                            continue
                        assert answer.status_code == 413, case
                        limit = MAX_UPLOAD if label == "pdf" else MAX_UPLOAD + 64 * 1024 if label == "multipart" \
                            else MAX_JOB_BYTES
                        assert answer.json()["error"] == "too_large" and f"{limit} bytes" in answer.json()["message"], case
        growth = (_memory_kib(server.pid, "VmHWM") - before) * 1024
    assert server.poll() is None
    assert growth < GROWTH_ALLOWED, f"the API's peak memory grew by {growth / 2**20:.1f} MiB"


def test_a_body_within_the_limit_with_a_token_of_another_role_is_refused_unread(
    api_process: tuple[str, subprocess.Popen]
) -> None:
    url, server = api_process
    with httpx.Client(base_url=url, timeout=120, trust_env=False) as client:
        before = _memory_kib(server.pid, "VmHWM")
        answer = client.post("/dossiers/D-1/facts", content=_body(BODY_BYTES),
                             headers={"Authorization": f"Bearer {AGENCY}", "Content-Type": "application/json"})
        growth = (_memory_kib(server.pid, "VmHWM") - before) * 1024
    assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
    assert growth < GROWTH_ALLOWED
