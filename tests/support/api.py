"""Driving the HTTP API as a separate process: its tokens, a client, waiting on a condition while
the processes stay alive, stopping a process group, and the dossier steps sent over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from kmop.demo import example_applicant
from kmop.scenario import Fact

REPO = Path(__file__).resolve().parent.parent.parent
SERVICE_TOKEN = "service-" + "s" * 40
AGENCY_TOKEN = "agency-" + "a" * 40
APPLICANT_KEY = "applicant-key-" + "k" * 40
JOB_TIMEOUT = 120.0


def api_client(url: str, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60, trust_env=False)


def wait_for(condition: Callable[[], Any], timeout: float, what: str, *alive: subprocess.Popen) -> Any:
    """``condition()``'s first true value, failing at once when one of ``alive`` has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        for process in alive:
            assert process.poll() is None, f"{process.args[2:4]} died while waiting for {what}"
        time.sleep(0.2)
    raise AssertionError(f"{what}: not reached within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process's group (it was started in a session of its own), SIGKILL if it lingers."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def applicant(dossier_id: str) -> dict[str, Any]:
    data = example_applicant()
    data["dossier_id"] = dossier_id
    return data


def record_fact(service: httpx.Client, fact: Fact) -> httpx.Response:
    return service.post(f"/dossiers/{fact.dossier_id}/facts", json={
        "fact": fact.name, "data": fact.data, "idempotency_key": fact.idempotency_key, "role": fact.role.value})


def applicant_token(service: httpx.Client, dossier_id: str, ttl: int = 600) -> str:
    answer = service.post(f"/dossiers/{dossier_id}/applicant-tokens", json={"ttl_seconds": ttl})
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]
