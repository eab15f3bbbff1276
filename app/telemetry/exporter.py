"""`GET /metrics`, served once per host by gunicorn's master, summing every worker.

prometheus-client's multiprocess mode: each worker writes its values to files in
`PROMETHEUS_MULTIPROC_DIR`; the master's metrics server reads and sums them on each scrape.
gunicorn.conf.py wires the steps to gunicorn's server hooks:

    config read  prepare()        a fresh private directory (0700), set in the environment before any
                                  worker forks and before prometheus_client is imported
    on_starting  start()          wipe the directory's old files, serve on TELEMETRY_METRICS_PORT
    post_fork    forked()         the worker closes its inherited copy of the metrics socket
    child_exit   worker_exited()  prometheus_client's bookkeeping for a dead worker; its counters stay,
                                  so a restarted worker neither loses nor double counts
    on_exit      stop()           stop serving; remove the directory if it was ours

`PROMETHEUS_MULTIPROC_DIR` set by the operator is used (and wiped at start) instead of a new one.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from typing import Any

DIRECTORY_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ExporterError(RuntimeError):
    """The metrics server cannot start; the message names the setting."""


class MetricsExporter:
    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 9464
        self.directory: str | None = None
        self.owned = False
        self.server: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def prepare(self, *, host: str, port: int) -> None:
        """Idempotent: gunicorn reads its config again on SIGHUP, and the workers must keep the same directory."""
        self.host, self.port = host, port
        if self.directory is None:
            self.directory = os.environ.get(DIRECTORY_ENV) or None
            if self.directory is None:
                self.directory = tempfile.mkdtemp(prefix="inference-gateway-metrics-")
                self.owned = True
        os.environ[DIRECTORY_ENV] = self.directory

    def start(self) -> None:
        assert self.directory is not None, "prepare() first"
        os.makedirs(self.directory, exist_ok=True)
        for stale in glob.glob(os.path.join(self.directory, "*.db")):
            os.remove(stale)

        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.directory)
        try:
            self.server, _ = start_http_server(self.port, addr=self.host, registry=registry)
        except OSError as exc:
            raise ExporterError(f"cannot serve metrics on {self.host}:{self.port} (TELEMETRY_METRICS_PORT): "
                                f"{exc.strerror or exc}") from None

    def forked(self) -> None:
        if self.server is not None:
            self.server.socket.close()
            self.server = None

    def worker_exited(self, pid: int) -> None:
        if self.directory is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.directory)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.owned and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


# The master's one exporter (a plain object: nothing happens until gunicorn.conf.py calls prepare()).
EXPORTER = MetricsExporter()
