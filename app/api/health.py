"""GET /health: public (`app.public_routes`: no auth, no limits, no metrics), never calls a provider."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app.public_routes import HEALTH

bp = Blueprint("health", __name__)


@bp.get(HEALTH)
def health() -> Response:
    return jsonify(message="OK")
