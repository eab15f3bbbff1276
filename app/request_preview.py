"""Development only: a debug log line previewing each JSON body POSTed to /v1, cut short.

Like the original gateway: each message's text is cut to DEBUG_CONTENT_TRUNCATE_WORDS words,
at most DEBUG_MAX_MESSAGES messages are shown, and `"_truncated": "showing X of Y messages"`
says when some were left out; other long strings are cut at 1024 characters, image data is
never shown, and a body that is not JSON is shown as its first 1024 characters. Headers (the
caller's Authorization included) are never logged; configured secrets are redacted by the log
filter like everywhere else.

Installed by create_app only when ENVIRONMENT=development, and does nothing unless the
`gateway.request` logger is enabled for DEBUG (LOG_LEVEL=debug).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, g, request

log = logging.getLogger("gateway.request")

MAX_CHARS = 1024


def request_preview(body: Any, *, words: int, max_messages: int) -> Any:
    """The loggable shape of a parsed JSON body (a new object; `body` is not changed)."""
    if not isinstance(body, dict):
        return _cut(body)
    preview = {key: _cut(value) for key, value in body.items() if key != "messages"}
    messages = body.get("messages")
    if isinstance(messages, list):
        preview["messages"] = [_message(m, words) for m in messages[:max_messages]]
        if len(messages) > max_messages:
            preview["_truncated"] = f"showing {max_messages} of {len(messages)} messages"
    elif "messages" in body:
        preview["messages"] = _cut(messages)
    return preview


def install(app: Flask, *, words: int, max_messages: int) -> None:
    @app.before_request
    def log_request_preview() -> None:
        if (request.method != "POST" or not request.path.startswith("/v1/") or not request.is_json
                or not log.isEnabledFor(logging.DEBUG)):
            return
        body = request.get_json(silent=True)  # cached: the view does not parse it again
        if body is None:
            shown: Any = request.get_data(as_text=True)[:MAX_CHARS]
        else:
            shown = request_preview(body, words=words, max_messages=max_messages)
        log.debug("request preview %s %s", request.method, request.path,
                  extra={"request_id": g.get("request_id"), "preview": json.dumps(shown, ensure_ascii=False)})


def _message(message: Any, words: int) -> Any:
    if not isinstance(message, dict):
        return _cut(message)
    shown = dict(message)
    content = message.get("content")
    if isinstance(content, str):
        shown["content"] = _first_words(content, words)
    elif isinstance(content, list):
        shown["content"] = [_part(part, words) for part in content]
    if isinstance(message.get("tool_calls"), list):
        shown["tool_calls"] = [_tool_call(call, words) for call in message["tool_calls"]]
    return shown


def _part(part: Any, words: int) -> Any:
    if not isinstance(part, dict):
        return _cut(part)
    if isinstance(part.get("text"), str):
        return {**part, "text": _first_words(part["text"], words)}
    if part.get("type") == "image_url":
        return {"type": "image_url", "image_url": "[image]"}
    return _cut(part)


def _tool_call(call: Any, words: int) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
        return {**call, "function": {**function, "arguments": _first_words(function["arguments"], words)}}
    return _cut(call)


def _first_words(text: str, words: int) -> str:
    split = text.split()
    if len(split) <= words:
        return text
    return " ".join(split[:words]) + "..."


def _cut(value: Any) -> Any:
    """Long strings, at any depth, cut at MAX_CHARS characters."""
    if isinstance(value, str):
        return value if len(value) <= MAX_CHARS else value[:MAX_CHARS] + "..."
    if isinstance(value, dict):
        return {k: _cut(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v) for v in value]
    return value
