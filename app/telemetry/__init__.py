"""Telemetry: Prometheus metrics summed across gunicorn workers, and the Server-Timing header.

    metrics.py   the metric definitions and the signal receivers (token usage, tool calls, retries,
                 fallbacks, circuit changes)
    observer.py  the WSGI middleware that times and counts requests
    exporter.py  GET /metrics from gunicorn's master (multiprocess mode), wired in gunicorn.conf.py
    model_labels.py  the `model` label's values, bounded (TELEMETRY_MAX_MODEL_LABELS, then `other`)

With TELEMETRY_ENABLE=false nothing is installed: no middleware, no receivers, no upstream clock.
This package's import is cheap on purpose (gunicorn's master imports `exporter` with the config).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from app.config import Settings

EXTENSION_KEY = "telemetry"


def init_app(app: Flask, settings: Settings) -> None:
    """Install the request observer (outermost middleware) and the signal receivers."""
    if not settings.telemetry_enable:
        return
    from app import signals
    from app.telemetry import values
    from app.telemetry.metrics import Metrics
    from app.telemetry.model_labels import ModelLabels
    from app.telemetry.observer import RequestObserver

    values.install()  # before the first metric: the worker's values written for less (values.py)
    metrics = Metrics(ModelLabels(settings.telemetry_max_model_labels, settings.allowed_models))
    app.extensions[EXTENSION_KEY] = metrics
    # Receivers are held strongly but only for this app: blinker drops them when the app goes away.
    signals.completion_usage.connect(metrics.on_completion_usage, sender=app, weak=False)
    signals.tool_called.connect(metrics.on_tool_called, sender=app, weak=False)
    signals.usage_recorded.connect(metrics.on_usage_recorded, sender=app, weak=False)
    signals.upstream_retried.connect(metrics.on_upstream_retried, sender=app, weak=False)
    signals.upstream_fell_back.connect(metrics.on_upstream_fell_back, sender=app, weak=False)
    signals.circuit_changed.connect(metrics.on_circuit_changed, sender=app, weak=False)
    signals.retry_budget_exhausted.connect(metrics.on_retry_budget_exhausted, sender=app, weak=False)
    app.wsgi_app = RequestObserver(app.wsgi_app, metrics)
