"""A virtual key on the model endpoints (SQLite and PostgreSQL), through the app and a real fake
provider: its models, limits and budget, expiry, the ledger row, the access line, static keys beside it."""

from __future__ import annotations

import json

import pytest
import redis

from app.accounts.feature import EXTENSION_KEY
from tests.accounts.conftest import ADMIN
from tests.support.fake_provider import json_reply, sse_reply
from tests.support.refused import refusing_port

STATIC_KEY = "static-key-0123456789abcdef"
CHAT = "/v1/chat/completions"


def completion(prompt: int, completion: int) -> dict:
    return {"id": "c1", "object": "chat.completion", "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}


@pytest.fixture
def gateway(accounts_app, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion(1000, 500)))
    app = accounts_app({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk-provider",
                        "AUTH_API_KEYS": STATIC_KEY})
    return app, app.test_client()


@pytest.fixture(params=["memory", "redis"])
def limited_gateway(request, accounts_app, fake_provider):
    """The gateway with a key's limits and spend counted in memory:// (spend in the database), or in
    the shared Redis (one script before a request, one after: app/accounts/key_limits.py)."""
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion(1000, 500)))
    storage = {}
    if request.param == "redis":
        space = request.getfixturevalue("shared_redis")
        storage = {"RATE_LIMIT_STORAGE_URI": space.url, "RATE_LIMIT_KEY_PREFIX": space.prefix}
    app = accounts_app({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk-provider", **storage})
    counted_by = type(app.extensions[EXTENSION_KEY].limits).__name__
    assert counted_by == ("RedisKeyLimits" if storage else "KeyLimits")  # each path is the one under test
    return app, app.test_client()


def new_key(client, **fields) -> tuple[str, str]:
    created = client.post("/admin/keys", json={"name": "app-1", **fields}, headers=ADMIN).get_json()
    client.application.extensions[EXTENSION_KEY].cache.refresh()  # as the refresh thread does within a second
    return created["id"], created["secret"]


def chat(client, secret: str, model: str = "openai/gpt-4o", **extra):
    response = client.post(CHAT, json={"model": model, "messages": [{"role": "user", "content": "hi"}], **extra},
                           headers={"Authorization": f"Bearer {secret}"})
    response.get_data()
    response.close()
    return response


def ledger(app, client, **query) -> dict:
    app.extensions[EXTENSION_KEY].writer.flush()
    return client.get("/admin/usage", query_string=query, headers=ADMIN).get_json()


def test_a_call_is_priced_written_to_the_ledger_and_logged(gateway, capsys):
    app, client = gateway
    key_id, secret = new_key(client)
    assert chat(client, secret).status_code == 200
    rows = ledger(app, client)["data"]
    assert len(rows) == 1
    row = rows[0]
    assert (row["key_id"], row["subject"], row["provider"], row["deployment"], row["model"]) == \
        (key_id, f"vkey:{key_id}", "openai", "openai", "gpt-4o")
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (1000, 500, 1500)
    assert row["cost_usd"] == pytest.approx((1000 * 2.5 + 500 * 10) / 1e6)
    assert row["priced"] is True and row["status"] == 200 and row["streamed"] is False
    assert row["endpoint"] == CHAT and row["alias"] is None and row["latency_ms"] > 0
    access = [json.loads(line) for line in capsys.readouterr().err.splitlines()
              if '"gateway.access"' in line and CHAT in line]
    assert access[-1]["key"] == "app-1" and access[-1]["model"] == "gpt-4o"
    assert access[-1]["usage"]["total_tokens"] == 1500 and access[-1]["request_id"] == row["request_id"]
    spend = client.get(f"/admin/keys/{key_id}", headers=ADMIN).get_json()["spend"]
    assert spend["spent_usd"] == pytest.approx(0.0075)


def test_streams_are_charged_when_they_end(gateway, fake_provider):
    app, client = gateway
    fake_provider.on("POST", "/v1/chat/completions", sse_reply([
        {"choices": [{"index": 0, "delta": {"content": "hi"}}]},
        {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42}}]))
    _, secret = new_key(client, budget_usd=1)
    response = chat(client, secret, stream=True)
    assert response.status_code == 200 and b"[DONE]" in response.data
    row = ledger(app, client)["data"][0]
    assert row["streamed"] is True and row["total_tokens"] == 42


def test_a_key_reaches_only_its_models(gateway):
    _app, client = gateway
    _, secret = new_key(client, models=["openai/gpt-4o"])
    assert chat(client, secret).status_code == 200
    refused = chat(client, secret, model="openai/gpt-4o-mini")
    assert refused.status_code == 403
    assert refused.get_json()["error"]["type"] == "permission_error"
    assert "app-1" in refused.get_json()["error"]["message"]
    proxied = client.post("/proxy/openai/chat/completions", json={"model": "gpt-4o"},
                          headers={"Authorization": f"Bearer {secret}"})
    assert proxied.status_code == 403  # the proxy reaches anything: not for keys limited to models
    _, open_secret = new_key(client, name="any-model")
    assert chat(client, open_secret, model="openai/gpt-4o-mini").status_code == 200


def test_the_budget_refuses_the_request_after_the_one_that_crossed_it(limited_gateway, fake_provider):
    app, client = limited_gateway
    key_id, secret = new_key(client, budget_usd=0.01, budget_period="day")  # each call costs 0.0075
    assert chat(client, secret).status_code == 200
    assert chat(client, secret).status_code == 200  # 0.0075 < 0.01: served, crosses it
    refused = chat(client, secret)
    assert refused.status_code == 429
    error = refused.get_json()["error"]
    assert error["code"] == "budget_exceeded" and error["type"] == "rate_limit_error"
    assert "$0.015000" in error["message"] and "$0.01 daily budget" in error["message"]
    assert "resets at" in error["message"] and int(refused.headers["Retry-After"]) >= 1
    assert len(fake_provider.requests) == 2
    app.extensions[EXTENSION_KEY].writer.flush()  # on Redis the database's copy follows with the ledger rows
    raised = client.patch(f"/admin/keys/{key_id}", json={"budget_usd": 1}, headers=ADMIN)
    assert raised.get_json()["spend"]["spent_usd"] == pytest.approx(0.015)
    app.extensions[EXTENSION_KEY].cache.refresh()
    assert chat(client, secret).status_code == 200


def test_tokens_and_requests_per_minute(limited_gateway):
    _app, client = limited_gateway
    _, by_tokens = new_key(client, name="t", tpm=1000)
    assert chat(client, by_tokens).status_code == 200  # 1500 tokens
    refused = chat(client, by_tokens)
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "token_limit_exceeded"
    _, by_requests = new_key(client, name="r", rpm=2)
    assert [chat(client, by_requests).status_code for _ in range(3)] == [200, 200, 429]
    assert chat(client, by_requests).get_json()["error"]["code"] == "rate_limit_exceeded"
    _, all_three = new_key(client, name="all", rpm=3, tpm=2000, budget_usd=1, budget_period="month")
    assert chat(client, all_three).status_code == 200  # 1500 tokens, $0.0075
    assert chat(client, all_three).status_code == 200  # 3000 tokens: crosses the tpm
    refused = chat(client, all_three)
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "token_limit_exceeded"
    assert "2000 tokens per minute" in refused.get_json()["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 and refused.headers["X-RateLimit-Remaining-Tokens"] == "0"
    requests_refused = chat(client, by_requests)
    assert 1 <= int(requests_refused.headers["Retry-After"]) <= 60


def test_a_budget_survives_redis_losing_its_spend_counter(accounts_app, fake_provider, shared_redis):
    """The database keeps each key's spend (written with the ledger rows); a counter Redis lost is seeded
    from it again, so the budget still refuses."""
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion(1000, 500)))
    app = accounts_app({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk-provider",
                        "RATE_LIMIT_STORAGE_URI": shared_redis.url, "RATE_LIMIT_KEY_PREFIX": shared_redis.prefix})
    client = app.test_client()
    _, secret = new_key(client, budget_usd=0.01, budget_period="total")  # each call costs 0.0075
    assert [chat(client, secret).status_code for _ in range(3)] == [200, 200, 429]
    app.extensions[EXTENSION_KEY].writer.flush()
    counters = redis.Redis.from_url(shared_redis.url)
    lost = list(counters.scan_iter(match=f"{shared_redis.prefix}:spend:*"))
    assert lost and counters.delete(*lost) == len(lost)
    refused = chat(client, secret)
    assert refused.status_code == 429 and "$0.015000" in refused.get_json()["error"]["message"]
    assert len(fake_provider.requests) == 2


