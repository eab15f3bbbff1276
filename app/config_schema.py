"""The configuration file's shape, as marshmallow schemas, and its errors as a key path.

    FileSchema().load(data)                 the sections, each checked (unknown keys are errors)
    first_problem(exc.messages, schema)     -> ("aliases.fast.targets[1]", "expected a text value")

The schemas check types, ranges and choices; what needs more than one value (a target's
deployment exists, a kind is in the catalog) is app/config_file.py's. Imports only marshmallow
and app.config_values, so gunicorn's master can read the file before forking.
"""

from __future__ import annotations

from typing import Any, ClassVar

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from app.config_values import parse_duration

STRATEGIES = ("fallback", "round_robin", "least_busy")


class Duration(fields.Field):
    """A Go-style duration string (`250ms`, `30s`, `1m30s`) or 0, as float seconds."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if value == 0 and not isinstance(value, bool):
            return 0.0
        if not isinstance(value, str):
            raise ValidationError("expected a duration such as 250ms, 30s or 1m30s")
        try:
            return float(parse_duration(value))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


def _at_least(minimum: float, shown: str) -> validate.Range:
    return validate.Range(min=minimum, error=f"must be at least {shown}")


class _Strict(Schema):
    class Meta:
        unknown = RAISE

    error_messages: ClassVar[dict[str, str]] = {"type": "expected a mapping of keys to values",
                                                "unknown": "unknown key"}


def _number(**kwargs: Any) -> fields.Float:
    return fields.Float(allow_nan=False, error_messages={"invalid": "expected a number"}, **kwargs)


def _integer(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, error_messages={"invalid": "expected a whole number"}, **kwargs)


def _text(**kwargs: Any) -> fields.String:
    return fields.String(error_messages={"invalid": "expected a text value"}, **kwargs)


class DeploymentSchema(_Strict):
    kind = _text()
    base_url = _text()
    api_key = _text()
    headers = fields.Dict(keys=_text(), values=_text(), error_messages={"invalid": "expected a mapping of names to values"})


class AliasSchema(_Strict):
    strategy = _text(load_default="fallback",
                     validate=validate.OneOf(STRATEGIES, error=f"expected one of {', '.join(STRATEGIES)}"))
    targets = fields.List(_text(), required=True,
                          validate=validate.Length(min=1, error="list at least one deployment/model target"),
                          error_messages={"invalid": "expected a list of deployment/model targets",
                                          "required": "missing: list the deployment/model targets"})


class RetrySchema(_Strict):
    attempts = _integer(validate=validate.Range(min=1, max=10, error="expected 1 to 10"))
    backoff = Duration()
    max_backoff = Duration()
    max_retry_after = Duration()
    budget = _number(validate=validate.Range(min=0, max=10, error="expected a share from 0 to 10 (0.2 = 20%)"))
    budget_min = _integer(validate=_at_least(0, "0"))


class CircuitBreakerSchema(_Strict):
    failures = _integer(validate=_at_least(1, "1"))
    cooldown = Duration(validate=validate.Range(min=0.001, error="must be at least 1ms"))


class PriceSchema(_Strict):
    input = _number(validate=_at_least(0, "0"))
    output = _number(validate=_at_least(0, "0"))


def _sections(schema: type[Schema]) -> fields.Dict:
    return fields.Dict(keys=_text(), values=fields.Nested(schema),
                       error_messages={"invalid": "expected a mapping of names to settings"})


class FileSchema(_Strict):
    deployments = _sections(DeploymentSchema)
    aliases = _sections(AliasSchema)
    retry = fields.Nested(RetrySchema)
    circuit_breaker = fields.Nested(CircuitBreakerSchema)
    prices = _sections(PriceSchema)


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def first_problem(messages: Any, schema: Schema | fields.Field, where: str = "") -> tuple[str, str]:
    """marshmallow's nested error messages as the first (key path, problem), walking the schema alongside."""
    if isinstance(messages, list):
        problem = str(messages[0]).rstrip(".")
        if problem == "unknown key" and isinstance(schema, Schema):
            problem += f" (expected one of: {', '.join(schema.fields)})"
        elif problem[:1].isupper():
            problem = problem[0].lower() + problem[1:]
        return where, problem
    key, inner = next(iter(messages.items()))
    if key == "_schema":
        return first_problem(inner, schema, where)
    if isinstance(schema, Schema):
        return first_problem(inner, schema.fields.get(key, schema), _join(where, key))
    if isinstance(schema, fields.Nested):
        return first_problem(messages, schema.schema, where)
    if isinstance(schema, fields.List):
        return first_problem(inner, schema.inner, f"{where}[{key}]")
    if isinstance(schema, fields.Dict):
        if "key" in inner:
            return _join(where, key), "the name must be a text value"
        return first_problem(inner.get("value", inner), schema.value_field or schema, _join(where, key))
    return first_problem(inner, schema, _join(where, key))
