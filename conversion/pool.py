"""A pool of warm LibreOffice instances converting .docx to PDF/A-2b."""

from __future__ import annotations

import itertools
import logging
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from conversion.executables import find_soffice, find_uno_python, unoserver_pythonpath
from conversion.indexes import needs_index_update
from conversion.instance import ConverterInstance, InstanceGone, InstanceSettings, InstanceTimedOut
from conversion.ports import LoopbackPorts
from conversion.scheduling import normal_policy
from kmop.errors import ConversionError, ConversionTimeout

logger = logging.getLogger(__name__)

#: Share of the memory limit from which an instance's replacement is started ahead.
_PRESTART_SHARE = 0.9


@dataclass(frozen=True)
class PoolStats:
    """Counters since the pool started.

    ``restarts`` counts every replacement of a running or dead instance (recycling after
    ``max_conversions``, after a crash, after a timeout), not the initial starts;
    ``prestarted`` counts the recyclings whose replacement was started ahead, while the worn
    instance still converted.
    """

    size: int
    conversions: int
    restarts: int
    timeouts: int
    crashes: int
    prestarted: int = 0


class ConverterPool:
    """Owns ``size`` long-lived LibreOffice instances (unoserver) and converts .docx to PDF/A-2b.

    ``convert()`` is thread-safe. Each call takes a free instance, waiting as long as it takes
    for one, so at most ``size`` conversions run at once. Each conversion is bounded by
    ``conversion_timeout`` (or the ``timeout`` of the call); the time spent waiting for a free
    instance or for a restart is not counted.

    Supervision:

    * a conversion that times out gets its instance killed (SIGKILL to its process group) and
      replaced, then raises ConversionTimeout;
    * an instance found dead, or dying during a conversion, is replaced and the conversion tried
      once more; a second failure raises ConversionError;
    * an instance whose processes hold more than ``max_memory_mb`` of resident memory after a
      conversion, or that has made ``max_conversions`` conversions, is replaced before its next
      use. Its replacement is started in the background ahead of that (from 90 % of the memory
      limit, ``prestart_margin`` conversions before the count), so recycling costs no start-up
      wait (about 5 s of unoserver start), only a second LibreOffice's memory for a few
      seconds. Measured on our documents, an instance grows to about 250 MB over its first
      hundred conversions and stays there for hundreds more, while a start costs about 1 s of
      CPU: the memory limit recycles an instance that grows, the count (default 1,000) one that
      ages without growing;
    * a document LibreOffice cannot read raises ConversionError and leaves the instance alone.

    Restarts happen in the calling thread: the call that finds a dead or worn-out instance
    waits for its replacement (a few seconds). ``close()`` stops every instance, including
    busy ones, whose callers then get a ConversionError. Always ``close()`` the pool (or use it
    as a context manager): it registers no exit hook, and its processes outlive a forgotten
    pool.

    ``soffice`` and ``uno_python`` default to ``$KMOP_SOFFICE`` / ``$KMOP_UNO_PYTHON``, then to
    what is found on the system (see :mod:`conversion.executables`).
    """

    def __init__(
        self,
        size: int = 1,
        conversion_timeout: float = 60.0,
        max_conversions: int = 1000,
        start_timeout: float = 60.0,
        *,
        soffice: str | None = None,
        uno_python: str | None = None,
        stop_grace: float = 5.0,
        prestart_margin: int | None = None,
        max_memory_mb: int = 512,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        if max_conversions < 1:
            raise ValueError(f"max_conversions must be at least 1, got {max_conversions}")
        if max_memory_mb < 1:
            raise ValueError(f"max_memory_mb must be at least 1, got {max_memory_mb}")
        for name, value in (("conversion_timeout", conversion_timeout), ("start_timeout", start_timeout)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.size = size
        self.conversion_timeout = conversion_timeout
        self.max_conversions = max_conversions
        self.max_memory_mb = max_memory_mb
        self.start_timeout = start_timeout
        self._soffice = soffice
        self._uno_python = uno_python
        self._stop_grace = stop_grace
        self.prestart_margin = max(1, max_conversions // 10) if prestart_margin is None else prestart_margin

        self._condition = threading.Condition()
        self._idle: deque[ConverterInstance] = deque()
        self._instances: list[ConverterInstance] = []
        self._work_dir: Path | None = None
        self._settings: InstanceSettings | None = None
        self._ports: LoopbackPorts | None = None
        self._numbers = itertools.count(size + 1)
        self._started = False
        self._closed = False
        self._successors: dict[ConverterInstance, Future[ConverterInstance]] = {}
        self._starting: set[ConverterInstance] = set()
        self._background = ThreadPoolExecutor(max_workers=size, thread_name_prefix="converter-successor")

        self._stats_lock = threading.Lock()
        self._conversions = 0
        self._restarts = 0
        self._timeouts = 0
        self._crashes = 0
        self._prestarted = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start all instances in parallel and return when every one answers.

        Raises ConversionError (and leaves nothing running) if any instance fails to start.
        """
        with self._condition:
            if self._closed:
                raise ConversionError("the converter pool is closed")
            if self._started:
                return
            self._started = True
        try:
            soffice = find_soffice(self._soffice)
            uno_python = find_uno_python(soffice, self._uno_python)
            self._work_dir = Path(tempfile.mkdtemp(prefix="kmop-conversion-"))
            self._settings = InstanceSettings(
                soffice=soffice,
                uno_python=uno_python,
                pythonpath=unoserver_pythonpath(self._work_dir / "pythonpath"),
                start_timeout=self.start_timeout,
                stop_grace=self._stop_grace,
            )
            self._ports = LoopbackPorts()
            self._instances = [self._new_instance(number) for number in range(1, self.size + 1)]
            self._run_on_all(self._start_instance)
        except BaseException:
            self.close()
            raise
        with self._condition:
            self._idle.extend(self._instances)
            self._condition.notify_all()

    def close(self) -> None:
        """Stop every instance (SIGTERM, SIGKILL after the grace period) and remove their files.

        Idempotent. Callers waiting for an instance get a ConversionError.
        """
        with self._condition:
            if self._closed:
                return
            self._closed = True
            self._condition.notify_all()
            successors = list(self._successors.values())
            self._successors.clear()
            starting = list(self._starting)
        for instance in starting:  # their start() then fails at once
            instance.close()
        self._background.shutdown(wait=True)
        for future in successors:
            if future.exception() is None:
                future.result().close()
        if self._instances:
            self._run_on_all(ConverterInstance.close, raise_first=False)
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self) -> ConverterPool:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- work ------------------------------------------------------------------------------

    def convert(self, docx: bytes, timeout: float | None = None) -> bytes:
        """Convert a .docx document to PDF/A-2b with all fonts embedded.

        ``timeout`` overrides ``conversion_timeout`` for this call. Raises ConversionTimeout
        when the conversion takes longer, ConversionError when it fails otherwise.
        """
        limit = self.conversion_timeout if timeout is None else timeout
        if limit <= 0:
            raise ValueError(f"timeout must be positive, got {limit}")
        update_indexes = needs_index_update(docx)  # before an instance waits for it
        with normal_policy():  # an instance idles until its caller runs (conversion.scheduling)
            instance = self._acquire()
            try:
                instance = self._prepare(instance)
                return self._convert_on(instance, docx, limit, update_indexes)
            finally:
                self._release(instance)

    def stats(self) -> PoolStats:
        with self._stats_lock:
            return PoolStats(self.size, self._conversions, self._restarts, self._timeouts, self._crashes,
                             self._prestarted)

    def resident_bytes(self) -> dict[int, int]:
        """Resident memory of each running instance's processes after its last conversion, by
        process group id (0 where ``/proc`` cannot be read)."""
        return {pgid: instance.resident_bytes for instance in self._instances
                if (pgid := instance.process_group_id) is not None}

    def process_group_ids(self) -> list[int]:
        """Process group ids of the running instances (each is also its unoserver's pid)."""
        return [pgid for instance in self._instances if (pgid := instance.process_group_id) is not None]

    # -- internals -------------------------------------------------------------------------

    def _convert_on(self, instance: ConverterInstance, docx: bytes, limit: float, update_indexes: bool) -> bytes:
        for attempt in (1, 2):
            try:
                pdf = instance.convert(docx, limit, update_indexes=update_indexes)
            except InstanceTimedOut as timed_out:
                self._count(timeouts=1)
                self._replace_after_timeout(instance)
                raise ConversionTimeout(
                    f"the conversion took longer than {limit:g} s; its LibreOffice instance was replaced"
                ) from timed_out
            except InstanceGone as gone:
                if self._closed:
                    raise ConversionError("the converter pool was closed during the conversion") from gone
                self._count(crashes=1)
                logger.warning("%s: %s; restarting it (attempt %d)", instance.name, gone, attempt)
                self._restart(instance)
                if attempt == 2:
                    raise ConversionError(
                        f"LibreOffice failed twice on this document, the last time with: {gone}"
                    ) from gone
                continue
            self._count(conversions=1)
            if self._wear(instance, ahead=True) is not None:
                self._prestart_successor(instance)
            return pdf
        raise AssertionError("unreachable")

    def _prepare(self, instance: ConverterInstance) -> ConverterInstance:
        """The instance to convert on: this one running and not worn out, or its successor."""
        if not instance.started:  # an earlier restart failed
            self._restart(instance)
        elif not instance.alive():
            self._count(crashes=1)
            logger.warning("%s: found dead; replacing it", instance.name)
            successor = self._take_successor(instance)
            if successor is not None:
                return successor
            self._restart(instance)
        elif (wear := self._wear(instance)) is not None:
            logger.info("%s: recycling %s", instance.name, wear)
            successor = self._take_successor(instance)
            if successor is not None:
                return successor
            instance.stop()
            self._restart(instance)
        return instance

    def _wear(self, instance: ConverterInstance, *, ahead: bool = False) -> str | None:
        """Why ``instance`` is due for replacement (``ahead``: for starting its successor), or None.

        Memory counts once the instance has converted a job's document: one that starts above
        the limit is still used once per start, and a warning says the limit is too low.
        """
        resident_mb = instance.resident_bytes / 2**20
        if instance.conversions_since_start and resident_mb >= self.max_memory_mb * (_PRESTART_SHARE if ahead else 1.0):
            if instance.conversions_since_start == 1 and not ahead:
                logger.warning("%s: %.0f MB resident after one conversion, above the limit of %d MB: every "
                               "instance is replaced after each document; raise the limit", instance.name,
                               resident_mb, self.max_memory_mb)
            return f"at {resident_mb:.0f} MB resident (limit {self.max_memory_mb} MB)"
        if instance.conversions_since_start >= self.max_conversions - (self.prestart_margin if ahead else 0):
            return f"after {instance.conversions_since_start} conversions"
        return None

    def _new_instance(self, number: int) -> ConverterInstance:
        assert self._work_dir is not None and self._settings is not None and self._ports is not None
        return ConverterInstance(f"converter-{number}", self._work_dir / f"instance-{number}", self._settings,
                                 self._ports)

    def _prestart_successor(self, instance: ConverterInstance) -> None:
        with self._condition:
            if self._closed or instance in self._successors:
                return
            successor = self._new_instance(next(self._numbers))
            self._starting.add(successor)
            self._successors[instance] = self._background.submit(self._start_successor, successor)

    def _start_successor(self, successor: ConverterInstance) -> ConverterInstance:
        try:
            successor.start()
        except BaseException:
            successor.close()
            raise
        finally:
            with self._condition:
                self._starting.discard(successor)
        return successor

    def _take_successor(self, instance: ConverterInstance) -> ConverterInstance | None:
        """Put the started successor of a worn-out instance in its place; None if there is none."""
        with self._condition:
            future = self._successors.pop(instance, None)
        if future is None:
            return None
        try:
            successor = future.result()
        except ConversionError as exc:
            logger.warning("%s: its successor did not start (%s); restarting it in place", instance.name, exc)
            return None
        with self._condition:
            if self._closed:
                successor.close()
                raise ConversionError("the converter pool is closed")
            self._instances[self._instances.index(instance)] = successor
        self._count(restarts=1, prestarted=1)
        logger.info("%s: replaced by %s, started ahead", instance.name, successor.name)
        try:
            self._background.submit(instance.close)  # SIGTERM and its grace period, off this thread
        except RuntimeError:  # the pool closed meanwhile
            instance.close()
        return successor

    def _start_instance(self, instance: ConverterInstance) -> None:
        """Start ``instance``; one whose LibreOffice exits or hangs while starting is started once
        more before the pool gives up (seen on a fresh machine: of two instances started at the
        same moment, one LibreOffice ended at once on a C++ exception; it started the next time)."""
        try:
            instance.start()
        except ConversionError as failure:
            if self._closed:
                raise
            logger.warning("%s: %s; starting it once more", instance.name, failure)
            self._restart(instance)

    def _restart(self, instance: ConverterInstance) -> None:
        self._count(restarts=1)
        instance.start()

    def _replace_after_timeout(self, instance: ConverterInstance) -> None:
        instance.kill()
        if self._closed:
            return
        try:
            self._restart(instance)
        except ConversionError:
            # The caller's problem is the timeout; the next user of this instance retries the start.
            logger.exception("%s: could not be restarted after a timeout", instance.name)

    def _acquire(self) -> ConverterInstance:
        with self._condition:
            if not self._started:
                raise RuntimeError("ConverterPool.start() was not called")
            while not self._idle and not self._closed:
                self._condition.wait()
            if self._closed:
                raise ConversionError("the converter pool is closed")
            return self._idle.popleft()

    def _release(self, instance: ConverterInstance) -> None:
        with self._condition:
            self._idle.append(instance)
            self._condition.notify()

    def _count(
        self, conversions: int = 0, restarts: int = 0, timeouts: int = 0, crashes: int = 0, prestarted: int = 0
    ) -> None:
        with self._stats_lock:
            self._conversions += conversions
            self._restarts += restarts
            self._timeouts += timeouts
            self._crashes += crashes
            self._prestarted += prestarted

    def _run_on_all(self, action: Callable[[ConverterInstance], None], raise_first: bool = True) -> None:
        """Run ``action`` on every instance in parallel; re-raise the first failure."""
        with ThreadPoolExecutor(max_workers=len(self._instances), thread_name_prefix="converter") as executor:
            futures = [executor.submit(action, instance) for instance in self._instances]
        errors = [error for future in futures if (error := future.exception()) is not None]
        for error in errors[1:] if raise_first else errors:
            logger.error("converter pool: %s", error)
        if raise_first and errors:
            raise errors[0]
