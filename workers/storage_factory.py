"""Builds the configured document store."""

from __future__ import annotations

from kmop.settings import Settings
from storage.base import DocumentStore
from storage.local import LocalFolderStore
from storage.s3 import S3Store


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
