"""Schemas of POST /v1/chat/completions, /v1/completions and /v1/embeddings.

They check only what the gateway relies on or what a client most often gets wrong; everything
else is INCLUDED and forwarded untouched (see `app.schemas`).
"""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

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


def _content_problem(message: dict[str, Any]) -> str | None:
    content = message.get("content")
    if isinstance(content, str):
        return None
    if isinstance(content, list):
        for index, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                return f"Part {index} must be an object with a string `type`."
        return None
    if content is None:
        if message.get("role") == "assistant" and message.get("tool_calls"):
            return None
        return ("Must be a string or a list of content parts (null only for an assistant message with "
                "tool_calls).")
    return "Must be a string or a list of content parts."


class Messages(fields.Field):
    """A non-empty list of message objects, each with a valid `role` and `content`.

    One field with a plain loop rather than a nested schema: a nested schema costs ~40 us per
    message on the request hot path. Errors come out in marshmallow's nested shape
    (`messages.<i>.<field>`). Other message fields are the client's and are not looked at.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list):
            raise ValidationError("Not a valid list.")
        if not value:
            raise ValidationError("Must be a non-empty list of messages.")
        errors: dict[int, dict[str, list[str]]] = {}
        for index, message in enumerate(value):
            if not isinstance(message, dict):
                errors[index] = {"_schema": ["Invalid input type."]}
                continue
            problems: dict[str, list[str]] = {}
            role = message.get("role")
            if role is None:
                problems["role"] = ["Missing data for required field."]
            elif role not in ROLES:
                problems["role"] = [f"Must be one of: {', '.join(ROLES)}."]
            else:
                problem = _content_problem(message)
                if problem:
                    problems["content"] = [problem]
            tool_calls = message.get("tool_calls")
            if tool_calls is not None and not isinstance(tool_calls, list):
                problems["tool_calls"] = ["Not a valid list."]
            if problems:
                errors[index] = problems
        if errors:
            raise ValidationError(errors)
        return value


class _ModelRequest(_Passthrough):
    model = fields.String(required=True, validate=validate.Length(min=1, error="Must be a non-empty string."))
    stream = StrictBool()
    max_tokens = StrictInt(validate=validate.Range(min=1), allow_none=True)
    stream_options = fields.Dict(allow_none=True)


class ChatCompletionRequest(_ModelRequest):
    messages = Messages(required=True)
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


def plainly_valid_chat(payload: dict[str, Any]) -> bool:
    """True when the body is the common, certainly valid shape, seen with isinstance alone.

    A string model, plain `{"role", "content": str}` messages and the usual optional fields:
    what the schema would pass without a word. Anything else (including every invalid body) returns
    False and goes through `ChatCompletionRequest`, which stays the rule and writes the errors.
    Saves the schema's walk on the hot path (~50 us a request).
    """
    model, messages = payload.get("model"), payload.get("messages")
    if not (isinstance(model, str) and model and isinstance(messages, list) and messages):
        return False
    for message in messages:
        if not (isinstance(message, dict) and message.get("role") in _ROLE_SET
                and isinstance(message.get("content"), str) and message.get("tool_calls") is None):
            return False
    stream = payload.get("stream", False)
    max_tokens = payload.get("max_tokens")
    options = payload.get("stream_options")
    tools = payload.get("tools")
    return (isinstance(stream, bool)
            and (max_tokens is None or (type(max_tokens) is int and max_tokens >= 1))
            and (options is None or isinstance(options, dict))
            and (tools is None or (isinstance(tools, list) and all(isinstance(tool, dict) for tool in tools))))


_ROLE_SET = frozenset(ROLES)

CHAT = ChatCompletionRequest()
COMPLETION = CompletionRequest()
EMBEDDING = EmbeddingRequest()
