"""GET /health: always open (even with AUTH_ENABLE), never calls a provider."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Response:
    return jsonify(message="OK")
