"""One unoserver process with the LibreOffice it drives; restartable.

An instance runs unoserver's server (``<uno python> -m kmop_unoserver``: documents loaded
hidden) in its own process group, with its own loopback ports (XML-RPC and UNO) and a fresh
LibreOffice profile directory for every start.
It converts one document at a time (unoserver's XML-RPC server is single-threaded); the pool
makes sure only one caller uses an instance at once.

Conversions are sent over XML-RPC directly rather than through ``unoserver.client.UnoClient``:
UnoClient cannot be given a timeout (and retries a refused connection for 40 s). The request is
the one UnoClient sends with paths: the .docx and the PDF travel as files in the instance's own
exchange folder (the server is our child on this machine; unoserver writes a document sent as
bytes to a file all the same), which spares both sides encoding each into base64 XML and
parsing it back (about 6 ms of the worker's CPU per document).
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path

from conversion.executables import UNOSERVER_MODULE
from conversion.export_options import (
    DOCX_IMPORT_FILTER,
    PDF_EXPORT_FILTER,
    PDFA_2B_FILTER_DATA,
    unoserver_filter_options,
)
from conversion.memory import process_tree, resident_bytes, running
from conversion.ports import LoopbackPorts
from conversion.processes import kill_process_group, terminate_process_group, watch_group
from conversion.samples import one_line_docx
from conversion.scheduling import under_normal_policy
from kmop.errors import ConversionError

logger = logging.getLogger(__name__)

#: API version of the unoserver XML-RPC protocol this module speaks (unoserver 3.x).
UNOSERVER_API = "3"

_LOOPBACK = "127.0.0.1"
_READY_POLL_INTERVAL = 0.2
_PING_TIMEOUT = 5.0
#: While starting, unoserver accepts connections before it answers them (it first connects to
#: its LibreOffice): a short wait per ping, so that a LibreOffice ending meanwhile is seen soon.
_START_PING_TIMEOUT = 1.0
_STDERR_TAIL_LINES = 15

# Environment variables that would point the system interpreter at the wrong packages.
_FOREIGN_PYTHON_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH")


class InstanceTimedOut(Exception):
    """The instance did not answer within the conversion's time limit (internal signal)."""


class InstanceGone(Exception):
    """The instance died or stopped answering during a conversion (internal signal)."""


@dataclass(frozen=True)
class InstanceSettings:
    """How to start an instance. ``pythonpath`` holds only the unoserver package links."""

    soffice: str
    uno_python: str
    pythonpath: Path
    start_timeout: float
    stop_grace: float


