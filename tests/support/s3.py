"""Buckets of the tests' S3 endpoint."""

from __future__ import annotations

from storage.s3 import S3Store


def remove_bucket(store: S3Store) -> None:
    """Empty and delete the store's bucket, leaving a shared endpoint as it was found."""
    for key in store.list(""):
        store.client.delete_object(Bucket=store.bucket, Key=key)
    store.client.delete_bucket(Bucket=store.bucket)
