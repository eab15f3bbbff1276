"""Schemas of the Anthropic Messages API (POST /v1/messages, /v1/messages/count_tokens).

They check what the gateway relies on (a `model` to route, `stream` to choose the relay) and
what a client most often gets wrong; everything else is INCLUDED and forwarded untouched.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from app.schemas.chat import StrictBool, StrictInt, _Passthrough
from app.schemas.responses import MODEL

ANTHROPIC_ROLES = ("user", "assistant")


class AnthropicMessages(fields.Field):
    """A non-empty list of `{"role": "user"|"assistant", "content": str | [blocks]}`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValidationError("Must be a non-empty list of messages.")
        errors: dict[int, dict[str, list[str]]] = {}
        for index, message in enumerate(value):
            if not isinstance(message, dict):
                errors[index] = {"_schema": ["Invalid input type."]}
                continue
            problems: dict[str, list[str]] = {}
            if message.get("role") not in ANTHROPIC_ROLES:
                problems["role"] = [f"Must be one of: {', '.join(ANTHROPIC_ROLES)}."]
            content = message.get("content")
            if not (isinstance(content, str) or (isinstance(content, list)
                                                 and all(isinstance(block, dict) for block in content))):
                problems["content"] = ["Must be a string or a list of content blocks (objects)."]
            if problems:
                errors[index] = problems
        if errors:
            raise ValidationError(errors)
        return value


class System(fields.Field):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(block, dict) for block in value)):
            return value
        raise ValidationError("Must be a string or a list of text blocks (objects).")


class CountTokensRequest(_Passthrough):
    model = fields.String(**MODEL)
    messages = AnthropicMessages(required=True)
    system = System()
    tools = fields.List(fields.Dict())


class MessageRequest(CountTokensRequest):
    max_tokens = StrictInt(validate=validate.Range(min=1))
    stream = StrictBool()


MESSAGE = MessageRequest()
COUNT_TOKENS = CountTokensRequest()