class ConverterInstance:
    """A supervised unoserver + LibreOffice pair, living in ``work_dir``.

    ``start()`` (re)starts it and returns once it answers; ``convert()`` turns .docx bytes into
    PDF/A-2b bytes; ``kill()`` ends it at once; ``close()`` stops it for good and removes
    ``work_dir``. ``start()`` and ``close()`` may race (a pool closing while an instance
    restarts): a closed instance never spawns a process again.
    """

    def __init__(self, name: str, work_dir: Path, settings: InstanceSettings, ports: LoopbackPorts) -> None:
        self.name = name
        self._work_dir = work_dir
        self._settings = settings
        self._ports = ports
        self._lock = threading.Lock()
        self._closed = False
        self._process: subprocess.Popen[bytes] | None = None
        self._reserved_ports: tuple[int, ...] = ()
        self._profile_dir: Path | None = None
        self._xmlrpc_port = 0
        self._generation = 0
        self._tree: list[int] = []
        self.conversions_since_start = 0
        #: Resident memory of unoserver and its LibreOffice after the last conversion (bytes;
        #: 0 where ``/proc`` cannot be read).
        self.resident_bytes = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Replace whatever runs now with a fresh process and wait until it answers.

        Raises ConversionError naming the executables and quoting the end of unoserver's
        output if it exits or does not answer within ``start_timeout``.
        """
        with self._lock:
            if self._closed:
                raise ConversionError(f"converter {self.name} is closed")
            self._discard_process()
            process = self._spawn()
        self._wait_until_ready(process)
        self._first_conversion()

    def kill(self) -> None:
        """End the process group at once (SIGKILL), e.g. after a hang."""
        with self._lock:
            self._discard_process()

    def stop(self) -> None:
        """End the process politely: SIGTERM, then SIGKILL after the grace period."""
        with self._lock:
            self._stop_process()

    def close(self) -> None:
        """Stop for good and remove the work directory."""
        with self._lock:
            self._closed = True
            self._stop_process()
            shutil.rmtree(self._work_dir, ignore_errors=True)

    @property
    def started(self) -> bool:
        """Whether a process was started and not discarded since (it may have died since)."""
        return self._process is not None

    def alive(self) -> bool:
        process = self._process
        return process is not None and process.poll() is None

    @property
    def process_group_id(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    # -- work ------------------------------------------------------------------------------

    def convert(self, docx: bytes, timeout: float, *, update_indexes: bool = True) -> bytes:
        """Convert ``docx`` to PDF/A-2b, bounding every wait on the server by ``timeout``.

        ``update_indexes``: have its tables of contents and other indexes brought up to date
        first (``conversion.indexes.needs_index_update`` tells whether there can be any).

        The server sends nothing until the conversion is done, so the socket timeout bounds the
        conversion itself. Raises InstanceTimedOut, InstanceGone, or ConversionError when
        LibreOffice refused the document while the instance stays healthy. Both files are
        removed afterwards, whatever happened.
        """
        name = uuid.uuid4().hex
        source, target = self._exchange_dir / f"{name}.docx", self._exchange_dir / f"{name}.pdf"
        try:
            self._exchange_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            source.write_bytes(docx)
        except OSError as exc:
            source.unlink(missing_ok=True)
            raise ConversionError(f"could not hand the document to {self.name}: {exc}") from exc
        try:
            self._convert_file(source, target, timeout, update_indexes)
            try:
                result = target.read_bytes()
            except FileNotFoundError:
                raise ConversionError(f"{self.name} wrote no PDF") from None
        finally:
            source.unlink(missing_ok=True)
            target.unlink(missing_ok=True)
        if not result:
            raise ConversionError(f"{self.name} returned no PDF")
        self.conversions_since_start += 1
        self.resident_bytes = self._measure_memory()
        return result

    def _convert_file(self, source: Path, target: Path, timeout: float, update_indexes: bool) -> None:
        proxy = self._proxy(timeout)
        try:
            with proxy:
                proxy.convert(
                    str(source),
                    None,  # indata: the document is the file
                    str(target),
                    None,  # convert_to: the PDF is written to the target path
                    PDF_EXPORT_FILTER,
                    unoserver_filter_options(PDFA_2B_FILTER_DATA),
                    update_indexes,
                    DOCX_IMPORT_FILTER,
                    None,  # password
                )
        except TimeoutError as exc:
            raise InstanceTimedOut(f"no answer from {self.name} within {timeout:g} s") from exc
        except xmlrpc.client.Fault as fault:
            if self.responsive():
                raise ConversionError(f"LibreOffice could not convert the document: {_fault_reason(fault)}") from fault
            raise InstanceGone(f"{self.name} failed and stopped answering: {_fault_reason(fault)}") from fault
        except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError) as exc:
            raise InstanceGone(f"{self.name} did not answer: {exc!r}") from exc

    def responsive(self) -> bool:
        """Whether the server answers ``info`` within a few seconds."""
        try:
            with self._proxy(_PING_TIMEOUT) as proxy:
                proxy.info()
        except (OSError, http.client.HTTPException, xmlrpc.client.Error):
            return False
        return True

    # -- internals -------------------------------------------------------------------------

    def _measure_memory(self) -> int:
        process = self._process
        if process is None:
            return 0
        measured = resident_bytes(self._tree) if self._tree else None
        if measured is None:  # first measurement, or a process of the tree has gone
            self._tree = process_tree(process.pid)
            measured = resident_bytes(self._tree)
        return measured or 0

    def _spawn(self) -> subprocess.Popen[bytes]:
        self._generation += 1
        xmlrpc_port, uno_port = self._ports.reserve(2)
        self._reserved_ports = (xmlrpc_port, uno_port)
        self._profile_dir = self._work_dir / f"profile-{self._generation}"
        temp_dir = self._work_dir / "tmp"
        temp_dir.mkdir(parents=True, exist_ok=True)
        command = [
            self._settings.uno_python, "-m", UNOSERVER_MODULE,
            "--interface", _LOOPBACK, "--port", str(xmlrpc_port),
            "--uno-interface", _LOOPBACK, "--uno-port", str(uno_port),
            "--executable", self._settings.soffice,
            # unoserver turns this path into the file:// URL LibreOffice wants.
            "--user-installation", str(self._profile_dir),
            "--temp-dir", str(temp_dir),
        ]  # fmt: skip
        try:
            with self._log_path.open("wb") as log:
                process = subprocess.Popen(
                    under_normal_policy(command),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    env=self._environment(),
                    start_new_session=True,
                )
        except OSError as exc:
            self._ports.release(self._reserved_ports)
            self._reserved_ports = ()
            raise ConversionError(f"could not run {self._settings.uno_python} for unoserver: {exc}") from exc
        self._process = process
        watch_group(process.pid, sys.executable)
        self.conversions_since_start = 0
        self._xmlrpc_port = xmlrpc_port
        logger.info("%s: started unoserver pid %d on port %d", self.name, process.pid, xmlrpc_port)
        return process

    def _environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in _FOREIGN_PYTHON_ENV}
        env["PYTHONPATH"] = str(self._settings.pythonpath)
        env["PYTHONNOUSERSITE"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # don't write into the virtualenv behind the symlink
        return env

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        """Until unoserver answers. A LibreOffice that ends while unoserver still waits for it
        fails the start at once: unoserver itself goes on trying to connect for 40 s."""
        deadline = time.monotonic() + self._settings.start_timeout
        office_seen = False
        while True:
            code = process.poll()
            if code is not None:
                self._abandon(process)
                if self._closed:
                    raise ConversionError(f"converter {self.name} was closed while starting")
                raise ConversionError(self._start_failure(f"exited with code {code} while starting"))
            office_running = any(map(running, process_tree(process.pid)[1:]))  # unoserver's LibreOffice
            if office_seen and not office_running and process.poll() is None:
                self._abandon(process)
                raise ConversionError(self._start_failure("LibreOffice ended while starting"))
            office_seen = office_seen or office_running
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._abandon(process)
                raise ConversionError(
                    self._start_failure(f"did not answer within {self._settings.start_timeout:g} s")
                )
            info = self._info(min(_START_PING_TIMEOUT, remaining))
            if info is not None:
                if info.get("api") != UNOSERVER_API:
                    self._abandon(process)
                    raise ConversionError(
                        f"unoserver {info.get('unoserver')} speaks API {info.get('api')}, "
                        f"this code speaks API {UNOSERVER_API}"
                    )
                return
            time.sleep(min(_READY_POLL_INTERVAL, max(0.0, deadline - time.monotonic())))

    def _first_conversion(self) -> None:
        """Convert a one-line document before the instance counts as started.

        LibreOffice loads its import and export filters on its first document, which makes that
        conversion several times slower than the next ones; a started instance has done it, so
        a job never waits for it, and an instance that answers but cannot convert fails here.
        """
        try:
            self.convert(one_line_docx("kmop-docs: eerste document van deze LibreOffice-instantie"),
                         self._settings.start_timeout)
        except (InstanceTimedOut, InstanceGone, ConversionError) as exc:
            with self._lock:
                self._discard_process()
            raise ConversionError(self._start_failure(f"could not convert its first document ({exc})")) from exc
        self.conversions_since_start = 0

    def _info(self, timeout: float) -> dict[str, object] | None:
        try:
            with self._proxy(timeout) as proxy:
                info = proxy.info()
        except (OSError, http.client.HTTPException, xmlrpc.client.Error):
            return None
        return info if isinstance(info, dict) else None

    def _abandon(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            if self._process is process:
                self._discard_process()

    def _stop_process(self) -> None:
        if self._process is not None:
            terminate_process_group(self._process, self._settings.stop_grace)
        self._discard_process()

    def _discard_process(self) -> None:
        """Kill the current process group and forget it; caller holds the lock."""
        if self._process is not None:
            kill_process_group(self._process)
            self._process = None
        self._tree = []
        self.resident_bytes = 0
        if self._reserved_ports:
            self._ports.release(self._reserved_ports)
            self._reserved_ports = ()
        if self._profile_dir is not None:
            shutil.rmtree(self._profile_dir, ignore_errors=True)
            self._profile_dir = None
        # what a conversion cut short may have left (a PDF written after its caller gave up)
        shutil.rmtree(self._exchange_dir, ignore_errors=True)

    def _proxy(self, timeout: float) -> xmlrpc.client.ServerProxy:
        return xmlrpc.client.ServerProxy(
            f"http://{_LOOPBACK}:{self._xmlrpc_port}",
            transport=_TimeoutTransport(timeout),
            allow_none=True,
        )

    def _start_failure(self, what: str) -> str:
        return (
            f"LibreOffice converter {self.name} ({self._settings.soffice} via unoserver under "
            f"{self._settings.uno_python}) {what}; last lines of its output:\n{self._stderr_tail()}"
        )

    def _stderr_tail(self) -> str:
        try:
            lines = self._log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no output)"
        return "\n".join(lines[-_STDERR_TAIL_LINES:]) or "(no output)"

    @property
    def _log_path(self) -> Path:
        return self._work_dir / "unoserver.log"

    @property
    def _exchange_dir(self) -> Path:
        return self._work_dir / "exchange"


class _TimeoutTransport(xmlrpc.client.Transport):
    """An XML-RPC transport whose connections time out (the stock one waits forever).

    It does not accept gzip: the stock transport does, so unoserver's server gzipped every PDF
    it sent over loopback and the client unzipped it again (CPU on both sides for nothing).
    """

    accept_gzip_encoding = False

    def __init__(self, timeout: float) -> None:
        super().__init__(use_builtin_types=True)
        self._timeout = timeout

    def make_connection(self, host: str | tuple[str, dict[str, str]]) -> http.client.HTTPConnection:
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection


def _fault_reason(fault: xmlrpc.client.Fault) -> str:
    """The last line of a server-side traceback, e.g. ``Could not load document ...``."""
    text = str(fault.faultString).strip()
    return text.splitlines()[-1] if text else f"fault {fault.faultCode}"
