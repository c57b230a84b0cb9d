"""Ending a LibreOffice process tree that runs in its own process group.

Every LibreOffice we start runs as the leader of a new session (``start_new_session=True``), so
its children (``oosplash``, ``soffice.bin``) share the leader's process group id, the leader's
pid, and a signal to the group reaches them all.

Children that outlive their parent are reparented to PID 1. In a container whose PID 1 does not
reap orphans (no ``--init``), a killed ``soffice.bin`` then stays behind as a zombie: it holds a
pid but no memory or ports. Run the service under an init that reaps (``docker run --init``).
"""

from __future__ import annotations

import os
import signal
import subprocess

_REAP_TIMEOUT = 10.0


def kill_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL every process of the group ``process`` leads and reap the leader."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        process.wait(_REAP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass  # stuck in uninterruptible sleep; nothing more a signal can do


def terminate_process_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """Ask the leader to stop, give it ``grace`` seconds, then SIGKILL the whole group.

    SIGTERM goes to the leader only. unoserver forwards it to LibreOffice and waits for it;
    a SIGTERM delivered to every member at once was seen to leave ``oosplash`` hanging after
    ``soffice.bin`` exited (LibreOffice 7.4).
    """
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    kill_process_group(process)


# A watchdog per LibreOffice process group: it polls until its parent (the worker process that
# owns the pool) is gone, then kills the group. Without it, a worker killed with SIGKILL or by
# the OOM killer leaves its LibreOffice instances running forever, each holding ~200 MB. It runs
# under the worker's own interpreter, ends by itself when the group is gone, and costs one
# sleeping process per instance.
_WATCHDOG = """
import os, signal, sys, time
owner, group = int(sys.argv[1]), int(sys.argv[2])
while True:
    time.sleep(0.5)
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        break
    if os.getppid() != owner:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        break
"""


def watch_group(group: int, interpreter: str) -> subprocess.Popen[bytes]:
    """Kill process group ``group`` when this process dies, however it dies.

    The watchdog runs in a session of its own: in this process's group it died with it when the
    whole group was killed (``kill -9 -- -PGID``, a supervisor stopping the worker's group, the
    test harness), and left LibreOffice running."""
    return subprocess.Popen(
        [interpreter, "-I", "-c", _WATCHDOG, str(os.getpid()), str(group)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
