"""The local-folder backend: the embedded default, one file per object under a root folder."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from kmop.errors import InvalidKeyPart, ObjectExists, ObjectNotFound, StorageError
from storage.base import StoredObject

# The metadata rules are S3's (names and values travel as HTTP headers there); the local folder
# applies the same ones so that both backends accept and return the same metadata.
from storage.s3 import check_expires_in, stored_user_metadata

SIDECAR_SUFFIX = ".meta.json"
INTERNAL_PREFIX = ".kmop-"  # temporary files and folder locks; never part of a key
_TEMP_PREFIX = f"{INTERNAL_PREFIX}tmp-"
_LOCK_NAME = f"{INTERNAL_PREFIX}lock"
_MAX_PART_BYTES = 200  # leaves room for the sidecar suffix within a 255-byte file name


class LocalFolderStore:
    """Stores documents as files under ``root`` and never overwrites one.

    Parameters:
        root: the folder that holds every object; created if missing. The object ``a/b.pdf``
            is the file ``root/a/b.pdf``; its content type, SHA-256 and metadata sit next to it
            in the sidecar ``root/a/b.pdf.meta.json``.

    ``put_once`` writes the bytes to a temporary file in the object's folder and fsyncs it, then,
    holding that folder's lock, writes the sidecar and creates the object's name with
    ``os.link``, which never replaces an existing file: exactly one of any number of racing
    threads or processes creates the object, the others get ``ObjectExists``. The lock (an
    ``flock`` on ``.kmop-lock`` in the folder) exists for the sidecar: without it a losing writer
    could replace the winner's sidecar before its own link fails. The sidecar is in place
    before the link, so a visible object always has its metadata. A crash leaves at worst a
    stray temporary file or an orphan sidecar, which ``list`` skips and the next ``put_once``
    replaces.

    Keys are checked so that none leads outside ``root``: no absolute keys, no empty, ``.`` or
    ``..`` parts, no backslashes or NUL characters; parts that start with ``.kmop-`` or end with
    ``.meta.json`` are reserved for the store's own files.

    Limits: POSIX only (``fcntl.flock``, ``os.link``). The guarantees hold among writers that go
    through this class; a process writing into the folder directly can still break them. A key
    cannot be both an object and a folder (``a`` and ``a/b``), which S3 allows. Files are
    private to the service's user (mode 0600). ``presign`` returns a ``file://`` URL that is
    not time-limited.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def put_once(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> StoredObject:
        path = self._path_for(key)
        sha256 = hashlib.sha256(data).hexdigest()
        stored = StoredObject(
            key=key,
            sha256=sha256,
            size=len(data),
            content_type=content_type,
            metadata=stored_user_metadata(metadata, sha256),
        )
        try:
            self._make_folder(key, path.parent)
            temporary = _write_temporary(path.parent, data)
            try:
                with _folder_lock(path.parent):
                    _link_once(key, path, temporary, _sidecar_bytes(stored))
            finally:
                temporary.unlink(missing_ok=True)
        except OSError as error:
            raise StorageError(f"local folder store could not put {key!r}: {error}") from error
        return replace(stored, etag=_etag(data))

    def get(self, key: str) -> bytes:
        path = self._path_for(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as error:
            raise StorageError(f"local folder store could not read {key!r}: {error}") from error

    def head(self, key: str) -> StoredObject | None:
        path = self._path_for(key)
        if not path.is_file():
            return None
        try:
            record = json.loads(_sidecar(path).read_bytes())
            etag = _etag(path.read_bytes())
        except FileNotFoundError:
            raise StorageError(
                f"object {key!r} has no metadata sidecar; it was not stored by put_once"
            ) from None
        except (OSError, ValueError) as error:
            raise StorageError(f"metadata sidecar of {key!r} is unreadable: {error}") from error
        return StoredObject(
            key=key,
            sha256=record["sha256"],
            size=record["size"],
            content_type=record["content_type"],
            metadata=record["metadata"],
            etag=etag,
        )

    def list(self, prefix: str) -> list[str]:
        return sorted(key for key, _ in self._objects(prefix))

    def list_tagged(self, prefix: str) -> list[tuple[str, str]]:
        """Keys with the SHA-256 of each file's content as its tag (the files are read)."""
        entries: list[tuple[str, str]] = []
        for key, path in self._objects(prefix):
            try:
                entries.append((key, _etag(path.read_bytes())))
            except FileNotFoundError:
                continue  # removed while listed
            except OSError as error:
                raise StorageError(f"local folder store could not read {key!r}: {error}") from error
        return sorted(entries)

    def _objects(self, prefix: str) -> Iterator[tuple[str, Path]]:
        for folder, _, names in os.walk(self._folder_for_prefix(prefix)):
            relative = Path(folder).relative_to(self.root)
            for name in names:
                if _is_internal(name):
                    continue
                key = (relative / name).as_posix()
                if key.startswith(prefix):
                    yield key, Path(folder, name)

    def presign(self, key: str, expires_in: int = 300) -> str:
        """A ``file://`` URL of the object.

        ``expires_in`` is checked like the S3 backend's (1 to 604800) but not enforced: the URL
        works for as long as the file exists, for anyone who can read the folder.
        """
        check_expires_in(expires_in)
        return self._path_for(key).as_uri()

    def _path_for(self, key: str) -> Path:
        path = self.root.joinpath(*_checked_parts(key))
        if not path.resolve().is_relative_to(self.root):
            raise InvalidKeyPart("key", key, "leads outside the store's folder (symbolic link)")
        return path

    def _folder_for_prefix(self, prefix: str) -> Path:
        """The deepest folder that holds every key starting with ``prefix``."""
        if prefix == "":
            return self.root
        return self.root.joinpath(*_checked_parts(prefix, is_prefix=True)[:-1])

    def _make_folder(self, key: str, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StorageError(
                f"cannot store {key!r}: part of its folder is an object, and a key cannot be "
                "both an object and a folder in the local folder store"
            ) from None


def _checked_parts(key: str, *, is_prefix: bool = False) -> list[str]:
    """The ``/``-separated parts of ``key``, refused if any could lead outside the root.

    With ``is_prefix`` the last part may be empty (``dossiers/d1/``) or a partial name.
    """
    if not isinstance(key, str) or key == "":
        raise InvalidKeyPart("key", str(key), "must be a non-empty text")
    if "\x00" in key or "\\" in key:
        raise InvalidKeyPart("key", key, "must not contain NUL characters or backslashes")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKeyPart("key", key.encode("utf-8", "backslashreplace").decode(), "is not valid Unicode") from None
    if key.startswith("/"):
        raise InvalidKeyPart("key", key, "must be relative (no leading '/')")
    parts = key.split("/")
    for part in parts[:-1] if is_prefix and parts[-1] == "" else parts:
        if part in ("", ".", ".."):
            raise InvalidKeyPart("key", key, "must not have empty, '.' or '..' parts")
        if _is_internal(part):
            raise InvalidKeyPart(
                "key",
                key,
                f"must not have parts starting {INTERNAL_PREFIX!r} or ending {SIDECAR_SUFFIX!r}"
                " (reserved for the store's own files)",
            )
        if len(part.encode("utf-8", "surrogatepass")) > _MAX_PART_BYTES:
            raise InvalidKeyPart(
                "key", key, f"must not have parts longer than {_MAX_PART_BYTES} bytes"
            )
    return parts


def _link_once(key: str, path: Path, temporary: Path, sidecar: bytes) -> None:
    """Write the sidecar, then give ``temporary`` the object's name unless it is taken.

    Runs under the folder's lock; ``os.link`` refuses an existing name all the same.
    """
    if path.is_dir():
        raise StorageError(
            f"cannot store {key!r}: the local folder store holds keys under '{key}/', and a "
            "key cannot be both an object and a folder"
        )
    if os.path.lexists(path):
        raise ObjectExists(key)
    _replace_durably(_sidecar(path), sidecar)
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise ObjectExists(key) from None
    _fsync_folder(path.parent)


def _etag(content: bytes) -> str:
    return f'"{hashlib.sha256(content).hexdigest()}"'


def _is_internal(name: str) -> bool:
    return name.startswith(INTERNAL_PREFIX) or name.endswith(SIDECAR_SUFFIX)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _sidecar_bytes(stored: StoredObject) -> bytes:
    record = {
        "sha256": stored.sha256,
        "size": stored.size,
        "content_type": stored.content_type,
        "metadata": stored.metadata,
    }
    return json.dumps(record, indent=2, sort_keys=True).encode("utf-8")


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder``, between threads (one open file each) and processes."""
    descriptor = os.open(folder / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _write_temporary(folder: Path, data: bytes) -> Path:
    """A new temporary file in ``folder`` holding ``data``, flushed to disk."""
    descriptor, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _replace_durably(path: Path, data: bytes) -> None:
    """Put ``data`` under ``path`` in one step: readers see the old file or the new, whole."""
    temporary = _write_temporary(path.parent, data)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
