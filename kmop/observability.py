"""What an operator sees of a running service: structured logs, Prometheus metrics, a health check.

Logs. ``configure_logging()`` makes every log record one JSON object on one line (``ts``,
``level``, ``logger``, ``message``, the record's ``extra`` fields and, while a job runs, its
``job_id``, ``dossier_id``, ``kind`` and ``idempotency_key``). The job fields come from a
context variable that ``workers.middleware_metrics.JobLogContext`` sets around each message;
``job_context()`` does the same for code that runs jobs without dramatiq (the demo, tests).

Metrics. Counters of jobs started, done, failed for good and handed back for a retry; the
seconds each pipeline stage took (``observe_result``); the converter pool's counters
(``observe_pool``). dramatiq runs several worker processes, so the metrics use
prometheus_client's multiprocess mode: ``kmop worker`` points ``PROMETHEUS_MULTIPROC_DIR`` at
an emptied folder before dramatiq starts, every process writes its samples there, and one
process (a dramatiq fork, ``workers.middleware_metrics.serve_metrics``) serves the sum of all on
``KMOP_METRICS_PORT`` (default 9191; 0 turns it off). Without that variable (the demo, tests)
the metrics live in the process and ``start_metrics_server`` serves them. The variable must be
set before ``prometheus_client`` is first imported in a process: set it in the environment of
the command, never from inside a running program.

Health. ``check_health(settings)`` pings Redis, lists a prefix of the store and checks the
converter (a running pool's processes, or that LibreOffice and unoserver can be found, or a real
cold conversion); the report names every part that failed.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import functools
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import multiprocess

# --- structured logs ------------------------------------------------------------------------

JOB_FIELDS = ("job_id", "dossier_id", "kind", "idempotency_key")
_MAX_FIELD_CHARS = 128  # a job's fields come from its message, which anyone can send
_job: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("kmop_job", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def bind_job(**fields: object) -> contextvars.Token:
    """Attach job fields to every log line of this thread (or task) until ``unbind_job``.

    Only strings are kept, each cut to 128 characters, so that a malformed message cannot
    flood the logs; unknown names are ignored.
    """
    bound = {name: _short(value) for name, value in fields.items()
             if name in JOB_FIELDS and isinstance(value, str)}
    return _job.set(bound)


def unbind_job(token: contextvars.Token | None = None) -> None:
    if token is not None:
        _job.reset(token)
    else:
        _job.set(None)


def current_job() -> dict[str, str]:
    return dict(_job.get() or {})


@contextlib.contextmanager
def job_context(**fields: object) -> Iterator[None]:
    """``with job_context(job_id=..., dossier_id=...):`` binds the fields for the block."""
    token = bind_job(**fields)
    try:
        yield
    finally:
        unbind_job(token)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (ASCII, so no character in a value can split it)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_job.get() or {})
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=True, default=str)


def configure_logging(level: int | str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record of the process, as JSON lines, to ``stream`` (default: stderr now).

    Replaces the root logger's handlers (dramatiq's worker processes install a plain-text one
    that writes to the pipe their parent reads; ``sys.stderr`` is that pipe there, so the JSON
    lines travel the same way). Returns the handler.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    return handler


def _short(value: str) -> str:
    return value if len(value) <= _MAX_FIELD_CHARS else value[: _MAX_FIELD_CHARS - 1] + "…"


# --- metrics --------------------------------------------------------------------------------

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PORT_ENV = "KMOP_METRICS_PORT"
DEFAULT_METRICS_PORT = 9191
STAGES = ("render", "convert", "sign", "store", "record")
UNKNOWN_KIND = "unknown"
_STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

JOBS_STARTED = Counter("kmop_jobs_started", "Document jobs a worker began (each attempt).", ["kind"])
JOBS_DONE = Counter("kmop_jobs_done", "Document jobs that completed.", ["kind"])
JOBS_FAILED = Counter("kmop_jobs_failed", "Document jobs that failed for good (dead letters).",
                      ["kind", "error"])
JOBS_RETRIED = Counter("kmop_jobs_retried", "Attempts that failed and were handed back for a retry.",
                       ["kind", "error"])
JOB_DURATION = Histogram("kmop_job_duration_seconds", "Wall time of one attempt of a job.", ["kind"],
                         buckets=_STAGE_BUCKETS)
STAGE_DURATION = Histogram("kmop_stage_duration_seconds", "Seconds a pipeline stage took for one document.",
                           ["stage", "kind"], buckets=_STAGE_BUCKETS)
DOCUMENTS_STORED = Counter("kmop_documents_stored", "Signed documents newly stored (not found from a "
                           "previous attempt).", ["kind"])
CONVERTER_CONVERSIONS = Counter("kmop_converter_conversions", "Documents the LibreOffice pools converted.")
CONVERTER_RESTARTS = Counter("kmop_converter_restarts", "LibreOffice instances replaced (recycled, "
                             "crashed or timed out).")
CONVERTER_TIMEOUTS = Counter("kmop_converter_timeouts", "Conversions that exceeded their time limit.")
CONVERTER_CRASHES = Counter("kmop_converter_crashes", "LibreOffice instances found dead or dying.")
CONVERTER_POOL_SIZE = Gauge("kmop_converter_pool_size", "LibreOffice instances per pool, summed over "
                            "the live worker processes.", multiprocess_mode="livesum")

INDEX_PROJECTIONS = Counter("kmop_index_projections", "Ledger events projected into the dossier index "
                            "right after their append.")
INDEX_PROJECTION_FAILURES = Counter("kmop_index_projection_failures", "Ledger events whose projection into "
                                    "the dossier index failed (left to kmop index catch-up).")
INDEX_LAG_EVENTS = Gauge("kmop_index_lag_events", "Ledger events not in the dossier index, as last "
                         "measured (kmop index status, catch-up, health).", multiprocess_mode="mostrecent")

_POOL_COUNTERS = {"conversions": CONVERTER_CONVERSIONS, "restarts": CONVERTER_RESTARTS,
                  "timeouts": CONVERTER_TIMEOUTS, "crashes": CONVERTER_CRASHES}
_pool_seen: dict[int, dict[str, int]] = {}
_pool_lock = threading.Lock()


def kind_label(kind: object) -> str:
    """A metric label for a job's kind: a known kind's name, else ``unknown`` (a label per value
    of a hostile message would grow the metrics without bound)."""
    return kind if isinstance(kind, str) and kind in _known_kinds() else UNKNOWN_KIND


def observe_result(result: Any) -> None:
    """Record a finished job's stage timings (``kmop.pipeline.DocumentResult``).

    Stages that did not run for this document (0 s: a countersignature renders nothing, a
    job found recorded does nothing but look) are not observed, so they do not pull the
    histograms towards zero.
    """
    kind = kind_label(result.kind)
    for stage in STAGES:
        seconds = getattr(result.timings, stage, 0.0)
        if seconds > 0:
            STAGE_DURATION.labels(stage=stage, kind=kind).observe(seconds)
    if result.created:
        DOCUMENTS_STORED.labels(kind=kind).inc()


def observe_pool(stats: Any, pool_id: int = 0) -> None:
    """Bring the converter counters up to date with a pool's ``stats()`` (``conversion.PoolStats``).

    The pool counts since it started; the counters grow by what changed since the last call for
    the same ``pool_id`` (use ``id(pool)``), so calling often counts nothing twice.
    """
    with _pool_lock:
        seen = _pool_seen.setdefault(pool_id, {})
        for name, counter in _POOL_COUNTERS.items():
            value = int(getattr(stats, name))
            delta = value - seen.get(name, 0)
            if delta > 0:
                counter.inc(delta)
            seen[name] = value
    CONVERTER_POOL_SIZE.set(int(stats.size))


def metrics_port(env: Mapping[str, str] | None = None) -> int:
    """``KMOP_METRICS_PORT`` (0 to 65535; 0 turns the endpoint off), default 9191."""
    raw = (os.environ if env is None else env).get(METRICS_PORT_ENV) or str(DEFAULT_METRICS_PORT)
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        from kmop.settings import SettingsError

        raise SettingsError(f"{METRICS_PORT_ENV}: {raw!r} is not a port number (0 to 65535)")
    return int(raw)


def prepare_multiprocess_dir(path: Path) -> Path:
    """Create ``path`` empty, for ``PROMETHEUS_MULTIPROC_DIR``: samples of an earlier run must
    not be added to this one's. Call it before the worker processes start."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def metrics_registry() -> CollectorRegistry:
    """The registry to expose: every process's samples in multiprocess mode, else this process's."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return prometheus_client.REGISTRY


def start_metrics_server(port: int, address: str = "0.0.0.0") -> Any:
    """Serve ``/metrics`` on ``port`` from a daemon thread; returns the server (``.shutdown()``)."""
    server, _thread = prometheus_client.start_http_server(port, addr=address, registry=metrics_registry())
    return server


def mark_process_dead(pid: int | None = None) -> None:
    """In multiprocess mode, drop a stopped process's live gauges (its counters stay counted)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid or os.getpid())


