"""Per-app state, bound to the app with init_app.

`GatewayState` holds what create_app built (settings, providers, model policy); views reach it
through `state()`. Features keep their own objects in `app.extensions` under their own key
(`app.chat.dispatch`, `app.rate_limits`, `app.mcp`, `app.telemetry`). This module imports no
feature.

The rate limits are not a module-level object here, as Flask extensions often are: tests build
many apps in one process, each with its own settings, so `app.rate_limits` builds one
`RateLimits` (and its storage) per app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from app.config import Settings
    from app.providers.provider import Providers
    from app.providers.routing import ModelPolicy

EXTENSION_KEY = "gateway"


@dataclass
class GatewayState:
    settings: Settings
    providers: Providers
    model_policy: ModelPolicy

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self


def state() -> GatewayState:
    return current_app.extensions[EXTENSION_KEY]
