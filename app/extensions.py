"""Per-app state and the extensions bound to the app with init_app.

`GatewayState` holds what create_app built (settings, providers, model policy); views reach it
through `state()`. Features that need more (auth, limiter, metrics, MCP) add a field here and
bind it in create_app.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

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
