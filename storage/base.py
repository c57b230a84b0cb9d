"""The storage interface: put once, get, head, list, presign.

Two implementations share it: ``storage.s3.S3Store`` (any S3-compatible endpoint, through boto3)
and ``storage.local.LocalFolderStore`` (the embedded default). Neither ever overwrites an object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size: int
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)
    #: The store's tag for this object as written ("" where unknown); see ``list_tagged``.
    etag: str = ""


@runtime_checkable
class DocumentStore(Protocol):
    def put_once(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> StoredObject:
        """Create ``key`` with ``data`` unless it exists.

        Raises ``ObjectExists`` when an object is already stored under ``key`` (nothing is
        overwritten), ``StorageUnavailable`` when the backend cannot be reached. The object's
        SHA-256 (hex) is computed here, stored with it and returned.
        """
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes; ``ObjectNotFound`` when absent."""
        ...

    def head(self, key: str) -> StoredObject | None:
        """The object's description, or None when absent."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""
        ...

    def list_tagged(self, prefix: str) -> list[tuple[str, str]]:
        """Every key under ``prefix`` with its entity tag, sorted by key.

        The tag is the one ``put_once`` returned for the object and changes whenever the
        object's content is changed (by anyone else: the store itself never overwrites), so a
        copy kept under a key and its tag is a copy of what is stored now.
        """
        ...

    def presign(self, key: str, expires_in: int = 300) -> str:
        """A URL that hands out the object for ``expires_in`` seconds."""
        ...
