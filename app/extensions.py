"""Per-app state and the extensions bound to the app with init_app.

`GatewayState` holds what create_app built (settings, providers, model policy); views reach it
through `state()`. Features that need more (auth, limiter, metrics, MCP) add a field here and
bind it in create_app.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from flask_limiter import Limiter

from app.config import Settings
from app.providers.provider import Providers
from app.providers.routing import ModelPolicy
from app.rate_limits import limit_key, request_limits

EXTENSION_KEY = "gateway"

# Rate limits, bound by app.rate_limits.RateLimits.init_app when RATE_LIMIT_ENABLE is true. A
# worker serves one app, so the limiter's storage is that app's (the last one bound). Limits are
# one per-subject counter over all routes (application limits). swallow_errors and the in-memory
# fallback stay off: RATE_LIMIT_FAIL_OPEN alone decides what an unreachable storage means.
limiter = Limiter(key_func=limit_key, application_limits=[request_limits], strategy="fixed-window",
                  headers_enabled=False, swallow_errors=False, in_memory_fallback_enabled=False)


@dataclass
class GatewayState:
    settings: Settings
    providers: Providers
    model_policy: ModelPolicy

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self


def state() -> GatewayState:
    return current_app.extensions[EXTENSION_KEY]
