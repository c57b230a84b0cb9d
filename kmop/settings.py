"""Configuration from the environment, read and validated once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kmop.errors import KmopError
from signing.policy import POLICY_ENV, PolicyFileError, load_policies, policy_file


class SettingsError(KmopError):
    """An environment variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    broker: str  # "redis" or "stub" (in-process)
    redis_url: str
    redis_namespace: str
    redis_heartbeat_timeout_ms: int
    redis_maintenance_chance: int
    ledger_cache_seconds: int  # how long ledger events are kept in Redis for other processes; 0: not at all
    storage: str  # "s3" or "local"
    local_storage_dir: Path
    s3_endpoint: str | None
    s3_bucket: str
    s3_region: str
    s3_access_key: str | None
    s3_secret_key: str | None
    identities_file: Path | None
    tsa_url: str | None
    converter_pool_size: int
    conversion_timeout: float
    converter_max_conversions: int
    converter_max_memory_mb: int
    job_time_limit_ms: int
    job_max_retries: int
    worker_scheduling: str  # "batch" or "normal" (see workers/scheduling.py)
    signature_policy: Path | None = None  # a deployment's own signing/policy.json (checked here)
    registration_number_first: int = 1  # where the registration numbers' sequence starts
    index_url: str | None = None  # the dossier index's database (SQLAlchemy URL); None: no index


def int_setting(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A whole number from the environment within ``low..high``; ``default`` when unset."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}: {value} is outside {low}..{high}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise SettingsError(f"{name}: {value!r} is not one of {', '.join(choices)}")
    return value


def _index_url(env: Mapping[str, str], storage: str, local_dir: Path) -> str | None:
    """``KMOP_INDEX_URL``; unset, a SQLite file in the local storage folder (the embedded default)
    or none with S3 (the workers of a deployment share one database, which must be named); set
    empty, no index."""
    if "KMOP_INDEX_URL" in env:
        return env["KMOP_INDEX_URL"] or None
    return f"sqlite:///{local_dir.resolve() / 'index.sqlite'}" if storage == "local" else None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    identities = env.get("KMOP_IDENTITIES")
    signature_policy = policy_file(env) if env.get(POLICY_ENV) else None
    if signature_policy is not None:
        try:
            load_policies(signature_policy)
        except PolicyFileError as exc:
            raise SettingsError(f"{POLICY_ENV}: {exc}") from None
    timeout = int_setting(env, "KMOP_CONVERSION_TIMEOUT", 60, 1, 3600)
    storage = _choice(env, "KMOP_STORAGE", "s3", ("s3", "local"))
    local_storage_dir = Path(env.get("KMOP_LOCAL_STORAGE_DIR") or "kmop-store")
    return Settings(
        broker=_choice(env, "KMOP_BROKER", "redis", ("redis", "stub")),
        redis_url=env.get("KMOP_REDIS_URL") or "redis://127.0.0.1:6379/0",
        redis_namespace=env.get("KMOP_REDIS_NAMESPACE") or "kmop",
        redis_heartbeat_timeout_ms=int_setting(env, "KMOP_REDIS_HEARTBEAT_TIMEOUT_MS", 15_000, 1_000, 600_000),
        redis_maintenance_chance=int_setting(env, "KMOP_REDIS_MAINTENANCE_CHANCE", 100_000, 1, 1_000_000),
        ledger_cache_seconds=int_setting(env, "KMOP_LEDGER_CACHE_SECONDS", 86_400, 0, 90 * 86_400),
        storage=storage,
        local_storage_dir=local_storage_dir,
        s3_endpoint=env.get("KMOP_S3_ENDPOINT") or None,
        s3_bucket=env.get("KMOP_S3_BUCKET") or "kmop-documents",
        s3_region=env.get("KMOP_S3_REGION") or "us-east-1",
        s3_access_key=env.get("AWS_ACCESS_KEY_ID") or None,
        s3_secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        identities_file=Path(identities) if identities else None,
        tsa_url=env.get("KMOP_TSA_URL") or None,
        converter_pool_size=int_setting(env, "KMOP_CONVERTER_POOL_SIZE", 1, 1, 64),
        conversion_timeout=float(timeout),
        converter_max_conversions=int_setting(env, "KMOP_CONVERTER_MAX_CONVERSIONS", 1000, 1, 100_000),
        converter_max_memory_mb=int_setting(env, "KMOP_CONVERTER_MAX_MEMORY_MB", 512, 64, 1_048_576),
        job_time_limit_ms=int_setting(env, "KMOP_JOB_TIME_LIMIT_MS", (timeout + 120) * 1000, 1000, 86_400_000),
        job_max_retries=int_setting(env, "KMOP_JOB_MAX_RETRIES", 5, 0, 100),
        worker_scheduling=_choice(env, "KMOP_WORKER_SCHEDULING", "batch", ("batch", "normal")),
        signature_policy=signature_policy,
        registration_number_first=int_setting(env, "KMOP_REGISTRATION_NUMBER_FIRST", 1, 1, 999_999),
        index_url=_index_url(env, storage, local_storage_dir),
    )
