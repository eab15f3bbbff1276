"""What one model call used and which tools it called, read from the provider's answer and told
to other features by signal (`app.signals`).

    meter = Meter(app, route, subject=subject, stream=True)   # one per provider call
    endpoint.usage.read_body(raw, meter)                      # a whole response body
    endpoint.usage.read(event, meter)                         # one parsed stream event
    meter.finish()                                            # completion_usage, once, if seen

A `UsageFormat` knows where an API puts usage and tool calls, and normalises its counts to
prompt_tokens / completion_tokens / total_tokens (other keys are kept as sent):

    OPENAI_USAGE      chat, completions, embeddings: `usage` at the top of a body or chunk
    MEDIA_USAGE       images, audio, moderations: the same place, counted as input_tokens /
                      output_tokens where the API reports tokens at all (a call that reports none
                      sends no `completion_usage`; the ledger still gets its row from the request)
    RESPONSES_USAGE   the Responses API: the response's `usage` (in a stream: `response.completed`)
    ANTHROPIC_USAGE   the Messages API: `message_start`'s usage, updated by `message_delta`'s
    NO_USAGE          answers that cost no tokens (count_tokens, a kept response fetched again)
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


def normalised(usage: dict[str, Any]) -> dict[str, Any]:
    """`usage` with prompt/completion/total tokens, from input_tokens/output_tokens where it has those."""
    counted = dict(usage)
    if not isinstance(counted.get("prompt_tokens"), int) and isinstance(counted.get("input_tokens"), int):
        counted["prompt_tokens"] = counted["input_tokens"]
    if not isinstance(counted.get("completion_tokens"), int) and isinstance(counted.get("output_tokens"), int):
        counted["completion_tokens"] = counted["output_tokens"]
    if not isinstance(counted.get("total_tokens"), int):
        counted["total_tokens"] = sum(counted[key] for key in ("prompt_tokens", "completion_tokens")
                                      if isinstance(counted.get(key), int))
    return counted


class MediaUsage(OpenAIUsage):
    """Images, audio, moderations: OpenAI's top-level `usage`, counted in input/output tokens
    (a transcription billed by `seconds` reports no tokens: nothing to count)."""

    def read(self, obj: Any, meter: Meter) -> None:
        usage = obj.get("usage") if isinstance(obj, dict) else None
        if isinstance(usage, dict) and any(isinstance(usage.get(key), int) for key in _TOKEN_KEYS):
            meter.usage = normalised(usage)

    def read_body(self, raw: bytes, meter: Meter) -> None:
        if b'"usage"' not in raw:
            return  # an audio file, or an answer without usage
        try:
            self.read(json.loads(raw), meter)
        except ValueError:
            pass

    def is_usage_only(self, obj: Any) -> bool:
        return False


_TOKEN_KEYS = ("input_tokens", "output_tokens", "prompt_tokens", "completion_tokens", "total_tokens")
_RESPONSE_ENDS = (b'"response.completed"', b'"response.incomplete"', b'"response.failed"')


class WholeBodyUsage:
    """A format read from the whole parsed body; no event carries usage alone."""

    def read(self, obj: Any, meter: Meter) -> None:
        raise NotImplementedError

    def read_body(self, raw: bytes, meter: Meter) -> None:
        try:
            self.read(json.loads(raw), meter)
        except ValueError:
            pass

    def is_usage_only(self, obj: Any) -> bool:
        return False


class ResponsesUsage(WholeBodyUsage):
    """The Responses API: a response object's `usage` (input/output tokens) and its `function_call`
    output items; in a stream both are read from the last event (`response.completed`, or
    `response.incomplete` / `response.failed`), which carries the whole response."""

    def may_carry(self, block: bytes) -> bool:
        return any(end in block for end in _RESPONSE_ENDS)

    def read(self, obj: Any, meter: Meter) -> None:
        if not isinstance(obj, dict):
            return
        kind = obj.get("type")
        response = obj.get("response") if isinstance(kind, str) and kind.startswith("response.") else obj
        if not isinstance(response, dict):
            return
        usage = response.get("usage")
        if isinstance(usage, dict):
            meter.usage = normalised(usage)
        output = response.get("output")
        for item in output if isinstance(output, list) else ():
            if isinstance(item, dict) and item.get("type") == "function_call":
                name = item.get("name")
                if isinstance(name, str) and name:
                    meter.tool(name)


class AnthropicUsage(WholeBodyUsage):
    """The Messages API. A message's `usage` (`input_tokens`, `output_tokens`, and the cache counts
    that are prompt tokens too); in a stream `message_start` opens it and each `message_delta`
    updates it (its counts are totals so far). Tool calls are `tool_use` content blocks."""

    CACHE_KEYS = ("cache_creation_input_tokens", "cache_read_input_tokens")

    def may_carry(self, block: bytes) -> bool:
        return b'"usage"' in block or b'"tool_use"' in block

    def read(self, obj: Any, meter: Meter) -> None:
        if not isinstance(obj, dict):
            return
        kind = obj.get("type")
        if kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                self._count(message.get("usage"), {}, meter)
                self._tools(message.get("content"), meter)
        elif kind == "message_delta":
            self._count(obj.get("usage"), meter.usage or {}, meter)
        elif kind == "content_block_start":
            self._tools([obj.get("content_block")], meter)
        elif kind == "message":
            self._count(obj.get("usage"), {}, meter)
            self._tools(obj.get("content"), meter)

    def _count(self, usage: Any, before: dict[str, Any], meter: Meter) -> None:
        if not isinstance(usage, dict):
            return
        raw = {**before, **{key: value for key, value in usage.items() if value is not None}}
        prompt = sum(raw[key] for key in ("input_tokens", *self.CACHE_KEYS) if isinstance(raw.get(key), int))
        completion = raw["output_tokens"] if isinstance(raw.get("output_tokens"), int) else 0
        meter.usage = {**raw, "prompt_tokens": prompt, "completion_tokens": completion,
                       "total_tokens": prompt + completion}

    @staticmethod
    def _tools(blocks: Any, meter: Meter) -> None:
        for block in blocks if isinstance(blocks, list) else ():
            if isinstance(block, dict) and block.get("type") == "tool_use":
                name = block.get("name")
                if isinstance(name, str) and name:
                    meter.tool(name)


class NoUsage:
    """An answer that costs no tokens."""

    def may_carry(self, block: bytes) -> bool:
        return False

    def read(self, obj: Any, meter: Meter) -> None:
        return None

    def read_body(self, raw: bytes, meter: Meter) -> None:
        return None

    def is_usage_only(self, obj: Any) -> bool:
        return False


MEDIA_USAGE = MediaUsage()
RESPONSES_USAGE = ResponsesUsage()
ANTHROPIC_USAGE = AnthropicUsage()
NO_USAGE = NoUsage()
