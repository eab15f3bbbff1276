"""The usage of the request being served, gathered from `completion_usage` signals.

`UsageRecorder` (recorder.py) puts a fresh `Tally` in the context variable `CURRENT` when a
request starts; the accounts' before_request hook notes the virtual key in it, and their
`completion_usage` receiver adds each priced model call (an MCP agent loop makes several calls in
one request). A stream reports its usage as its relay ends, after Flask's request context is
gone; the context variable still holds the tally then, because gunicorn iterates and closes a
response in the greenlet (or thread) that called the app.
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
    cost_usd: float = 0.0
    priced: bool = False
    estimated: bool = False  # the usage is the gateway's estimate (app/chat/estimate.py)


@dataclass(slots=True)
class Tally:
    calls: list[Call] = field(default_factory=list)
    record: Any = None  # the request's virtual key (store.KeyRecord), if it used one
    deltas: list[Any] = field(default_factory=list)  # spend the database must still store (spend.SpendDelta)

    @property
    def cost_usd(self) -> float:
        return sum(call.cost_usd for call in self.calls)

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


def call_of(provider: str | None, model: str | None, usage: dict[str, Any], stream: bool) -> Call:
    prompt, completion = count(usage.get("prompt_tokens")), count(usage.get("completion_tokens"))
    return Call(provider, model, prompt, completion, count(usage.get("total_tokens")) or prompt + completion, stream,
                estimated=usage.get("estimated") is True)
