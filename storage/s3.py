"""The S3 backend: documents in one bucket of any S3-compatible endpoint, through boto3."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from kmop.errors import (
    KmopError,
    ObjectExists,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
)
from storage.base import StoredObject

MAX_PRESIGN_SECONDS = 604_800  # seven days, the longest a SigV4 URL may live
SHA256_METADATA_NAME = "sha256"


class S3Store:
    """Stores documents in one bucket of an S3-compatible endpoint and never overwrites one.

    Parameters:
        bucket: the bucket that holds every object of this store.
        client: a boto3 S3 client. ``S3Store.from_settings`` builds one the way this service
            needs it: checksums only when required (boto3 >= 1.36 otherwise sends CRC checksums
            many S3-compatible servers reject), path-style addressing, bounded retries and
            timeouts.

    ``put_once`` is a conditional create, ``PutObject`` with ``If-None-Match: *``, and relies on
    the server honouring it as AWS S3 documents it: the object is written only if no object
    exists under the key; otherwise the server answers 412 ``PreconditionFailed``, or 409
    ``ConditionalRequestConflict`` when a conflicting write is in flight; of concurrent creates
    exactly one succeeds. A successful put is taken as proof that this call created the object
    and nothing is read back, because a read-back cannot repair a server that breaks the
    guarantee (the loser of a race may read its own bytes before the winner's land).

    Limits: the guarantee is the server's. Some S3-compatible servers check the condition
    non-atomically (moto checks, then writes, so racing writers can both succeed) and some
    ignore it (the second write silently replaces the first). Where two writers may race on a
    key, use a server that implements conditional writes atomically (AWS S3; MinIO since 2024).

    Every object carries its SHA-256 twice: as user metadata ``sha256`` (hex; ``head`` returns
    it) and as the S3 checksum ``ChecksumSHA256`` (base64), which AWS verifies on upload; moto
    stores it without verifying.

    Errors: connection failures, timeouts and 5xx answers raise ``StorageUnavailable`` (the
    queue retries those); other refusals raise ``StorageError`` naming the S3 error code.
    """

    def __init__(self, bucket: str, client: BaseClient) -> None:
        self.bucket = bucket
        self.client = client

    @classmethod
    def from_settings(
        cls,
        endpoint_url: str | None,
        bucket: str,
        region: str,
        access_key: str | None,
        secret_key: str | None,
        addressing_style: str = "path",
        *,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        max_attempts: int = 3,
    ) -> S3Store:
        """A store on a client built from plain settings.

        ``endpoint_url`` None means AWS itself; ``access_key`` and ``secret_key`` None mean
        boto3's usual credential chain. ``max_attempts`` counts the first try.
        """
        config = Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": addressing_style},
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        session = botocore.session.get_session()
        # Nothing here reads a response's timestamps (LastModified); kept as the server's text
        # they cost nothing, while dateutil parsing them was a fifth of the CPU of a listing.
        session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp_as_text)
        client = boto3.session.Session(botocore_session=session).client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )
        return cls(bucket, client)

    def ensure_bucket(self) -> None:
        """Create the bucket unless this account owns it already (for set-up, tests, demos)."""
        request: dict[str, Any] = {"Bucket": self.bucket}
        region = self.client.meta.region_name
        if region and region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with self._translated_errors("create bucket", self.bucket):
            try:
                self.client.create_bucket(**request)
            except ClientError as error:
                if _error_code(error) != "BucketAlreadyOwnedByYou":
                    raise

    def put_once(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> StoredObject:
        digest = hashlib.sha256(data)
        stored_metadata = stored_user_metadata(metadata, digest.hexdigest())
        with self._translated_errors("put", key):
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                IfNoneMatch="*",
                ContentType=content_type,
                # The algorithm header makes servers such as moto record the checksum too.
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=base64.b64encode(digest.digest()).decode("ascii"),
                Metadata=stored_metadata,
            )
        return StoredObject(
            key=key,
            sha256=digest.hexdigest(),
            size=len(data),
            content_type=content_type,
            metadata=stored_metadata,
            etag=response.get("ETag", ""),
        )

    def get(self, key: str) -> bytes:
        with self._translated_errors("get", key):
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            with response["Body"] as body:
                return body.read()

    def head(self, key: str) -> StoredObject | None:
        try:
            with self._translated_errors("head", key):
                response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFound:
            return None
        # HTTP header names are case-insensitive: a server or proxy may send x-amz-meta-Sha256
        # (waitress title-cases them); S3 stores user metadata names in lower case.
        metadata = {name.lower(): value for name, value in response.get("Metadata", {}).items()}
        if SHA256_METADATA_NAME not in metadata:
            raise StorageError(
                f"S3 object {key!r} in bucket {self.bucket!r} has no {SHA256_METADATA_NAME!r} "
                "metadata; it was not stored by put_once"
            )
        return StoredObject(
            key=key,
            sha256=metadata[SHA256_METADATA_NAME],
            size=response["ContentLength"],
            content_type=response.get("ContentType", ""),
            metadata=metadata,
            etag=response.get("ETag", ""),
        )

    def list(self, prefix: str) -> list[str]:
        return [key for key, _ in self.list_tagged(prefix)]

    def list_tagged(self, prefix: str) -> list[tuple[str, str]]:
        """Keys and ETags from ``ListObjectsV2`` (S3 changes an object's ETag with its content)."""
        entries: list[tuple[str, str]] = []
        with self._translated_errors("list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                entries.extend((item["Key"], item.get("ETag", "")) for item in page.get("Contents", []))
        return sorted(entries)

    def presign(self, key: str, expires_in: int = 300) -> str:
        """A signed GET URL valid for ``expires_in`` seconds (1 to 604800); sends no request."""
        check_expires_in(expires_in)
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )

    @contextmanager
    def _translated_errors(self, operation: str, key: str) -> Iterator[None]:
        """Turn boto3's exceptions into kmop errors whose message names what failed."""
        where = f"{operation} {key!r} in bucket {self.bucket!r}"
        endpoint = self.client.meta.endpoint_url
        try:
            yield
        except ClientError as error:
            raise _kmop_error(error, operation, key, where, endpoint) from error
        except (ConnectionError, HTTPClientError) as error:
            raise StorageUnavailable(
                f"S3 endpoint {endpoint} could not be reached to {where}: {error}"
            ) from error
        except BotoCoreError as error:
            raise StorageError(f"S3 could not {where}: {error}") from error


def stored_user_metadata(metadata: dict[str, str] | None, sha256: str) -> dict[str, str]:
    """The user metadata as stored: the caller's entries plus ``sha256`` (hex).

    Names must be lower-case ASCII (S3 lower-cases them) and values printable ASCII (S3 sends
    them as HTTP headers), so that ``head`` gives back exactly what was stored.
    """
    stored = dict(metadata or {})
    for name, value in stored.items():
        if name == SHA256_METADATA_NAME:
            raise ValueError(f"metadata name {name!r} is reserved for the object's SHA-256")
        if not isinstance(name, str) or not _METADATA_NAME.fullmatch(name):
            raise ValueError(
                f"metadata name {name!r} must be lower-case ASCII letters, digits, '-' or '_'"
            )
        if not isinstance(value, str) or not _METADATA_VALUE.fullmatch(value):
            raise ValueError(f"metadata value of {name!r} must be printable ASCII text")
    stored[SHA256_METADATA_NAME] = sha256
    return stored


def check_expires_in(expires_in: int) -> None:
    """Refuse a presign lifetime outside 1 to 604800 seconds with a ``ValueError``."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise ValueError(f"expires_in must be a whole number of seconds, got {expires_in!r}")
    if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
        raise ValueError(
            f"expires_in must be from 1 to {MAX_PRESIGN_SECONDS} seconds, got {expires_in}"
        )


_METADATA_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*")
_CONDITION_FAILED_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404"}
_TRANSIENT_CODES = {"SlowDown", "RequestTimeout", "Throttling"}


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _kmop_error(
    error: ClientError, operation: str, key: str, where: str, endpoint: str
) -> KmopError:
    code = _error_code(error)
    message = error.response.get("Error", {}).get("Message") or "no message"
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if operation == "put" and (code in _CONDITION_FAILED_CODES or status == 412):
        return ObjectExists(key)
    if operation in ("get", "head") and code in _NOT_FOUND_CODES:
        return ObjectNotFound(key)
    if status >= 500 or status == 429 or code in _TRANSIENT_CODES:
        return StorageUnavailable(
            f"S3 endpoint {endpoint} failed to {where}: {code} (HTTP {status}): {message}"
        )
    return StorageError(f"S3 refused to {where}: {code} (HTTP {status}): {message}")


def _timestamp_as_text(value: str) -> str:
    return value