@pytest.mark.parametrize("fail_open", ["true", "false"])
def test_a_limited_key_on_an_unreachable_redis_is_served_or_refused_as_fail_open_says(accounts_app, fake_provider,
                                                                                      fail_open):
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion(1000, 500)))
    with refusing_port() as port:
        app = accounts_app({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk-provider",
                            "RATE_LIMIT_STORAGE_URI": f"redis://127.0.0.1:{port}/0", "RATE_LIMIT_FAIL_OPEN": fail_open,
                            "AUTH_FAILURE_LIMIT": ""})  # only the key's own limits count in the storage
        client = app.test_client()
        _, secret = new_key(client, rpm=5, tpm=100000, budget_usd=1)
        answers = [chat(client, secret) for _ in range(2)]  # the storage tried, then skipped (its breaker)
    if fail_open == "true":
        assert [a.status_code for a in answers] == [200, 200]
        assert len(fake_provider.requests) == 2
    else:
        assert [a.status_code for a in answers] == [503, 503]
        assert answers[0].get_json()["error"]["code"] == "rate_limit_storage_unavailable"
        assert not fake_provider.requests


def test_expired_revoked_and_unknown_keys_are_refused(gateway):
    app, client = gateway
    key_id, secret = new_key(client, expires_at="2099-01-01")
    assert chat(client, secret).status_code == 200
    app.extensions[EXTENSION_KEY].credentials.wall = lambda: 4_102_444_800 + 1  # 2100-01-01
    expired = chat(client, secret)
    assert expired.status_code == 401 and expired.get_json()["error"]["message"] == "the key has expired"
    app.extensions[EXTENSION_KEY].credentials.wall = lambda: 0
    client.delete(f"/admin/keys/{key_id}", headers=ADMIN)
    app.extensions[EXTENSION_KEY].cache.refresh()
    assert chat(client, secret).status_code == 401
    assert chat(client, "sk-gw-not-a-key").status_code == 401


