"""Real processes for tests and benchmarks: a private Redis, a TCP proxy to cut a connection, a worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float = 120, interval: float = 0.2,
             alive: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if alive is not None:
            assert alive.poll() is None, "the worker process died"
        time.sleep(interval)
    raise AssertionError(f"condition not reached within {timeout} s")


class RedisServer:
    """A redis-server of the test's own on a free loopback port.

    ``persistent``: with AOF persistence (``appendfsync always``), so that a killed server keeps
    every acknowledged write (the fault tests restart it); without, nothing is written to disk.
    """

    def __init__(self, directory: Path, persistent: bool = True) -> None:
        self.directory = directory
        self.persistent = persistent
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
             *persistence, "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            wait_for(lambda: _pings(client), timeout=20, interval=0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


class TcpProxy:
    """Forwards a loopback port to a target; ``down()`` refuses and cuts connections, ``up()`` restores."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            try:  # wakes the accepting thread (a close alone leaves it accepting on Linux)
                server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            server.close()
        with self._lock:
            for connection in self._connections:
                try:  # shut down first: a close alone neither wakes the pipe blocked on the
                    # socket nor tells the peer, whose kept-alive connection would then hang
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    connection.close()
                except OSError:
                    pass
            self._connections.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def worker_env(*, redis_url: str, namespace: str, s3_endpoint: str, bucket: str, pki_dir: Path,
               **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "KMOP_BROKER": "redis",
        "KMOP_REDIS_URL": redis_url,
        "KMOP_REDIS_NAMESPACE": namespace,
        "KMOP_STORAGE": "s3",
        "KMOP_S3_ENDPOINT": s3_endpoint,
        "KMOP_S3_BUCKET": bucket,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "KMOP_IDENTITIES": str(pki_dir / "identities.json"),
        "KMOP_PKI_PASSPHRASE": "test-passphrase",
        "KMOP_CONVERTER_POOL_SIZE": "1",
    })
    env.update(extra)
    return env


class Worker:
    """``python -m dramatiq workers.app`` in its own session, so it can be killed whole."""

    def __init__(self, env: dict[str, str], log: Path, processes: int = 1, threads: int = 2) -> None:
        self.env = env
        self.log_path = log
        self.processes = processes
        self.threads = threads
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        from workers.broker import dramatiq_environment

        log = self.log_path.open("ab")
        env = {**dramatiq_environment(self.threads), **self.env}  # as `kmop worker` sets them
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "workers.app", "--processes", str(self.processes),
             "--threads", str(self.threads), "--worker-shutdown-timeout", "60000"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 180) -> None:
        """Wait until every worker process has started its LibreOffice pool."""
        from workers.warm_start import READY_MESSAGE

        deadline = time.monotonic() + timeout
        while self.log().count(READY_MESSAGE) < self.processes:
            assert self.process is not None and self.process.poll() is None, f"the workers died:\n{self.log()[-3000:]}"
            assert time.monotonic() < deadline, f"workers not ready after {timeout:g} s:\n{self.log()[-3000:]}"
            time.sleep(0.2)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 90) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # LibreOffice children left behind, if any
        except ProcessLookupError:
            pass
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cpu_ticks(self, name: str) -> int:
        """CPU time (clock ticks, user and system) used so far by the worker's descendants whose
        command name contains ``name``: it grows while LibreOffice converts, and only then."""
        total = 0
        for pid in self.descendants(name):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total

    def descendants(self, name: str) -> list[int]:
        """PIDs of the worker's descendant processes whose command name contains ``name``
        (LibreOffice runs in process groups of its own, so the tree is walked by parent)."""
        assert self.process is not None
        parents: dict[int, int] = {}
        names: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            pid = int(entry.name)
            names[pid] = stat[stat.index("(") + 1: stat.rindex(")")]
            parents[pid] = int(stat[stat.rindex(")") + 2:].split()[1])
        found = []
        for pid, comm in names.items():
            ancestor = parents.get(pid)
            while ancestor not in (None, 0, 1):
                if ancestor == self.process.pid:
                    if name in comm:
                        found.append(pid)
                    break
                ancestor = parents.get(ancestor)
        return found
