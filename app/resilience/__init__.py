"""Resilience: retries and fallbacks before the first byte, circuit breakers, provider health.

    retry.py     what is retried (connection errors, timeouts, 429, 500, 502, 503, 504) and the waits
    budget.py    the retry budget: at most 20% extra upstream requests (+10 a minute) per worker
    breaker.py   a circuit breaker per deployment: closed -> open -> one trial -> closed or open
    state.py     each worker's record per deployment: breaker, requests in flight, recent outcomes
    caller.py    `Resilience.call`: the tries of one call over its targets, in the strategy's order
    board.py     the host's board: each worker's view, published for the others
    health.py    the merged view (GET /health/providers, /health/ready, the console) and active checks

`init_app` builds one `Resilience` and one `Health` per app (per worker), registers the health
publisher with app.lifecycle (it runs in gunicorn workers) and reports events as signals
(app.signals: metrics count them; circuit changes are logged). app/chat/call.py is where calls
are opened through `Resilience.call`; app/chat/dispatch.py records who served in the environ,
from which app/access_log.py writes the access line and the response headers
`X-Gateway-Upstream: <deployment>/<model>` and `X-Gateway-Attempts: <n>` (errors included).
Settings: the `retry` and `circuit_breaker` sections of GATEWAY_CONFIG (defaults without one)
and HEALTH_CHECK_INTERVAL.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from app.resilience.caller import Resilience, Tally
from app.resilience.health import EXTENSION_KEY as HEALTH_KEY
from app.resilience.health import Health
from app.resilience.state import Upstreams

if TYPE_CHECKING:
    from flask import Flask

    from app.config import Settings
    from app.providers.provider import Providers

__all__ = ["EXTENSION_KEY", "HEALTH_KEY", "Health", "Resilience", "Tally", "init_app"]

EXTENSION_KEY = "gateway.resilience"

BUDGET_LOG_EVERY = 10.0  # seconds

log = logging.getLogger("gateway.resilience")


class SignalEvents:
    """Resilience events as app.signals (for metrics); circuit changes are logged too."""

    def __init__(self, app: Flask):
        self.app = app
        self._budget_logged = -BUDGET_LOG_EVERY

    def retried(self, deployment: str) -> None:
        from app import signals

        signals.send(signals.upstream_retried, self.app, deployment=deployment)

    def fell_back(self, deployment: str, to: str) -> None:
        from app import signals

        signals.send(signals.upstream_fell_back, self.app, deployment=deployment, to=to)

    def budget_exhausted(self, deployment: str) -> None:
        from app import signals

        now = time.monotonic()
        if now - self._budget_logged >= BUDGET_LOG_EVERY:  # once in a while, not once per request of an outage
            self._budget_logged = now
            log.warning("the retry budget of this worker is spent: failed calls (now to %s) are not tried again "
                        "for a while", deployment, extra={"provider": deployment})
        signals.send(signals.retry_budget_exhausted, self.app, deployment=deployment)

    def circuit_changed(self, deployment: str, state: str) -> None:
        from app import signals

        log.warning("circuit of %s is now %s", deployment, state, extra={"provider": deployment})
        signals.send(signals.circuit_changed, self.app, deployment=deployment, state=state)


def init_app(app: Flask, settings: Settings, providers: Providers) -> Resilience:
    from app import lifecycle

    events = SignalEvents(app)
    upstreams = Upstreams(settings.circuit_breaker, on_change=events.circuit_changed)
    resilience = Resilience(settings.retry, upstreams, events=events)
    health = Health(upstreams, providers.configured(),  # Ollama only once OLLAMA_API_URL is set
                    check_interval=float(settings.health_check_interval))
    app.extensions[EXTENSION_KEY] = resilience
    app.extensions[HEALTH_KEY] = health
    lifecycle.on_start(app, health.start)
    lifecycle.on_exit(app, health.stop)

    return resilience