def test_static_keys_work_beside_virtual_keys_and_are_recorded_by_subject(gateway):
    app, client = gateway
    assert chat(client, STATIC_KEY).status_code == 200
    row = ledger(app, client)["data"][0]
    assert row["key_id"] is None and row["subject"].startswith("key:")
    grouped = ledger(app, client, group_by="key")["data"]
    assert grouped[0]["subject"] == row["subject"] and grouped[0]["requests"] == 1


def test_usage_reports_group_filter_and_speak_csv(gateway):
    app, client = gateway
    first_id, first = new_key(client, name="first")
    _, second = new_key(client, name="second")
    for secret in (first, first, second):
        chat(client, secret)
    by_key = ledger(app, client, group_by="key")
    assert [(r["key_name"], r["requests"]) for r in by_key["data"]] == [("first", 2), ("second", 1)]
    assert by_key["totals"]["requests"] == 3 and by_key["totals"]["cost_usd"] == pytest.approx(0.0225)
    assert ledger(app, client, key=first_id)["totals"]["requests"] == 2
    assert ledger(app, client, model="openai/gpt-4o", group_by="model")["data"][0]["total_tokens"] == 4500
    assert ledger(app, client, model="gpt-4o-mini")["totals"]["requests"] == 0
    assert ledger(app, client, **{"from": "2000-01-01", "to": "2000-01-02"})["totals"]["requests"] == 0
    days = ledger(app, client, group_by="day")["data"]
    assert len(days) == 1 and days[0]["requests"] == 3 and len(days[0]["day"]) == 10
    csv_answer = client.get("/admin/usage?group_by=key", headers={**ADMIN, "Accept": "text/csv"})
    assert csv_answer.mimetype == "text/csv"
    lines = csv_answer.get_data(as_text=True).splitlines()
    assert lines[0] == "key_id,key_name,subject,requests,prompt_tokens,completion_tokens,total_tokens,cost_usd," \
                       "unpriced_requests"
    assert lines[1].startswith(f"{first_id},first,,2,2000,1000,3000,0.015,0")


def test_the_model_list_shows_a_key_only_its_models(gateway, fake_provider):
    _app, client = gateway
    fake_provider.on("GET", "/v1/models", json_reply({"object": "list", "data": [
        {"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "openai"},
        {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "openai"}]}))
    _, limited = new_key(client, models=["openai/gpt-4o"])
    for query in ("?provider=openai", ""):
        listed = client.get(f"/v1/models{query}", headers={"Authorization": f"Bearer {limited}"})
        assert [m["id"] for m in listed.get_json()["data"]] == ["openai/gpt-4o"]
    everything = client.get("/v1/models?provider=openai", headers={"Authorization": f"Bearer {STATIC_KEY}"})
    assert [m["id"] for m in everything.get_json()["data"]] == ["openai/gpt-4o", "openai/gpt-4o-mini"]
