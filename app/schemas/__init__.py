"""Request validation with marshmallow. Schemas only check; the body goes upstream as sent.

Every schema sets `unknown = INCLUDE`: fields the gateway does not know are the client's
business (temperature, top_k, reasoning_effort, extra_content...) and are never dropped.
Views call `json_object(request)` then `check(SCHEMA, payload)`; both raise `InvalidRequest`
(or 413/415) with a message that names the field.

`read_json(raw)` is the one strict JSON reader for request bodies (the proxy's model check
uses it too). It accepts RFC 8259 JSON in UTF-8 only: no `NaN`/`Infinity` (nor a number that
overflows to infinity), no lone surrogate (escaped or encoded), nesting at most
`MAX_JSON_DEPTH` deep, no key twice in one object. Python's `json` accepts all of these, and
each later breaks something: `NaN` goes upstream as invalid JSON, a lone surrogate cannot be
encoded again, deep nesting exhausts the recursion limit (here or when the body is written out
again), and of two `model` keys the gateway would check the last while a provider may read the
first (`DuplicateKey`, which a caller answers 400 wherever a body is read).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flask import Request
from marshmallow import Schema

from app.errors import InvalidRequest, UnsupportedMediaType

MAX_JSON_DEPTH = 256  # far above real requests (tool schemas nest a few dozen levels), far below the recursion limit
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


class InvalidJSON(ValueError):
    """The body is not strict JSON; the message says why, in words a client can act on."""


class DuplicateKey(InvalidJSON):
    """An object names one key twice: refused everywhere, since readers disagree on which one counts."""


def read_json(raw: bytes) -> Any:
    """Parse a request body as strict JSON (see the module docstring); raises InvalidJSON."""
    try:
        text = raw.decode("utf-8-sig")  # strict: surrogates written as UTF-8 bytes are refused here
    except UnicodeDecodeError as exc:
        raise InvalidJSON(f"the body is not UTF-8 (byte {exc.start})") from None
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:  # only then can it be too deep: measure
        _check_depth(text)
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                           object_pairs_hook=_unique_keys)
    except InvalidJSON:
        raise
    except RecursionError:
        raise InvalidJSON(f"it is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise InvalidJSON(str(exc)) from None
    if _ESCAPED_SURROGATE.search(text):  # only an escape can make a lone surrogate here
        _check_surrogates(value)
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise DuplicateKey(f"the key {twice[:60]!r} appears twice in one object")
    return found


def _refuse_constant(name: str) -> float:
    raise InvalidJSON(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise InvalidJSON(f"the number {text[:40]} is too large")
    return value


def _check_depth(text: str) -> None:
    """Raise InvalidJSON when brackets outside strings nest deeper than MAX_JSON_DEPTH."""
    depth = 0
    for token in _STRUCTURE.finditer(text):
        mark = token.group()
        if mark in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InvalidJSON(f"it is nested deeper than {MAX_JSON_DEPTH} levels")
        elif mark in "]}":
            depth -= 1


# A whole string (skipped, written so that long strings are matched in one tight loop) or a bracket.
_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _check_surrogates(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings: Any = (item,)
        elif isinstance(item, dict):
            strings = item.keys()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for string in strings:
            if _SURROGATE.search(string):
                raise InvalidJSON("it contains a lone surrogate (\\ud800-\\udfff) in a string")


def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; 415 for another content type, 400 for bad JSON (413 from Flask)."""
    if not request.is_json:
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {request.mimetype or 'missing'!r}.",
            code="unsupported_media_type")
    raw = request.get_data()  # raises 413 past MAX_CONTENT_LENGTH; cached for anyone after us
    try:
        payload = read_json(raw)
    except InvalidJSON as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.", code="invalid_json") from None
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
