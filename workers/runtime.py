"""What a worker process needs to run jobs, built once per process from the settings.

The converter pool is process-local (each dramatiq worker process owns its LibreOffice
instances); everything is created on first use, so importing the actors starts nothing.
The demo and the tests install their own runtime with ``install_runtime``.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass

from conversion import ConverterPool
from kmop.pipeline import Pipeline
from kmop.settings import Settings, load_settings
from signing.identities import IdentityStore
from signing.signer import DocumentSigner
from signing.timestamping import timestamper_for
from storage.base import DocumentStore
from workflow.registration_numbers import RegistrationNumbers

from .factories import store_from_settings, tracker_from_settings


@dataclass
class Runtime:
    store: DocumentStore
    pipeline: Pipeline
    converter: ConverterPool | None = None

    def close(self) -> None:
        if self.converter is not None:
            self.converter.close()
        self.pipeline.signer.identities.close()


_lock = threading.Lock()
_runtime: Runtime | None = None


def build_runtime(settings: Settings) -> Runtime:
    if settings.identities_file is None:
        from kmop.errors import SigningError

        raise SigningError("KMOP_IDENTITIES is not set: name the identities file of the signing roles")
    store = store_from_settings(settings)
    identities = IdentityStore.from_file(settings.identities_file)
    signer = DocumentSigner(identities, timestamper_for(settings.tsa_url, identities))
    pool = ConverterPool(
        size=settings.converter_pool_size,
        conversion_timeout=settings.conversion_timeout,
        max_conversions=settings.converter_max_conversions,
        max_memory_mb=settings.converter_max_memory_mb,
    )
    pool.start()
    numbers = RegistrationNumbers(store, first=settings.registration_number_first)
    return Runtime(store, Pipeline(store, pool, signer, tracker_from_settings(settings, store), numbers), pool)


def install_runtime(runtime: Runtime | None) -> None:
    global _runtime
    with _lock:
        _runtime = runtime


def current_runtime() -> Runtime | None:
    """The installed runtime, without building one."""
    with _lock:
        return _runtime


def get_runtime() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = build_runtime(load_settings())
            atexit.register(_runtime.close)
        return _runtime


_stores: dict[Settings, DocumentStore] = {}


def store_for(settings: Settings) -> DocumentStore:
    """The installed runtime's store, else the configured one, without starting a converter:
    recording a failure must not depend on what may have failed."""
    with _lock:
        if _runtime is not None:
            return _runtime.store
        if settings not in _stores:
            _stores[settings] = store_from_settings(settings)
        return _stores[settings]
