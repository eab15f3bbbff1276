"""What one feature tells others, without importing them.

Signals (blinker, as Flask uses) are sent with the Flask app as sender, through `send`, always
inside an app context (a stream's usage is known after its request has gone):

    completion_usage   a model call's token usage is known (for streams: when the stream ends);
                       every call is reported, /proxy included: one whose usage never came (a
                       cut stream, an answer without usage) with an estimate (app/chat/estimate.py)
                       kwargs: provider (id), model (upstream model), usage (dict with
                       prompt_tokens, completion_tokens, total_tokens, and `estimated: True`
                       when it is the gateway's estimate), subject (str | None), stream (bool)
    tool_called        the model called a tool (client's or MCP)
                       kwargs: provider, model, tool_type ("mcp" | "standard_tool_use"), tool_name
    usage_recorded     a request's model calls were priced and written to the usage ledger
                       (app/accounts, as the response closes); kwargs: provider, model,
                       key_name ("" without a virtual key), cost_usd (float), total_tokens (int)
    upstream_retried   a failed try is tried again on the same deployment (app/resilience);
                       kwargs: deployment
    upstream_fell_back an alias left a failed deployment for its next target; kwargs: deployment
                       (the one left), to (the next one)
    circuit_changed    a deployment's circuit breaker changed state in this worker; kwargs:
                       deployment, state ("open", "half_open", "closed")
    retry_budget_exhausted  a retry or fallback was not made: the worker's retry budget is spent;
                       kwargs: deployment

Request facts live in the WSGI environ, so WSGI middleware (access log, metrics) can read them
after the view has returned, streams included:

    PROVIDER_KEY  the provider (or deployment) id that served the request (the last one tried
                  when none did)
    MODEL_KEY     the model as the provider knows it
    ALIAS_KEY     the alias the client named, when it named one (app/resilience)
    UPSTREAM_KEY  `deployment/model` that served (or was tried last), for X-Gateway-Upstream
    ATTEMPTS_KEY  upstream tries the call made (int), for X-Gateway-Attempts
    SUBJECT_KEY   the authenticated subject (JWT `sub` or API key id); absent when auth is off
    KEY_NAME_KEY  the virtual key's name (app/accounts), when the request used one
    ERROR_KEY     the message of the error the gateway answered with (set by app/errors.py's
                  handler; a provider's own error as "provider answered <status>: <its message>")
    USAGE_KEY     the request's tokens and cost, {prompt_tokens, completion_tokens, total_tokens,
                  cost_usd}, plus `estimated: true` when any of it was estimated, set as the
                  response closes (app/accounts)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from blinker import Namespace, Signal
from flask import has_app_context

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("gateway.signals")

_signals = Namespace()

completion_usage = _signals.signal("completion-usage")
tool_called = _signals.signal("tool-called")
usage_recorded = _signals.signal("usage-recorded")
upstream_retried = _signals.signal("upstream-retried")
upstream_fell_back = _signals.signal("upstream-fell-back")
circuit_changed = _signals.signal("circuit-changed")
retry_budget_exhausted = _signals.signal("retry-budget-exhausted")

PROVIDER_KEY = "gateway.provider"
MODEL_KEY = "gateway.model"
SUBJECT_KEY = "gateway.subject"
KEY_NAME_KEY = "gateway.key_name"
USAGE_KEY = "gateway.usage"
ALIAS_KEY = "gateway.alias"
UPSTREAM_KEY = "gateway.upstream"
ATTEMPTS_KEY = "gateway.attempts"
ERROR_KEY = "gateway.error"


def send(signal: Signal, app: Flask, **kwargs: Any) -> None:
    """Send `signal` from `app` in an app context (pushed if none is active). A receiver's
    failure is logged, never raised, and the other receivers still hear the signal: it must not
    break the completion it hears about. (Receivers are called directly, as blinker's `send`
    would call them, without its per-call checks for async receivers, which the gateway has none of.)"""
    if not signal.receivers:
        return
    if has_app_context():
        _deliver(signal, app, kwargs)
    else:
        with app.app_context():
            _deliver(signal, app, kwargs)


def _deliver(signal: Signal, app: Flask, kwargs: dict[str, Any]) -> None:
    for receiver in signal.receivers_for(app):
        try:
            receiver(app, **kwargs)
        except Exception:
            log.exception("a %s receiver failed", signal.name)
