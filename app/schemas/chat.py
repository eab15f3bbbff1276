"""Schemas of POST /v1/chat/completions, /v1/completions and /v1/embeddings.

They check only what the gateway relies on or what a client most often gets wrong; everything
else is INCLUDED and forwarded untouched (see `app.schemas`).
"""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

ROLES = ("system", "user", "assistant", "tool", "developer", "function")


class _Passthrough(Schema):
    class Meta:
        unknown = INCLUDE


class StrictBool(fields.Boolean):
    """JSON true/false only (marshmallow would also take "yes" or 1)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Must be true or false.")
        return value


class StrictInt(fields.Integer):
    """A JSON integer (not a float, string or boolean)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("Must be an integer.")
        return super()._deserialize(value, attr, data, **kwargs)


class Content(fields.Field):
    """A message's content: a string, a list of parts (objects with a `type`), or null."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list):
            for index, part in enumerate(value):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise ValidationError(f"Part {index} must be an object with a string `type`.")
            return value
        raise ValidationError("Must be a string or a list of content parts.")


class MessageSchema(_Passthrough):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    content = Content(allow_none=True)
    tool_calls = fields.List(fields.Dict())

    @validates_schema(skip_on_field_errors=True)
    def content_present(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("content") is None and not (data["role"] == "assistant" and data.get("tool_calls")):
            raise ValidationError("Must be a string or a list of content parts (null only for an assistant "
                                  "message with tool_calls).", "content")


class _ModelRequest(_Passthrough):
    model = fields.String(required=True, validate=validate.Length(min=1, error="Must be a non-empty string."))
    stream = StrictBool()
    max_tokens = StrictInt(validate=validate.Range(min=1), allow_none=True)
    stream_options = fields.Dict(allow_none=True)


class ChatCompletionRequest(_ModelRequest):
    messages = fields.List(fields.Nested(MessageSchema), required=True,
                           validate=validate.Length(min=1, error="Must be a non-empty list of messages."))
    tools = fields.List(fields.Dict(), allow_none=True)


class Prompt(fields.Field):
    """A completion prompt: a string, or a non-empty list of strings or token ids."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) or (isinstance(value, list) and value):
            return value
        raise ValidationError("Must be a string or a non-empty list.")


class CompletionRequest(_ModelRequest):
    prompt = Prompt(required=True)


class EmbeddingRequest(_Passthrough):
    model = fields.String(required=True, validate=validate.Length(min=1, error="Must be a non-empty string."))
    input = Prompt(required=True)


CHAT = ChatCompletionRequest()
COMPLETION = CompletionRequest()
EMBEDDING = EmbeddingRequest()
