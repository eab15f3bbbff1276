"""gunicorn settings, derived from the gateway's own settings (see docs/configuration.md).

Read by `gunicorn wsgi:app` from the working directory. An invalid setting (or an old name, see
app/config.py RENAMED) stops start-up here, in the master, with one line naming the variable and
exit status 2. A setting that is set but does nothing here is logged once as ignored (`when_ready`).
"""

import math
import os
import sys

from app.config import ConfigError, Settings

try:
    _settings = Settings.from_environ()
except ConfigError as _exc:
    print(f"inference-gateway: {_exc}", file=sys.stderr, flush=True)
    sys.exit(2)

# Accounts (virtual keys, usage ledger; app/accounts/). The schema is migrated once, here in the
# master before any worker starts, in a child process: this process must not import SQLAlchemy
# ahead of the workers' gevent patching.
if _settings.accounts_enable and _settings.database_auto_migrate:
    import subprocess as _subprocess

    _path = [os.path.dirname(os.path.abspath(__file__)), os.environ.get("PYTHONPATH", "")]
    _migrated = _subprocess.run([sys.executable, "-m", "app.accounts.migrate"], capture_output=True, text=True,
                                check=False, env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, _path))})
    if _migrated.returncode != 0:
        _lines = _migrated.stderr.strip().splitlines()
        print(_lines[-1] if _lines else "inference-gateway: database migration failed", file=sys.stderr, flush=True)
        sys.exit(2)

# gunicorn's gevent worker with the server edge added (app/server/): requests read whole within
# SERVER_READ_TIMEOUT, WORKER_CONNECTIONS requests served at once, malformed HTTP answered as JSON.
worker_class = "app.server.worker.GatewayGeventWorker"
workers = _settings.web_concurrency
worker_connections = _settings.worker_connections

if _settings.port is not None:  # Heroku and friends
    bind = [f"0.0.0.0:{_settings.port}"]
elif ":" in _settings.server_host:  # IPv6 literal
    bind = [f"[{_settings.server_host}]:{_settings.server_port}"]
else:
    bind = [f"{_settings.server_host}:{_settings.server_port}"]

# The gevent worker heartbeats from its own loop, so this never cuts a long stream; it only
# replaces a worker whose event loop is stuck.
timeout = 30
# SIGTERM: the worker stops accepting and gives requests in flight SERVER_WRITE_TIMEOUT to finish,
# then ends those still running (a stream with an error event) and exits. The master kills a
# worker that has not exited a few seconds after that.
graceful_timeout = math.ceil(_settings.server_write_timeout) + 3
# Keep-alive on; the worker itself closes a connection idle for SERVER_IDLE_TIMEOUT.
keepalive = max(1, int(_settings.server_idle_timeout))
limit_request_line = 8190
# No runtime control socket: several gateways on one host would fight over its path.
control_socket_disable = True

if _settings.server_tls_cert_path:
    certfile = _settings.server_tls_cert_path
    keyfile = _settings.server_tls_key_path


def when_ready(server):
    for line in _settings.ignored_settings():
        server.log.warning(line)


# The app writes its own access line (with the request id); gunicorn logs its own events in the
# same format.
accesslog = None
logger_class = "app.server_log.GatewayServerLogger"
errorlog = "-"
_formatter = "app.logs.TextFormatter" if _settings.development else "app.logs.JsonFormatter"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"gateway": {"()": _formatter}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "gateway", "stream": "ext://sys.stderr"}},
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}

# Each worker starts and stops what its features registered (app/lifecycle.py): MCP servers are
# connected before its first request and their sessions ended at exit; buffered usage rows are
# written at exit. worker_exit also runs in the master for a worker that is already gone, which
# has no app. Each worker also gives freed large buffers back to the system (app/server/memory.py).
def post_worker_init(worker):
    from app import lifecycle
    from app.server import memory

    memory.return_large_blocks()
    lifecycle.worker_started(worker.wsgi)


def worker_exit(server, worker):
    application = getattr(worker, "wsgi", None)
    if application is not None:
        from app import lifecycle

        lifecycle.worker_exiting(application)


# Telemetry: one GET /metrics per host, served by this master, summing every worker's values
# (prometheus-client multiprocess mode; see app/telemetry/exporter.py). Nothing when off.
if _settings.telemetry_enable:
    from app.telemetry.exporter import EXPORTER as _exporter
    from app.telemetry.exporter import ExporterError as _ExporterError

    # Before any worker forks and before prometheus_client is imported anywhere.
    _exporter.prepare(host="0.0.0.0" if _settings.port is not None else _settings.server_host,
                      port=_settings.telemetry_metrics_port)

    def on_starting(server):
        try:
            _exporter.start()
        except _ExporterError as exc:
            print(f"inference-gateway: {exc}", file=sys.stderr, flush=True)
            _exporter.stop()
            sys.exit(2)
        server.log.info("Serving metrics at %s (worker values in %s)", _exporter.url, _exporter.directory)

    def post_fork(server, worker):
        _exporter.forked()

    def child_exit(server, worker):
        _exporter.worker_exited(worker.pid)

    def on_exit(server):
        _exporter.stop()
