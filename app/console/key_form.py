"""The console's key form, read into the admin API's fields and checked by the admin API's schemas.

    key_fields(form, new=True)   -> the fields KeyAdmin.create / update take, or InvalidRequest

An HTML form sends strings; the admin API takes JSON. Empty text means "none" (no limit, no
budget, no expiry, every model), numbers are read as numbers, models are one per line or
comma-separated. What is left is checked by NEW_KEY / KEY_CHANGES (app/schemas/admin.py), the
very schemas of POST and PATCH /admin/keys, so the console accepts what the API accepts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from app.errors import InvalidRequest
from app.schemas.admin import KEY_CHANGES, NEW_KEY, load

WHOLE_NUMBERS = ("rpm", "tpm")
OPTIONAL_TEXT = ("owner", "expires_at")


def _number(name: str, text: str, kind: type) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise InvalidRequest(f"Invalid request: {name}: Not a valid {'whole ' if kind is int else ''}number.",
                             code="invalid_request") from None
    if kind is float and not math.isfinite(value):
        raise InvalidRequest(f"Invalid request: {name}: Not a valid number.", code="invalid_request")
    return value


def key_fields(form: Mapping[str, str], *, new: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {"name": form.get("name", "")}
    for name in OPTIONAL_TEXT:
        text = form.get(name, "").strip()
        payload[name] = text or None
    for name in WHOLE_NUMBERS:
        text = form.get(name, "").strip()
        payload[name] = _number(name, text, int) if text else None
    budget = form.get("budget_usd", "").strip()
    payload["budget_usd"] = _number("budget_usd", budget, float) if budget else None
    payload["budget_period"] = form.get("budget_period", "month").strip() or "month"
    payload["models"] = [entry.strip() for entry in re.split(r"[,\n]", form.get("models", "")) if entry.strip()]
    if new:
        payload = {name: value for name, value in payload.items() if value is not None}
    return load(NEW_KEY if new else KEY_CHANGES, payload)
