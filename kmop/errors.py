"""Error types of kmop-docs.

Every error carries a message a user can act on. Errors are raised where the fact is known and
turned into exit codes (CLI), HTTP statuses (API) or dead letters (workers) at the edge.

``TransientError`` marks failures that may pass on a later attempt (a storage endpoint that is
down, a converter instance that crashed); the queue retries those and only those.
"""

from __future__ import annotations


class KmopError(Exception):
    """Base class of every error this service raises on purpose."""


class TransientError(KmopError):
    """A failure that may pass when the same job is tried again later."""


class InvalidJob(KmopError):
    """A document job whose data does not satisfy its kind's schema."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class UnknownDocumentKind(InvalidJob):
    def __init__(self, kind: str, known: list[str]) -> None:
        super().__init__("kind", f"unknown document kind {kind!r}; expected one of {', '.join(known)}")


class RenderError(KmopError):
    """A template could not be rendered with the given data."""


class ConversionError(TransientError):
    """LibreOffice failed to convert a document (the instance is replaced; the job may retry)."""


class ConversionTimeout(ConversionError):
    """A conversion did not finish within its time limit."""


class SigningError(KmopError):
    """A document could not be signed (missing identity, wrong passphrase, bad input PDF)."""


class TimestampUnavailable(TransientError):
    """The timestamp authority did not answer; a signature is never made without its timestamp."""


class StorageError(KmopError):
    """Storage refused an operation for a reason that will not pass by itself."""


class StorageUnavailable(TransientError):
    """The storage endpoint could not be reached or answered with a server error."""


class ObjectExists(StorageError):
    """A conditional create found an object under the key already; nothing was overwritten."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"an object already exists under {key!r}")


class ObjectNotFound(StorageError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"no object under {key!r}")


class InvalidKeyPart(StorageError):
    """A dossier id, kind or other key component that could escape its place in the bucket."""

    def __init__(self, field: str, value: str, reason: str) -> None:
        self.field = field
        super().__init__(f"{field}: {value!r} {reason}")


class StepOutOfOrder(KmopError):
    """A workflow transition that the dossier's current state does not allow."""
