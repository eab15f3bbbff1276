"""gunicorn settings, derived from the gateway's own settings (see docs/configuration.md).

Read by `gunicorn wsgi:app` from the working directory. An invalid setting stops start-up here,
in the master, with one line naming the variable and the bad value.
"""

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
# ahead of the workers' gevent patching. SIGTERM: each worker writes its buffered usage rows.
if _settings.accounts_enable:
    if _settings.database_auto_migrate:
        import subprocess as _subprocess

        _path = [os.path.dirname(os.path.abspath(__file__)), os.environ.get("PYTHONPATH", "")]
        _migrated = _subprocess.run([sys.executable, "-m", "app.accounts.migrate"], capture_output=True, text=True,
                                    check=False, env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, _path))})
        if _migrated.returncode != 0:
            _lines = _migrated.stderr.strip().splitlines()
            print(_lines[-1] if _lines else "inference-gateway: database migration failed", file=sys.stderr, flush=True)
            sys.exit(2)

    def worker_exit(server, worker):
        from app.accounts.ledger import flush_all

        flush_all()

worker_class = "gevent"
workers = _settings.web_concurrency
worker_connections = _settings.worker_connections

if os.environ.get("PORT"):  # Heroku and friends
    bind = [f"0.0.0.0:{os.environ['PORT']}"]
elif ":" in _settings.server_host:  # IPv6 literal
    bind = [f"[{_settings.server_host}]:{_settings.server_port}"]
else:
    bind = [f"{_settings.server_host}:{_settings.server_port}"]

# The gevent worker heartbeats from its own loop, so this never cuts a long stream; it only
# replaces a worker whose event loop is stuck.
timeout = 30
# SIGTERM: stop accepting, let in-flight requests (streams included) finish for this long.
graceful_timeout = max(1, int(_settings.server_write_timeout))
keepalive = max(1, int(_settings.server_idle_timeout))
limit_request_line = 8190
# No runtime control socket: several gateways on one host would fight over its path.
control_socket_disable = True

if _settings.server_tls_cert_path:
    certfile = _settings.server_tls_cert_path
    keyfile = _settings.server_tls_key_path

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

# Telemetry: one GET /metrics per host, served by this master, summing every worker's values
# (prometheus-client multiprocess mode; see app/telemetry/exporter.py). Nothing when off.
if _settings.telemetry_enable:
    from app.telemetry.exporter import EXPORTER as _exporter
    from app.telemetry.exporter import ExporterError as _ExporterError

    # Before any worker forks and before prometheus_client is imported anywhere.
    _exporter.prepare(host="0.0.0.0" if os.environ.get("PORT") else _settings.server_host,
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
