"""A running gunicorn master, driven by signals as an operator drives it, followed through a
binary upgrade by its pid file.

gunicorn's signals (https://gunicorn.org/signals): HUP re-reads the configuration
(gunicorn.conf.py, hence the settings and `.env`), starts new workers and stops the old ones
gracefully; USR2 starts a new master from the same command line, which inherits the listening
sockets (GUNICORN_FD, or LISTEN_FDS under systemd) and writes `<pidfile>.2`; TERM stops a master
gracefully, waiting up to graceful_timeout (SERVER_WRITE_TIMEOUT) for in-flight requests. QUIT
is gunicorn's *quick* shutdown: it cuts streams, so an upgrade ends the old master with TERM.

    master = GunicornMaster(run_dir / "gunicorn.pid")   # gunicorn started with --pid that file
    old_workers = master.reload()
    new_pid = master.upgrade(ready=lambda new_pid: ...)  # the README's runbook, step by step

Processes are looked up in /proc: after an upgrade the new master is no child of the test.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.support.polling import wait_for


def process_status(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


def alive(pid: int) -> bool:
    status = process_status(pid)
    return status is not None and status[0] not in ("Z", "X")


def parent_of(pid: int) -> int | None:
    status = process_status(pid)
    return status[1] if status else None


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            status = process_status(int(entry.name))
            if status and status[1] == pid and status[0] not in ("Z", "X"):
                found.add(int(entry.name))
    return found


class GunicornMaster:
    def __init__(self, pidfile: Path):
        self.pidfile = pidfile
        # (time.monotonic(), wall clock) when upgrade() sent TERM to the old master
        self.old_master_stopped_at: tuple[float, datetime] | None = None

    @property
    def pid(self) -> int:
        """The master the pid file names now."""
        return int(self.pidfile.read_text().strip())

    def workers(self) -> set[int]:
        return children(self.pid)

    def reload(self) -> set[int]:
        """HUP; returns the workers that were serving, which now drain and exit."""
        old = self.workers()
        os.kill(self.pid, signal.SIGHUP)
        return old

    def upgrade(self, ready: Callable[[int], bool], timeout: float = 60) -> int:
        """USR2, wait until the new master serves (`ready(new_pid)`), hand it the pid file, TERM
        the old master and wait until it is gone; returns the new master's pid."""
        old = self.pid
        os.kill(old, signal.SIGUSR2)
        upgraded = self.pidfile.with_name(self.pidfile.name + ".2")

        def new_master() -> int | None:
            try:
                pid = int(upgraded.read_text().strip())
            except (FileNotFoundError, ValueError):
                return None
            return pid if pid != old and alive(pid) else None

        new = int(wait_for(new_master, timeout, "the new master's pid file"))
        wait_for(lambda: ready(new), timeout, "the new master's workers to serve")
        # The pid file names the new master before the old one exits: what systemd's PIDFile=
        # reads when the main process goes, so the service follows the new master.
        staged = self.pidfile.with_name(self.pidfile.name + ".new")
        staged.write_text(f"{new}\n")
        staged.replace(self.pidfile)
        self.old_master_stopped_at = (time.monotonic(), datetime.now(UTC))
        os.kill(old, signal.SIGTERM)
        wait_for(lambda: not alive(old), timeout, "the old master to finish its requests and exit")
        # Once its parent is gone gunicorn promotes the new master, which drops `<pidfile>.2`.
        wait_for(lambda: not upgraded.exists(), timeout, "the new master's promotion")
        assert self.pid == new
        return new

    def stop(self, timeout: float = 30) -> None:
        """TERM whichever master the pid files name (test teardown); KILL what outlives `timeout`."""
        upgraded = self.pidfile.with_name(self.pidfile.name + ".2")
        pids = []
        for path in (self.pidfile, upgraded):
            try:
                pids.append(int(path.read_text().strip()))
            except (FileNotFoundError, ValueError):
                pass
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid in pids:
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                for worker in children(pid):
                    os.kill(worker, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
