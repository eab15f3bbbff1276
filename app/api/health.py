"""GET /health and GET /openapi.yaml: always open, never call a provider."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, jsonify

bp = Blueprint("health", __name__)

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"


@bp.get("/health")
def health() -> Response:
    return jsonify(message="OK")


@bp.get("/openapi.yaml")
def openapi() -> Response:
    return Response(SPEC_PATH.read_bytes(), mimetype="application/yaml")
