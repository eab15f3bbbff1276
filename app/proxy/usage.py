"""What a proxied model call used, read from the provider's answer as it is relayed, never buffered.

    usage = ProxyUsage(meter, prompt_chars=..., model_call=True, answer=upstream)
    for chunk in body: usage.feed(chunk); yield chunk
    usage.finish()        # when the caller's response closes: completion_usage, once

The proxy relays any provider API, so the answer's shape is not known in advance. A POST answered
2xx with a JSON or event-stream body is scanned, chunk by chunk, for usage objects: `"usage": {..}`
(OpenAI, Anthropic, the Responses API, Cohere's `tokens`) and `"usageMetadata": {..}` (Google).
Their counts are read under any of the names providers use (`prompt_tokens` / `input_tokens` /
`promptTokenCount`, and the like) and merged by their largest value, since streams report
cumulative counts (Anthropic sends the input tokens first and the output tokens at the end).

When the request named a model (body or path) and the answer carried no usage, or the caller
hung up before it came, the call is charged an estimate (app/chat/estimate.py), marked
`estimated`. A compressed answer is not scanned (the proxy asks for an uncompressed one on a model
call: `headers.to_provider(..., identity=True)`), so a provider that compresses anyway is charged
the estimate of its prompt.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from app.chat.estimate import TextCount, estimated_usage

if TYPE_CHECKING:
    import requests

    from app.chat.usage import Meter

# A usage object; its values nest one level (details objects, Google's per-modality lists).
_USAGE_VALUE = re.compile(rb'"(?:usage|usageMetadata)"\s*:\s*(\{(?:[^{}]|\{[^{}]*\})*\})')
_USAGE_START = b'"usage'
_CARRY = 16  # bytes kept between chunks so a field name cut in two is still found
_MAX_PENDING = 16 * 1024  # a usage object is far smaller: past this the scan gives that one up
_NAMES = {
    "prompt_tokens": ("prompt_tokens", "input_tokens", "promptTokenCount"),
    "completion_tokens": ("completion_tokens", "output_tokens", "candidatesTokenCount"),
    "total_tokens": ("total_tokens", "totalTokenCount"),
}
_SCANNED_TYPES = ("application/json", "text/event-stream")


def read_counts(usage: Any) -> dict[str, int]:
    """A provider's usage object as prompt_tokens / completion_tokens / total_tokens (those found)."""
    if not isinstance(usage, dict):
        return {}
    if not any(name in usage for names in _NAMES.values() for name in names) and isinstance(usage.get("tokens"), dict):
        usage = usage["tokens"]  # Cohere v2: {"billed_units": {...}, "tokens": {"input_tokens": ...}}
    found = {}
    for field, names in _NAMES.items():
        for name in names:
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                found[field] = value
                break
    return found


class ProxyUsage:
    __slots__ = ("_carry", "counts", "meter", "model_call", "prompt_chars", "scan", "success", "text")

    def __init__(self, meter: Meter, *, prompt_chars: int, model_call: bool, answer: requests.Response):
        self.meter = meter
        self.prompt_chars = prompt_chars
        self.model_call = model_call
        self.success = answer.status_code < 300
        plain = answer.headers.get("Content-Encoding", "identity").strip().lower() == "identity"
        self.scan = self.success and plain and answer.headers.get("Content-Type", "").lower().startswith(_SCANNED_TYPES)
        self.counts: dict[str, int] = {}
        self.text = TextCount()
        self._carry = b""

    def feed(self, chunk: bytes) -> None:
        if not self.scan:
            return
        self.text.feed(chunk)
        data = self._carry + chunk if self._carry else chunk
        if _USAGE_START not in data:
            self._carry = data[-_CARRY:]
            return
        position = 0
        for found in _USAGE_VALUE.finditer(data):
            self._merge(found.group(1))
            position = found.end()
        start = data.find(_USAGE_START, position)
        if start >= 0 and len(data) - start <= _MAX_PENDING:
            self._carry = data[start:]  # a usage object not complete yet
        else:
            self._carry = data[max(position, len(data) - _CARRY):]

    def _merge(self, raw: bytes) -> None:
        try:
            counts = read_counts(json.loads(raw))
        except ValueError:
            return
        for field, value in counts.items():
            self.counts[field] = max(value, self.counts.get(field, 0))

    def finish(self) -> None:
        """Report the usage read, else an estimate for a model call whose answer was a success (or cut)."""
        counts = self.counts
        if counts:
            prompt, completion = counts.get("prompt_tokens", 0), counts.get("completion_tokens", 0)
            self.meter.usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                                "total_tokens": max(counts.get("total_tokens", 0), prompt + completion)}
        elif self.model_call and self.success:
            self.meter.usage = estimated_usage(self.prompt_chars, self.text.chars)
        self.meter.finish()
