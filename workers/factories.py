"""Builds the configured document store and state tracker."""

from __future__ import annotations

import redis

from kmop.settings import Settings
from storage.base import DocumentStore
from storage.local import LocalFolderStore
from storage.s3 import S3Store
from workflow.event_cache import RedisEventCache
from workflow.ledger import Ledger
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


def store_scope(settings: Settings) -> str:
    """What names the configured store among others: its endpoint and bucket, or its folder."""
    if settings.storage == "local":
        return f"local:{settings.local_storage_dir.resolve()}"
    return f"s3:{settings.s3_endpoint or 'aws'}/{settings.s3_bucket}"


def tracker_from_settings(settings: Settings, store: DocumentStore) -> Tracker:
    """The state tracker over ``store``; with Redis configured, appends are also serialised
    there and ledger events are shared there between processes (``workflow.event_cache``)."""
    if settings.broker != "redis":
        return Tracker(_indexed(Ledger(store), settings))
    client = redis.Redis.from_url(settings.redis_url)
    shared_cache = None
    if settings.ledger_cache_seconds:
        shared_cache = RedisEventCache(client, settings.redis_namespace, store_scope(settings),
                                       settings.ledger_cache_seconds)
    lock = RedisDossierLock(client, settings.redis_namespace)
    return Tracker(_indexed(Ledger(store, lock=lock, shared_cache=shared_cache), settings))


def _indexed(ledger: Ledger, settings: Settings) -> Ledger:
    """``ledger`` with each append projected into the dossier index, where one is configured."""
    if settings.index_url:
        from index.observer import attach

        attach(ledger, settings.index_url)
    return ledger
