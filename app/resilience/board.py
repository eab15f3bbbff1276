"""The host's board: where each gunicorn worker pins its view of the deployments for the others.

Circuit breakers and health samples live in each worker process (a breaker must be asked on
every request, so it cannot be a network round trip away), yet `GET /health/providers` and the
console must show the same numbers whichever worker serves them. So each worker publishes its
view, and the one serving merges all of them (app/resilience/health.py):

    <dir>/<pid>.json      one worker's view, replaced atomically (write + rename) at most once a
                          second, when something changed; removed when the worker exits
    <dir>/checker.lock    flock'd by the one worker that runs the active checks

`<dir>` is private to one gunicorn master: `$TMPDIR/inference-gateway-health-<uid>-<master pid>`,
created 0700 by the first worker and refused (the worker then shows its own view only, with a
warning) if it exists but is not ours, or not private. Views of workers that are gone (their
pid no longer runs) are ignored; the last worker out removes the directory.

Why files, and not Redis or the Prometheus files: a board per host works with every limiter
storage (memory:// included) and needs no service; what it shows is per host anyway, like
/metrics (each host has its own workers, breakers and network path to providers). Prometheus'
multiprocess files hold numbers only (no last error message), and exist only with telemetry on.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import tempfile
from typing import Any

log = logging.getLogger("gateway.health")


class HostBoard:
    def __init__(self, directory: str):
        self.directory = directory
        self._lock_fd: int | None = None

    @classmethod
    def for_master(cls, master_pid: int) -> HostBoard | None:
        """The board of the workers of `master_pid` (created if needed); None if it cannot be trusted."""
        directory = os.path.join(tempfile.gettempdir(), f"inference-gateway-health-{os.getuid()}-{master_pid}")
        board = cls(directory)
        return board if board._ensure() else None

    def _ensure(self) -> bool:
        try:
            os.mkdir(self.directory, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            log.warning("provider health shows this worker only: cannot create %s (%s)", self.directory, exc.strerror)
            return False
        try:
            info = os.lstat(self.directory)
        except OSError:
            return False
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            log.warning("provider health shows this worker only: %s is not a private directory of this user",
                        self.directory)
            return False
        return True

    def _path(self, pid: int) -> str:
        return os.path.join(self.directory, f"{pid}.json")

    def publish(self, pid: int, view: dict[str, Any]) -> None:
        data = json.dumps(view, separators=(",", ":")).encode()
        for _ in range(2):  # the last worker of a HUP may have removed the directory meanwhile
            try:
                fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{pid}-")
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(temporary, self._path(pid))
                return
            except FileNotFoundError:
                if not self._ensure():
                    return

    def views(self, *, besides: int) -> list[dict[str, Any]]:
        """The views of the other live workers."""
        found = []
        try:
            names = os.listdir(self.directory)
        except OSError:
            return found
        for name in names:
            pid_text, dot, suffix = name.partition(".")
            if suffix != "json" or not dot or not pid_text.isdigit() or int(pid_text) == besides:
                continue
            if not _running(int(pid_text)):
                continue
            try:
                with open(os.path.join(self.directory, name), "rb") as handle:
                    view = json.loads(handle.read())
            except (OSError, ValueError):
                continue  # gone meanwhile
            if isinstance(view, dict):
                found.append(view)
        return found

    def try_checker_lock(self) -> bool:
        """Become the host's active checker (kept until `withdraw`); False if another worker is."""
        import fcntl

        if self._lock_fd is not None:
            return True
        try:
            fd = os.open(os.path.join(self.directory, "checker.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def withdraw(self, pid: int) -> None:
        """This worker is leaving: its view goes; the last one out removes the directory."""
        with contextlib.suppress(OSError):
            os.remove(self._path(pid))
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock: another worker takes the checks
            self._lock_fd = None
        if not any(name.endswith(".json") for name in _listing(self.directory)):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(self.directory, "checker.lock"))
            with contextlib.suppress(OSError):
                os.rmdir(self.directory)


def _listing(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True
