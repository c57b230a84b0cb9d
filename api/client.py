"""A small HTTP client of the API, for ``kmop submit``, ``kmop status --api`` and ``kmop download``.

``ApiClient.from_env`` takes the base URL from ``--api`` or ``KMOP_API_URL`` and the bearer
token from ``KMOP_API_TOKEN`` (the service token, or an applicant token for downloads). A
refusal raises ``ApiRefused`` with the status and the API's message.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from typing import Any

import httpx

from kmop.errors import KmopError

URL_ENV = "KMOP_API_URL"
TOKEN_ENV = "KMOP_API_TOKEN"


class ApiRefused(KmopError):
    def __init__(self, status: int, body: Mapping[str, Any] | None, text: str) -> None:
        self.status = status
        self.body = dict(body or {})
        message = self.body.get("message") or text[:200] or "no message"
        super().__init__(f"the API answered {status}: {message}")


def api_url(explicit: str | None, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return explicit or env.get(URL_ENV) or None


class ApiClient:
    def __init__(self, base_url: str, token: str, timeout: float = 60.0) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                 headers={"Authorization": f"Bearer {token}"})

    @classmethod
    def from_env(cls, explicit_url: str | None = None, env: Mapping[str, str] | None = None) -> ApiClient:
        env = os.environ if env is None else env
        url = api_url(explicit_url, env)
        if not url:
            raise KmopError(f"--api: give the API's URL (or set {URL_ENV})")
        token = env.get(TOKEN_ENV)
        if not token:
            raise KmopError(f"{TOKEN_ENV}: set it to your API token (service, or an applicant token)")
        return cls(url, token)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise KmopError(f"the API at {self.http.base_url} cannot be reached: {exc}") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            raise ApiRefused(response.status_code, body if isinstance(body, dict) else None, response.text)
        return response

    def submit_job(self, job: dict[str, Any], idempotency_key: str, webhook_url: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key}
        if webhook_url:
            headers["Webhook-URL"] = webhook_url
        return self._call("POST", "/jobs", json=job, headers=headers).json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{job_id}").json()

    def wait_for_job(self, job_id: str, timeout: float, interval: float = 1.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.job(job_id)
            if status["status"] != "queued" or time.monotonic() > deadline:
                return status
            time.sleep(interval)

    def dossier(self, dossier_id: str) -> dict[str, Any]:
        return self._call("GET", f"/dossiers/{dossier_id}").json()

    def documents(self, dossier_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/dossiers/{dossier_id}/documents").json()["documents"]

    def download(self, dossier_id: str, name: str, expected_sha256: str | None = None) -> bytes:
        data = self._call("GET", f"/dossiers/{dossier_id}/documents/{name}").content
        if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256:
            raise KmopError(f"{name}: the downloaded bytes do not match SHA-256 {expected_sha256}")
        return data
