"""Schema of the OpenAI Responses API (POST /v1/responses).

It checks what the gateway relies on (a `model` to route, `stream` to choose the relay) and what
a client most often gets wrong; everything else is INCLUDED and forwarded untouched.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from app.schemas.chat import StrictBool, StrictInt, _Passthrough

MODEL = {"required": True, "validate": validate.Length(min=1, error="Must be a non-empty string.")}


class ResponsesInput(fields.Field):
    """A string, or a list of input items (objects)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, dict) for item in value)):
            return value
        raise ValidationError("Must be a string or a list of input items (objects).")


class ResponseRequest(_Passthrough):
    model = fields.String(**MODEL)
    input = ResponsesInput()
    stream = StrictBool()
    max_output_tokens = StrictInt(validate=validate.Range(min=1), allow_none=True)


RESPONSE = ResponseRequest()
