"""What a model call is charged when its provider's usage never arrives: an estimate, marked as one.

    count = TextCount()
    count.feed(block)                                   # each relayed block of the answer, as bytes
    usage = estimated_usage(prompt_chars(payload), count.chars)
    # -> {"prompt_tokens": .., "completion_tokens": .., "total_tokens": .., "estimated": True}

A stream cut before its final usage chunk (the client hung up, the provider cut it), a stream or
answer that carries no usage at all, a proxied model call whose answer has none: each is charged
about one token per CHARS_PER_TOKEN (4) characters, the rule of thumb of OpenAI's tokenizer
documentation for English text, of

    the prompt     every string in the request body but `model` and `data:` URLs (images and
                   files sent inline are not text), so messages, tool definitions, prompts, input
    the answer     the text the model streamed: JSON string values of the fields that carry
                   generated text (content, text, arguments, refusal, reasoning, thinking,
                   partial_json, delta), counted in the relayed bytes as written (escapes included)

The usage sent with `completion_usage` then says `"estimated": true`; the token budget, metrics
and the usage ledger count it like any other, and the ledger row and the access line show the
flag. Providers count differently (other languages, code, images): the estimate is a floor for
limits, not an invoice.
"""

from __future__ import annotations

import re
from typing import Any

CHARS_PER_TOKEN = 4
_TEXT_START = re.compile(
    rb'"(?:content|text|arguments|refusal|reasoning|reasoning_content|thinking|partial_json|delta)"\s*:\s*"')
_STRING_REST = re.compile(rb'(?:[^"\\]|\\.)*')  # a JSON string's characters, up to its closing quote
_KEY_TAIL = 40  # bytes kept between blocks, so a field name cut in two is still found


class TextCount:
    """Counts the bytes of generated-text string values in a JSON or SSE byte stream, block by block
    (a value or a field name may be cut across blocks)."""

    __slots__ = ("_in_string", "_pending", "chars")

    def __init__(self) -> None:
        self.chars = 0
        self._in_string = False
        self._pending = b""

    def feed(self, block: bytes) -> None:
        data = self._pending + block if self._pending else block
        position, end = 0, len(data)
        while True:
            if self._in_string:
                stop = _STRING_REST.match(data, position).end()
                self.chars += stop - position
                if stop < end and data[stop] == 0x22:  # the closing quote
                    self._in_string, position = False, stop + 1
                    continue
                self._pending = data[stop:]  # b"", or a lone backslash whose escaped byte comes next
                return
            found = _TEXT_START.search(data, position)
            if found is None:
                self._pending = data[max(position, end - _KEY_TAIL):]
                return
            self._in_string, position = True, found.end()


def prompt_chars(payload: Any) -> int:
    """Characters of the strings in a request body but `model` and `data:` URLs."""
    total, stack = 0, [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.startswith("data:"):
                total += len(item)
        elif isinstance(item, dict):
            stack.extend(value for key, value in item.items() if key != "model")
        elif isinstance(item, list):
            stack.extend(item)
    return total


def estimated_usage(prompt: int, completion: int) -> dict[str, Any]:
    """Usage from character counts, at least one prompt token (a call was made)."""
    prompt_tokens = max(1, -(-prompt // CHARS_PER_TOKEN))
    completion_tokens = -(-completion // CHARS_PER_TOKEN)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens, "estimated": True}
