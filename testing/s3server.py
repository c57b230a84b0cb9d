"""A moto S3 server in a child process, for tests that talk real HTTP to an S3 endpoint."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType


class MotoServer:
    """Runs moto's S3 server (``testing/moto_http.py``: moto's application under waitress, which
    keeps connections open) on 127.0.0.1 and a free port until ``stop``.

    Parameters:
        startup_timeout: seconds to wait for the server to answer HTTP before giving up.

    The server runs in its own process (not moto's in-process mocks), so requests cross a real
    socket exactly as they would to MinIO or AWS. Its output goes to a temporary log file that
    is quoted in the error when it fails to start.

    Limits: the free port is found by binding port 0 and closing it again, so another process
    could take it in between; the start then fails with the server's log in the message.
    """

    def __init__(self, startup_timeout: float = 20.0) -> None:
        self.startup_timeout = startup_timeout
        self.host = "127.0.0.1"
        self.port = _free_port(self.host)
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        command = [sys.executable, str(Path(__file__).with_name("moto_http.py")), self.host, str(self.port)]
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while not self._answers():
            if self._process.poll() is not None:
                problem = f"moto server exited with {self._process.returncode}"
            elif time.monotonic() > deadline:
                problem = f"moto server did not answer on {self.url} in {self.startup_timeout} s"
            else:
                time.sleep(0.05)
                continue
            output = self._output()
            self.stop()
            raise RuntimeError(f"{problem}: {output}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        self._log.close()

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _answers(self) -> bool:
        """True once the server gives any HTTP answer (moto's dashboard API, no proxy)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{self.url}/moto-api/data.json", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def _output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-2000:] or "(no output)"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
