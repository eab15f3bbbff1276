"""The failed-login check carried by the rate limits' count (`RateLimits._carry_failure_check`):
with static API keys and the limits on Redis, a request with a valid key reads its address's
failure windows in the same script as its count (one round trip, not two), and a blocked address
is still refused, whatever key it sends, with nothing counted. Against a redis-server of the
test's own, whose command counters no other test moves."""

from __future__ import annotations

import pytest
import redis
import requests

from app.auth.failures import DEFERRED_KEY
from app.auth.failures import EXTENSION_KEY as FAILURES_KEY
from app.errors import InvalidRequest, RateLimited
from app.rate_limits import EXTENSION_KEY as LIMITS_KEY
from tests.ratelimit.test_live import started

GOOD = "good-key-0123456789"
FAILURES = 3


def settings(own_redis) -> dict[str, str]:
    return {"AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "", "AUTH_API_KEYS": GOOD,
            "AUTH_FAILURE_LIMIT": f"{FAILURES}/minute", "RATE_LIMIT_ENABLE": "true",
            "RATE_LIMIT_DEFAULT": "100/minute", "RATE_LIMIT_STORAGE_URI": own_redis.url,
            "RATE_LIMIT_KEY_PREFIX": "carried", "TRUSTED_PROXIES": "127.0.0.1"}


def get(gateway, address: str, key: str) -> requests.Response:
    return requests.get(gateway.url + "/openapi.yaml", timeout=10, headers={
        "X-Forwarded-For": address, "Authorization": f"Bearer {key}", "Connection": "close"})


def scripts_run(server: redis.Redis) -> int:
    stats = server.info("commandstats")
    return sum(stats.get(name, {}).get("calls", 0) for name in ("cmdstat_evalsha", "cmdstat_eval"))


def test_a_valid_key_costs_one_script_and_a_blocked_address_is_refused_with_nothing_counted(live_gateway,
                                                                                             own_redis):
    gateway = started(live_gateway(settings(own_redis), workers=2), 2)
    server = redis.Redis(unix_socket_path=str(own_redis.socket))
    first = get(gateway, "203.0.113.1", GOOD)  # the scripts are loaded in Redis by now
    assert first.status_code == 200
    remaining = int(first.headers["X-RateLimit-Remaining"])

    before = scripts_run(server)
    assert [get(gateway, "203.0.113.1", GOOD).status_code for _ in range(10)] == [200] * 10
    assert scripts_run(server) - before == 10  # the failed-login check went with each count

    for n in range(FAILURES):
        assert get(gateway, "203.0.113.2", f"wrong-{n}").status_code == 401
    for key in (GOOD, "wrong-again", GOOD):
        refused = get(gateway, "203.0.113.2", key)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "auth_failures_exceeded"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # the key's request window holds the 11 requests served, none of those refused
    assert int(get(gateway, "203.0.113.1", GOOD).headers["X-RateLimit-Remaining"]) == remaining - 11


@pytest.fixture
def blocked_app(make_app, own_redis):
    """An app whose client address (the test client's 127.0.0.1) has used up its failures."""
    app = make_app(settings(own_redis) | {"TRUSTED_PROXIES": ""})
    client = app.test_client()
    for n in range(FAILURES):
        assert client.get("/openapi.yaml", headers={"Authorization": f"Bearer wrong-{n}"}).status_code == 401
    return app


def test_a_refusal_between_the_guard_and_the_count_does_not_tell_a_blocked_address_its_key_is_right(blocked_app):
    """Whatever stops a request before the count that would have checked it, a blocked address
    gets the same 429 for the right key as for a wrong one."""
    hooks = blocked_app.before_request_funcs[None]

    def refuse() -> None:
        raise InvalidRequest("refused by a hook between the guard and the count")

    hooks.insert(hooks.index(blocked_app.extensions[LIMITS_KEY].count), refuse)
    client = blocked_app.test_client()
    for key in (GOOD, "wrong-again"):
        answer = client.get("/openapi.yaml", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 429
        assert answer.json["error"]["code"] == "auth_failures_exceeded"


def test_a_check_the_count_did_not_make_is_made_before_any_view(blocked_app):
    failures = blocked_app.extensions[FAILURES_KEY]
    with blocked_app.test_request_context("/openapi.yaml") as context:
        context.request.environ[DEFERRED_KEY] = "127.0.0.1"
        with pytest.raises(RateLimited, match="Too many failed authentications"):
            failures.settle_deferred()
        failures.settle_deferred()  # made once: nothing is left to check
