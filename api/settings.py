"""Configuration of the HTTP API from the environment, read and validated once at start-up.

The secrets never live in the repository: each role's credential comes from its own variable.

| variable | meaning |
|---|---|
| ``KMOP_API_SERVICE_TOKEN`` | bearer token of the producers (role ``service``), at least 32 characters |
| ``KMOP_API_AGENCY_TOKEN`` | bearer token of the agency (role ``agency``), at least 32 characters |
| ``KMOP_API_APPLICANT_KEY`` | HMAC key that signs applicants' dossier tokens, at least 32 characters |
| ``KMOP_API_TRUST_ROOTS`` | trust roots for ``POST /verifications`` (PEM/DER files, comma-separated); default: the ``trust_roots`` of ``KMOP_IDENTITIES`` |
| ``KMOP_API_MAX_UPLOAD_BYTES`` | largest PDF the agency may upload (default 20 MiB) |
| ``KMOP_API_PRESIGN_SECONDS`` | lifetime of a presigned download URL (default 300 s) |
| ``KMOP_API_MAX_TOKEN_SECONDS`` | longest lifetime of an applicant token (default 30 days) |
| ``KMOP_WEBHOOK_SECRET`` | key that signs webhook deliveries (optional; without it webhooks are refused) |
| ``KMOP_VERIFY_*``, ``KMOP_API_VERIFY_*`` | the bounds of ``POST /verifications``: signatures, revisions, seconds per file, worker processes, waiting requests (``signing.limits``) |
| ``KMOP_EXTERNAL_TRUST_ROOTS`` | trust roots that signatures made elsewhere (an applicant's eID) must chain to (PEM/DER files, comma-separated); unset: signed uploads are refused with 503 |
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kmop.settings import SettingsError, int_setting
from kmop.signing_requests import trust_root_paths
from signing.limits import VerificationLimits, VerificationPoolSettings, load_verification_limits, load_verification_pool

MIN_SECRET_LENGTH = 32
MAX_JOB_BYTES = 1024 * 1024  # a document job is JSON data, never a file


@dataclass(frozen=True)
class ApiSettings:
    service_token: str
    agency_token: str
    applicant_key: bytes
    trust_roots: tuple[Path, ...]
    max_upload_bytes: int
    presign_seconds: int
    max_token_seconds: int
    webhook_secret: str | None
    external_trust_roots: tuple[Path, ...] = ()
    verification_limits: VerificationLimits = VerificationLimits()
    verification_pool: VerificationPoolSettings = VerificationPoolSettings()


def _secret(env: Mapping[str, str], name: str) -> str:
    value = env.get(name) or ""
    if len(value) < MIN_SECRET_LENGTH:
        raise SettingsError(f"{name}: set it to a random secret of at least {MIN_SECRET_LENGTH} characters")
    return value


def _trust_roots(env: Mapping[str, str]) -> tuple[Path, ...]:
    listed = [p.strip() for p in (env.get("KMOP_API_TRUST_ROOTS") or "").split(",") if p.strip()]
    if listed:
        paths = tuple(Path(p) for p in listed)
        for path in paths:
            if not path.is_file():
                raise SettingsError(f"KMOP_API_TRUST_ROOTS: {path} is not a readable file")
        return paths
    identities = env.get("KMOP_IDENTITIES")
    if identities:
        path = Path(identities)
        try:
            names = json.loads(path.read_text(encoding="utf-8")).get("trust_roots", [])
        except (OSError, ValueError, AttributeError) as exc:
            raise SettingsError(f"KMOP_IDENTITIES: {path} cannot be read as an identities file ({exc})") from exc
        if names:
            return tuple(path.parent / name for name in names)
    raise SettingsError(
        "KMOP_API_TRUST_ROOTS: name the trust roots (PEM or DER files, comma-separated) that "
        "POST /verifications checks signatures against, or set KMOP_IDENTITIES to a file with trust_roots"
    )


def load_api_settings(env: Mapping[str, str] | None = None) -> ApiSettings:
    env = os.environ if env is None else env
    service = _secret(env, "KMOP_API_SERVICE_TOKEN")
    agency = _secret(env, "KMOP_API_AGENCY_TOKEN")
    if service == agency:
        raise SettingsError("KMOP_API_AGENCY_TOKEN: must differ from KMOP_API_SERVICE_TOKEN")
    webhook_secret = env.get("KMOP_WEBHOOK_SECRET") or None
    if webhook_secret is not None and len(webhook_secret) < MIN_SECRET_LENGTH:
        raise SettingsError(f"KMOP_WEBHOOK_SECRET: must be at least {MIN_SECRET_LENGTH} characters")
    return ApiSettings(
        service_token=service,
        agency_token=agency,
        applicant_key=_secret(env, "KMOP_API_APPLICANT_KEY").encode(),
        trust_roots=_trust_roots(env),
        max_upload_bytes=int_setting(env, "KMOP_API_MAX_UPLOAD_BYTES", 20 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
        presign_seconds=int_setting(env, "KMOP_API_PRESIGN_SECONDS", 300, 1, 604_800),
        max_token_seconds=int_setting(env, "KMOP_API_MAX_TOKEN_SECONDS", 30 * 86_400, 60, 365 * 86_400),
        webhook_secret=webhook_secret,
        external_trust_roots=trust_root_paths(env),
        verification_limits=load_verification_limits(env),
        verification_pool=load_verification_pool(env),
    )
