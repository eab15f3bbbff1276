"""The price table: what a call costs, how a model is found, overrides, unknown models flagged."""

from __future__ import annotations

import pytest

from app.accounts.prices import SHIPPED, Price, PriceTable


def test_cost_is_per_million_input_and_output_tokens():
    table = PriceTable()
    cost = table.cost("openai", "gpt-4o-mini", 1_000_000, 500_000)
    assert cost.priced and cost.usd == pytest.approx(0.15 + 0.30)
    assert table.cost("openai", "text-embedding-3-small", 2_000_000, 0).usd == pytest.approx(0.04)


@pytest.mark.parametrize(("provider", "model", "expected"), [
    ("openai", "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),   # dated snapshot
    ("anthropic", "claude-3-5-haiku-latest", "anthropic/claude-3-5-haiku"),
    ("anthropic", "claude-3-5-haiku-20241022", "anthropic/claude-3-5-haiku"),
    ("OpenAI", "GPT-4o", "openai/gpt-4o"),                        # case-insensitive
    ("openai-eu", "gpt-4o", "openai/gpt-4o"),                     # a deployment named otherwise
    ("mistral", "mistral-large-latest", "mistral/mistral-large"),
])
def test_models_are_found_by_id_snapshot_and_unique_name(provider, model, expected):
    assert PriceTable().price(provider, model) == SHIPPED[expected]


def test_unknown_models_cost_nothing_and_say_so():
    cost = PriceTable().cost("ollama", "llama3:8b", 1000, 1000)
    assert cost.usd == 0 and cost.priced is False
    assert PriceTable().cost("openai", None, 10, 10).priced is False
    assert PriceTable().price("openai", "gpt-4o-audio-preview") is None  # no loose prefix matching


def test_overrides_win_and_bare_names_apply_to_every_provider():
    table = PriceTable({"openai/gpt-4o": {"input": 1, "output": 2}, "llama3:8b": {"input": 0.5, "output": 0.5}})
    assert table.price("openai", "gpt-4o") == Price(1.0, 2.0)
    assert table.cost("ollama", "llama3:8b", 2_000_000, 0).usd == pytest.approx(1.0)
    assert table.price("openai", "gpt-4o-mini") == SHIPPED["openai/gpt-4o-mini"]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"openai/x": {"input": -1}}, "prices.openai/x.input"),
    ({"openai/x": {"input": "cheap"}}, "prices.openai/x.input"),
    ({"openai/x": {"inptu": 1}}, "unknown field 'inptu'"),
    ({"openai/x": 3}, "prices.openai/x:"),
])
def test_bad_overrides_name_the_entry(overrides, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        PriceTable(overrides)
