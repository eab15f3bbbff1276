"""GET /health (liveness), /health/ready (readiness) and /health/providers (provider health).

`/health` and `/health/ready` are public (`app.public_routes`: no auth, no limits, no metrics)
and tell nothing but ok / not ok: `/health` never calls a provider; `/health/ready` answers 503
while no deployment of any configured provider is usable (app/resilience/health.py). The
per-deployment detail, `/health/providers`, is protected and limited like every other route.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from app.errors import ServiceUnavailable
from app.public_routes import HEALTH, READY
from app.resilience.health import EXTENSION_KEY, Health

bp = Blueprint("health", __name__)


def health_board() -> Health:
    return current_app.extensions[EXTENSION_KEY]


@bp.get(HEALTH)
def health() -> Response:
    return jsonify(message="OK")


@bp.get(READY)
def ready() -> Response:
    if health_board().ready():
        return jsonify(message="OK")
    return ServiceUnavailable("Not ready: no provider deployment is usable.", code="not_ready").to_response()


@bp.get("/health/providers")
def providers() -> Response:
    return jsonify(health_board().snapshot())
