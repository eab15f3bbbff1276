"""What a model call costs: US dollars per million input and output tokens, per model.

    PriceTable(overrides)            the shipped table with `overrides` laid over it
    table.cost(provider, model, usage) -> Cost(usd, priced)

`SHIPPED` holds the providers' published list prices for their common models, as compiled on
2026-12-02 (standard tier: no batch, cache or long-context rates; prices change, so check your
contract and override what differs). Keys are `provider/model` ids as clients write them. A
model is found by, in order: its exact id; its id without a date or `-latest` suffix
(`gpt-4o-mini-2024-07-18` -> `gpt-4o-mini`); its bare name when exactly one provider prices it
(so a deployment named otherwise, e.g. `openai-eu/gpt-4o`, still costs what `gpt-4o` costs).
A model found nowhere costs 0 and its ledger rows say `priced: false`.

Overrides (the `prices:` section of the config file, once there is one) map a `provider/model`
id, or a bare model name for every provider, to `{"input": usd_per_million, "output": ...}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MILLION = 1_000_000
_VERSION_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


@dataclass(frozen=True)
class Price:
    input: float   # USD per million prompt tokens
    output: float  # USD per million completion tokens


@dataclass(frozen=True)
class Cost:
    usd: float
    priced: bool  # False: the model has no price, `usd` is 0


def _p(input_usd: float, output_usd: float) -> Price:
    return Price(input_usd, output_usd)


SHIPPED: Mapping[str, Price] = {
    # OpenAI
    "openai/gpt-5": _p(1.25, 10.00), "openai/gpt-5-mini": _p(0.25, 2.00), "openai/gpt-5-nano": _p(0.05, 0.40),
    "openai/gpt-4.1": _p(2.00, 8.00), "openai/gpt-4.1-mini": _p(0.40, 1.60), "openai/gpt-4.1-nano": _p(0.10, 0.40),
    "openai/gpt-4o": _p(2.50, 10.00), "openai/gpt-4o-mini": _p(0.15, 0.60),
    "openai/gpt-4-turbo": _p(10.00, 30.00), "openai/gpt-4": _p(30.00, 60.00),
    "openai/gpt-3.5-turbo": _p(0.50, 1.50),
    "openai/o1": _p(15.00, 60.00), "openai/o1-mini": _p(1.10, 4.40), "openai/o3": _p(2.00, 8.00),
    "openai/o3-mini": _p(1.10, 4.40), "openai/o4-mini": _p(1.10, 4.40),
    "openai/text-embedding-3-small": _p(0.02, 0.0), "openai/text-embedding-3-large": _p(0.13, 0.0),
    "openai/text-embedding-ada-002": _p(0.10, 0.0),
    # Anthropic
    "anthropic/claude-opus-4-1": _p(15.00, 75.00), "anthropic/claude-opus-4": _p(15.00, 75.00),
    "anthropic/claude-sonnet-4-5": _p(3.00, 15.00), "anthropic/claude-sonnet-4": _p(3.00, 15.00),
    "anthropic/claude-haiku-4-5": _p(1.00, 5.00),
    "anthropic/claude-3-7-sonnet": _p(3.00, 15.00), "anthropic/claude-3-5-sonnet": _p(3.00, 15.00),
    "anthropic/claude-3-5-haiku": _p(0.80, 4.00), "anthropic/claude-3-opus": _p(15.00, 75.00),
    "anthropic/claude-3-haiku": _p(0.25, 1.25),
    # Google (Gemini API, prompts up to 200k tokens)
    "google/gemini-2.5-pro": _p(1.25, 10.00), "google/gemini-2.5-flash": _p(0.30, 2.50),
    "google/gemini-2.5-flash-lite": _p(0.10, 0.40), "google/gemini-2.0-flash": _p(0.10, 0.40),
    "google/gemini-2.0-flash-lite": _p(0.075, 0.30), "google/gemini-1.5-pro": _p(1.25, 5.00),
    "google/gemini-1.5-flash": _p(0.075, 0.30),
    # Groq
    "groq/llama-3.3-70b-versatile": _p(0.59, 0.79), "groq/llama-3.1-8b-instant": _p(0.05, 0.08),
    "groq/gemma2-9b-it": _p(0.20, 0.20),
    # DeepSeek
    "deepseek/deepseek-chat": _p(0.27, 1.10), "deepseek/deepseek-reasoner": _p(0.55, 2.19),
    # Mistral
    "mistral/mistral-large": _p(2.00, 6.00), "mistral/mistral-medium": _p(0.40, 2.00),
    "mistral/mistral-small": _p(0.10, 0.30), "mistral/codestral": _p(0.30, 0.90),
    "mistral/open-mistral-nemo": _p(0.15, 0.15), "mistral/mistral-embed": _p(0.10, 0.0),
    # Cohere
    "cohere/command-a-03-2025": _p(2.50, 10.00), "cohere/command-r-plus": _p(2.50, 10.00),
    "cohere/command-r": _p(0.15, 0.60), "cohere/command-r7b-12-2024": _p(0.0375, 0.15),
    # Moonshot
    "moonshot/kimi-k2-0905-preview": _p(0.60, 2.50), "moonshot/kimi-k2-turbo-preview": _p(1.15, 8.00),
}


def parse_overrides(overrides: Mapping[str, Any]) -> dict[str, Price]:
    """Validate `{"provider/model" or "model": {"input": x, "output": y}}`; ValueError names the entry."""
    parsed: dict[str, Price] = {}
    for name, entry in overrides.items():
        if isinstance(entry, Price):
            parsed[str(name).strip().lower()] = entry
            continue
        if not isinstance(name, str) or not name.strip() or not isinstance(entry, Mapping):
            raise ValueError(f"prices.{name}: expected {{input: <USD per million>, output: <USD per million>}}")
        unknown = set(entry) - {"input", "output"}
        if unknown:
            raise ValueError(f"prices.{name}: unknown field {min(unknown)!r} (expected input and output)")
        values = []
        for side in ("input", "output"):
            value = entry.get(side, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"prices.{name}.{side}: expected a number of USD per million tokens, 0 or more")
            values.append(float(value))
        parsed[name.strip().lower()] = Price(*values)
    return parsed


class PriceTable:
    def __init__(self, overrides: Mapping[str, Any] | None = None, shipped: Mapping[str, Price] = SHIPPED):
        self.by_id: dict[str, Price] = {k.lower(): v for k, v in shipped.items()}
        extra = parse_overrides(overrides or {})
        self.by_id.update({k: v for k, v in extra.items() if "/" in k})
        self.by_name: dict[str, Price] = {k: v for k, v in extra.items() if "/" not in k}
        unique: dict[str, Price | None] = {}
        for model_id, price in self.by_id.items():
            name = model_id.partition("/")[2]
            unique[name] = price if name not in unique else None
        self._shipped_names = {name: price for name, price in unique.items() if price is not None}
        self._found: dict[tuple[str, str], Price | None] = {}

    def price(self, provider: str | None, model: str | None) -> Price | None:
        if not model:
            return None
        key = ((provider or "").lower(), model.lower())
        if key not in self._found:
            if len(self._found) > 10_000:  # model names come from clients: bound the memo
                self._found.clear()
            self._found[key] = self._look_up(*key)
        return self._found[key]

    def _look_up(self, provider: str, model: str) -> Price | None:
        bare = _VERSION_SUFFIX.sub("", model)
        for name in (model, bare):
            found = self.by_id.get(f"{provider}/{name}") or self.by_name.get(name)
            if found is not None:
                return found
        for name in (model, bare):
            found = self._shipped_names.get(name)
            if found is not None:
                return found
        return None

    def cost(self, provider: str | None, model: str | None, prompt_tokens: int, completion_tokens: int) -> Cost:
        price = self.price(provider, model)
        if price is None:
            return Cost(0.0, False)
        return Cost((prompt_tokens * price.input + completion_tokens * price.output) / MILLION, True)
