"""Request validation with marshmallow. Schemas only check; the body goes upstream as sent.

Every schema sets `unknown = INCLUDE`: fields the gateway does not know are the client's
business (temperature, top_k, reasoning_effort, extra_content...) and are never dropped.
Views call `json_object(request)` then `check(SCHEMA, payload)`; both raise `InvalidRequest`
(or 413/415) with a message that names the field.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Request
from marshmallow import Schema

from app.errors import InvalidRequest, UnsupportedMediaType


def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; 415 for another content type, 400 for bad JSON (413 from Flask)."""
    if not request.is_json:
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {request.mimetype or 'missing'!r}.",
            code="unsupported_media_type")
    raw = request.get_data()  # raises 413 past MAX_CONTENT_LENGTH; cached for anyone after us
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return payload


def check(schema: Schema, payload: dict[str, Any]) -> None:
    """Raise InvalidRequest listing every problem (`messages.0.role: ...`), else return."""
    errors = schema.validate(payload)
    if errors:
        problems = "; ".join(f"{path}: {message}" for path, message in _flatten(errors))
        raise InvalidRequest(f"Invalid request: {problems}", code="invalid_request")


def _flatten(errors: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(errors, dict):
        out: list[tuple[str, str]] = []
        for key, value in errors.items():
            name = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            out.extend(_flatten(value, name))
        return out
    if isinstance(errors, list) and all(isinstance(e, str) for e in errors):
        return [(prefix or "body", " ".join(errors))]
    if isinstance(errors, list):
        return [pair for e in errors for pair in _flatten(e, prefix)]
    return [(prefix or "body", str(errors))]
