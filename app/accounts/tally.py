"""The usage of the request being served, gathered from `completion_usage` signals.

`UsageRecorder` (recorder.py) puts a fresh `Tally` in the context variable `CURRENT` when a
request starts; `on_completion_usage` adds each model call's usage to it (an MCP agent loop makes
several calls in one request). A stream reports its usage as its response closes, after Flask's
request context is gone; the context variable still holds the tally then, because gunicorn
iterates and closes a response in the greenlet (or thread) that called the app.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Call:
    provider: str | None
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    stream: bool


@dataclass(slots=True)
class Tally:
    calls: list[Call] = field(default_factory=list)

    @property
    def prompt_tokens(self) -> int:
        return sum(call.prompt_tokens for call in self.calls)

    @property
    def completion_tokens(self) -> int:
        return sum(call.completion_tokens for call in self.calls)

    @property
    def total_tokens(self) -> int:
        return sum(call.total_tokens for call in self.calls)


CURRENT: ContextVar[Tally | None] = ContextVar("gateway_usage_tally", default=None)


def count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return 0
    return int(value)


def on_completion_usage(sender: Any, *, provider: str | None = None, model: str | None = None,
                        usage: Any = None, stream: bool = False, **_: Any) -> None:
    """`completion_usage` receiver: add the call to the current request's tally."""
    tally = CURRENT.get()
    if tally is None or not isinstance(usage, dict):
        return
    prompt, completion = count(usage.get("prompt_tokens")), count(usage.get("completion_tokens"))
    total = count(usage.get("total_tokens")) or prompt + completion
    tally.calls.append(Call(provider, model, prompt, completion, total, bool(stream)))
