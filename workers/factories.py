"""Builds the configured document store and state tracker."""

from __future__ import annotations

import redis

from kmop.settings import Settings
from storage.base import DocumentStore
from storage.local import LocalFolderStore
from storage.s3 import S3Store
from workflow.ledger import Ledger, no_lock
from workflow.locks import RedisDossierLock
from workflow.tracker import Tracker


def store_from_settings(settings: Settings) -> DocumentStore:
    if settings.storage == "local":
        return LocalFolderStore(settings.local_storage_dir)
    return S3Store.from_settings(
        endpoint_url=settings.s3_endpoint,
        bucket=settings.s3_bucket,
        region=settings.s3_region,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
    )


def tracker_from_settings(settings: Settings, store: DocumentStore) -> Tracker:
    """The state tracker over ``store``; with Redis configured, appends are also serialised there."""
    lock = no_lock
    if settings.broker == "redis":
        lock = RedisDossierLock(redis.Redis.from_url(settings.redis_url), settings.redis_namespace)
    return Tracker(Ledger(store, lock=lock))
