"""What one model call used and which tools it called, read from the provider's answer and told
to other features by signal (`app.signals`).

    meter = Meter(app, route, subject=subject, stream=True)   # one per provider call
    endpoint.usage.read_body(raw, meter)                      # a whole response body
    endpoint.usage.read(event, meter)                         # one parsed stream event
    meter.finish()                                            # completion_usage, once, if seen

A `UsageFormat` knows where an API puts usage and tool calls; `OPENAI_USAGE` reads the OpenAI
shapes (chat, completions, embeddings). Another API (Responses, Anthropic Messages) is another
format, normalising its counts to prompt_tokens / completion_tokens / total_tokens.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Protocol

from app import signals

if TYPE_CHECKING:
    from flask import Flask

    from app.providers.routing import Route

# A usage object (not `"usage": null`, which OpenAI puts in every chunk once usage is asked for).
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
# The usage object itself (its values nest one level: prompt_tokens_details and the like).
_USAGE_VALUE = re.compile(rb'"usage"\s*:\s*(\{(?:[^{}]|\{[^{}]*\})*\})')
_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


class Meter:
    """Collects one provider call's usage and sends its signals (the app passed in is the sender).

    `tool(name)` sends `tool_called` at once; `finish()` sends `completion_usage` once, if usage
    was seen. Use one Meter per provider call (an agent loop makes one per iteration).
    """

    __slots__ = ("_finished", "app", "model", "provider", "stream", "subject", "usage")

    def __init__(self, app: Flask, route: Route, *, subject: str | None, stream: bool):
        self.app = app
        self.provider = route.provider.id
        self.model = route.model
        self.subject = subject
        self.stream = stream
        self.usage: dict[str, Any] | None = None
        self._finished = False

    def tool(self, name: str) -> None:
        signals.send(signals.tool_called, self.app, provider=self.provider, model=self.model, tool_name=name,
                     tool_type="mcp" if name.startswith("mcp_") else "standard_tool_use")

    def finish(self) -> None:
        if self._finished or self.usage is None:
            return
        self._finished = True
        usage = dict(self.usage)
        for key in _COUNTS:
            if not isinstance(usage.get(key), int):
                usage[key] = 0
        signals.send(signals.completion_usage, self.app, provider=self.provider, model=self.model, usage=usage,
                     subject=self.subject, stream=self.stream)


class UsageFormat(Protocol):
    """Where an API's answers carry usage and tool calls."""

    def may_carry(self, block: bytes) -> bool:
        """A cheap look at relayed SSE bytes: False when they surely carry neither."""

    def read(self, obj: Any, meter: Meter) -> None:
        """Give the meter the usage and tool calls of one parsed body or event."""

    def read_body(self, raw: bytes, meter: Meter) -> None:
        """`read` a whole response body, parsing no more of it than needed."""

    def is_usage_only(self, obj: Any) -> bool:
        """The event that carries nothing but usage (hidden when the client did not ask for it)."""


class OpenAIUsage:
    """`usage` at the top level of a body or chunk; tool calls in `choices[].message|delta.tool_calls`."""

    def may_carry(self, block: bytes) -> bool:
        return ((b'"usage"' in block and _USAGE_OBJECT.search(block) is not None)
                or (b'"tool_calls"' in block and b'"name"' in block))

    def read(self, obj: Any, meter: Meter) -> None:
        if not isinstance(obj, dict):
            return
        usage = obj.get("usage")
        if isinstance(usage, dict):
            meter.usage = usage
        for choice in obj.get("choices") or ():
            part = (choice.get("message") or choice.get("delta")) if isinstance(choice, dict) else None
            calls = part.get("tool_calls") if isinstance(part, dict) else None
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                name = function.get("name") if isinstance(function, dict) else None
                if isinstance(name, str) and name:
                    meter.tool(name)

    def read_body(self, raw: bytes, meter: Meter) -> None:
        """Only tool calls make it parse the whole body; usage alone is read from the last
        `"usage": {...}` (where providers put it)."""
        try:
            if b'"tool_calls"' in raw:
                self.read(json.loads(raw), meter)
            elif (at := raw.rfind(b'"usage"')) >= 0:
                match = _USAGE_VALUE.match(raw, at)
                self.read({"usage": json.loads(match.group(1))} if match else json.loads(raw), meter)
        except ValueError:
            pass  # not JSON: nothing to count

    def is_usage_only(self, obj: Any) -> bool:
        return isinstance(obj, dict) and obj.get("choices") == [] and bool(obj.get("usage"))


OPENAI_USAGE = OpenAIUsage()
