"""`llm_usage_cost_usd_total` on /metrics: the price table's dollars by provider, model and key name,
summed over both workers."""

from __future__ import annotations

import pytest

from tests.accounts.live import accounts_env, chat, completion_reply, new_key
from tests.support.fake_provider import json_reply
from tests.support.live_gateway import free_port
from tests.telemetry.test_live_metrics import scrape, telemetry_env, value, wait_for_value

CALL_COST = (1000 * 2.50 + 500 * 10.00) / 1e6


def test_cost_is_counted_per_key_name(live_gateway, fake_provider, tmp_path):
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion_reply()))
    port = free_port()
    gateway = live_gateway({**accounts_env(f"sqlite:///{tmp_path / 'g.db'}", fake_provider),
                            **telemetry_env(port), "AUTH_API_KEYS": "static-key-0123456789"}, workers=2)
    secret = new_key(gateway, name="billing")["secret"]
    for _ in range(4):
        assert chat(gateway, secret).status_code == 200
    assert chat(gateway, "static-key-0123456789").status_code == 200
    labels = {"provider": "openai", "model": "gpt-4o"}
    assert wait_for_value(port, "llm_usage_cost_usd_total", 4 * CALL_COST - 1e-9, key_name="billing", **labels) \
        == pytest.approx(4 * CALL_COST)
    assert value(scrape(port), "llm_usage_cost_usd_total", key_name="", **labels) == pytest.approx(CALL_COST)