@functools.cache
def _known_kinds() -> frozenset[str]:
    from templates.catalog import kind_names

    return frozenset(kind_names())


# --- health ---------------------------------------------------------------------------------

HEALTH_PREFIX = "health/"


@dataclass(frozen=True)
class HealthCheck:
    name: str  # "redis", "storage" or "converter"
    ok: bool
    detail: str
    seconds: float = 0.0


@dataclass(frozen=True)
class HealthReport:
    checks: list[HealthCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failing(self) -> list[str]:
        return [check.name for check in self.checks if not check.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "failing": self.failing, "checks": [asdict(c) for c in self.checks]}


def check_health(settings: Any, *, store: Any = None, pool: Any = None, convert: bool = False,
                 timeout: float = 3.0) -> HealthReport:
    """Check the parts a worker needs; the report is not ok when any part is unavailable.

    - ``redis``: a PING to ``settings.redis_url`` (skipped, and ok, with the in-process broker);
    - ``storage``: a listing of ``health/`` in ``store``, or in the store the settings name;
    - ``converter``: with ``pool`` (a ``ConverterPool``) its LibreOffice processes must be
      running; without, LibreOffice, its Python and unoserver must be found, and with
      ``convert`` a one-line document is converted by a cold LibreOffice.

    ``timeout`` bounds each network call (seconds). Never raises for an unavailable part.
    """
    return HealthReport([
        _timed_check("redis", lambda: _check_redis(settings, timeout)),
        _timed_check("storage", lambda: _check_storage(settings, store, timeout)),
        _timed_check("converter", lambda: _check_converter(pool, convert)),
    ])


def _timed_check(name: str, probe: Any) -> HealthCheck:
    start = time.perf_counter()
    try:
        detail = probe()
        ok = True
    except Exception as exc:  # noqa: BLE001 - every failure is a finding, reported by name
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return HealthCheck(name, ok, detail, round(time.perf_counter() - start, 3))


def _check_redis(settings: Any, timeout: float) -> str:
    if settings.broker != "redis":
        return f"not used (broker {settings.broker!r})"
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()
    return f"PING answered by {_without_password(settings.redis_url)}"


def _check_storage(settings: Any, store: Any, timeout: float) -> str:
    if store is None:
        store = _probe_store(settings, timeout)
    store.list(HEALTH_PREFIX)
    where = getattr(store, "bucket", None) or getattr(store, "root", None)
    return f"listed {HEALTH_PREFIX!r} in {type(store).__name__} {where}"


def _probe_store(settings: Any, timeout: float) -> Any:
    """The configured store, with short timeouts and no retries (a probe must answer fast)."""
    if settings.storage == "local":
        from storage.local import LocalFolderStore

        root = Path(settings.local_storage_dir)
        if not root.is_dir() or not os.access(root, os.R_OK | os.W_OK | os.X_OK):
            raise OSError(f"local storage folder {root} is missing or not writable")
        return LocalFolderStore(root)
    from storage.s3 import S3Store

    return S3Store.from_settings(
        endpoint_url=settings.s3_endpoint, bucket=settings.s3_bucket, region=settings.s3_region,
        access_key=settings.s3_access_key, secret_key=settings.s3_secret_key,
        connect_timeout=timeout, read_timeout=timeout, max_attempts=1,
    )


def _check_converter(pool: Any, convert: bool) -> str:
    if pool is not None:
        groups = pool.process_group_ids()
        alive = [pgid for pgid in groups if _process_exists(pgid)]
        if not alive:
            raise RuntimeError("no LibreOffice instance of the pool is running")
        stats = pool.stats()
        return (f"{len(alive)}/{stats.size} instances running; {stats.conversions} conversions, "
                f"{stats.restarts} restarts, {stats.timeouts} timeouts, {stats.crashes} crashes")
    import importlib.util

    from conversion.executables import find_soffice, find_uno_python

    soffice = find_soffice()
    uno_python = find_uno_python(soffice)
    if importlib.util.find_spec("unoserver") is None:
        raise RuntimeError("the unoserver package is not installed")
    if convert:
        from conversion import convert_cold
        from conversion.samples import one_line_docx

        pdf = convert_cold(one_line_docx("kmop health check"), timeout=60)
        if not pdf.startswith(b"%PDF"):
            raise RuntimeError("LibreOffice answered with something that is not a PDF")
        return f"{soffice} converted a test document ({len(pdf)} bytes)"
    return f"LibreOffice {soffice}, UNO Python {uno_python}"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _without_password(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
