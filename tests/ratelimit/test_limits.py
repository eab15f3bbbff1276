"""Request limits in one app (Flask test client): who is counted, what a refusal looks like, what is exempt."""

from __future__ import annotations

import time

import pytest
from flask import Flask

from app.config import ConfigError

PROBE = "/openapi.yaml"  # a real route of the gateway's, protected and limited like every route but /health


def limited_app(make_app, **settings: str) -> Flask:
    return make_app({"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "3/minute", **settings})


def test_n_requests_pass_then_429_with_envelope_and_headers(make_app):
    client = limited_app(make_app).test_client()
    remaining = []
    for _ in range(3):
        ok = client.get(PROBE)
        assert ok.status_code == 200
        assert ok.headers["X-RateLimit-Limit"] == "3"
        assert 1 <= int(ok.headers["Retry-After"]) <= 60  # when the window resets, on every limited response
        remaining.append(ok.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]

    refused = client.get(PROBE)
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == "application/json"
    error = refused.json["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert "3 per 1 minute" in error["message"]
    assert refused.headers["X-RateLimit-Limit"] == "3"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    reset = int(refused.headers["X-RateLimit-Reset"])
    assert time.time() < reset <= time.time() + 61


def test_an_answers_own_limit_headers_give_way_to_the_gateways(make_app):
    """A provider's answer relayed with its own X-RateLimit-* / Retry-After: the client sees one of
    each, the gateway's (the limit it is counted against here)."""
    app = limited_app(make_app)

    def relayed():
        return "{}", 200, {"x-ratelimit-limit": "999", "X-RateLimit-Remaining": "998", "Retry-After": "7",
                           "X-RateLimit-Reset": "1", "Content-Type": "application/json"}

    app.add_url_rule("/relayed", "relayed", relayed)
    answer = app.test_client().get("/relayed")
    assert answer.status_code == 200
    assert answer.headers.getlist("X-RateLimit-Limit") == ["3"]
    assert answer.headers.getlist("X-RateLimit-Remaining") == ["2"]
    assert len(answer.headers.getlist("Retry-After")) == 1 and int(answer.headers["Retry-After"]) <= 60
    assert int(answer.headers["X-RateLimit-Reset"]) > time.time()


def test_the_tightest_of_several_limits_refuses(make_app):
    client = limited_app(make_app, RATE_LIMIT_DEFAULT="100/minute;2/hour").test_client()
    assert [client.get(PROBE).status_code for _ in range(3)] == [200, 200, 429]
    refused = client.get(PROBE)
    assert "2 per 1 hour" in refused.json["error"]["message"]
    assert refused.headers["X-RateLimit-Limit"] == "2"
    assert 60 < int(refused.headers["Retry-After"]) <= 3600


def test_limit_is_per_subject_across_routes(make_app):
    """One counter per subject: every limited route draws on it, whatever it answers."""
    client = limited_app(make_app).test_client()
    assert client.get(PROBE).status_code == 200
    assert client.get("/v1/mcp/tools").status_code == 403  # MCP_EXPOSE is off: refused, but counted
    assert client.get(PROBE).status_code == 200
    assert client.get("/v1/models").status_code == 429


def test_health_is_never_limited_nor_counted(make_app):
    client = limited_app(make_app).test_client()
    for _ in range(10):
        health = client.get("/health")
        assert health.status_code == 200
        assert "X-RateLimit-Limit" not in health.headers
    assert [client.get(PROBE).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert client.get("/health").status_code == 200


def test_client_address_without_subject(make_app):
    client = limited_app(make_app).test_client()
    one = {"REMOTE_ADDR": "192.0.2.1"}
    assert [client.get(PROBE, environ_base=one).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert client.get(PROBE, environ_base={"REMOTE_ADDR": "192.0.2.2"}).status_code == 200


def test_forwarded_for_is_ignored_from_an_untrusted_peer(make_app):
    client = limited_app(make_app, TRUSTED_PROXIES="10.0.0.0/8").test_client()
    statuses = [client.get(PROBE, environ_base={"REMOTE_ADDR": "192.0.2.9"},
                           headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(4)]
    assert statuses == [200, 200, 200, 429]  # spoofed addresses do not buy new budgets


def test_forwarded_for_from_a_trusted_proxy_names_the_client(make_app):
    client = limited_app(make_app, TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.7").test_client()
    via_proxy = {"REMOTE_ADDR": "192.0.2.7"}

    def send(forwarded: str) -> int:
        return client.get(PROBE, environ_base=via_proxy, headers={"X-Forwarded-For": forwarded}).status_code

    # The right-most untrusted hop is the client; what it claimed to its left changes nothing.
    assert [send(f"198.51.100.{i}, 203.0.113.5, 10.1.2.3") for i in range(4)] == [200, 200, 200, 429]
    # Another client behind the same proxies has its own budget.
    assert send("203.0.113.6, 10.1.2.3") == 200
    # The proxy's own requests (no header) are counted for the proxy.
    assert client.get(PROBE, environ_base=via_proxy).status_code == 200


def test_disabled_by_default(make_app):
    app = make_app({"RATE_LIMIT_DEFAULT": "1/minute"})
    client = app.test_client()
    for _ in range(3):
        response = client.get("/openapi.yaml")
        assert response.status_code == 200 and "X-RateLimit-Limit" not in response.headers


@pytest.mark.parametrize(("settings", "named"), [
    ({"RATE_LIMIT_DEFAULT": "lots/minute"}, "RATE_LIMIT_DEFAULT"),
    ({"TRUSTED_PROXIES": "10.0.0.0/8, proxy.example"}, "TRUSTED_PROXIES"),
    ({"RATE_LIMIT_TOKENS_PER_MINUTE": "-5"}, "RATE_LIMIT_TOKENS_PER_MINUTE"),
])
def test_bad_settings_stop_start_up_naming_the_variable(make_app, settings, named):
    with pytest.raises(ConfigError, match=named):
        make_app({"RATE_LIMIT_ENABLE": "true", **settings})


def test_routes_of_other_features_are_limited_too(make_app):
    client = limited_app(make_app, RATE_LIMIT_DEFAULT="2/minute").test_client()
    assert client.get("/v1/models").status_code != 429
    assert client.get("/v1/models").status_code != 429
    refused = client.get("/v1/models")
    assert refused.status_code == 429 and refused.headers["X-RateLimit-Limit"] == "2"


def test_with_auth_on_each_api_key_has_its_own_budget(make_app):
    client = limited_app(make_app, AUTH_ENABLE="true", AUTH_API_KEYS="alpha-key-0001,beta-key-0002",
                         AUTH_OIDC_ISSUER="").test_client()
    alpha, beta = {"x-api-key": "alpha-key-0001"}, {"Authorization": "Bearer beta-key-0002"}
    assert [client.get("/openapi.yaml", headers=alpha).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert client.get("/openapi.yaml", headers=beta).status_code == 200  # same address, other subject
    assert client.get("/openapi.yaml").status_code == 401  # no credential: auth refuses first
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    ("192.0.2.9", "203.0.113.1", "192.0.2.9"),                 # untrusted peer: header ignored
    ("10.0.0.1", None, "10.0.0.1"),                             # trusted peer, no header: the proxy itself
    ("10.0.0.1", "203.0.113.1", "203.0.113.1"),
    ("10.0.0.1", "198.51.100.1, 203.0.113.1, 10.0.0.2", "203.0.113.1"),  # right-most untrusted hop
    ("10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),             # all trusted: the left-most
    ("10.0.0.1", "203.0.113.1, not-an-ip", "10.0.0.1"),        # junk: the last vouched-for address
    ("10.0.0.1", "2001:db8::1", "2001:db8::1"),
])
def test_client_address_walks_forwarded_for_from_the_right(peer, forwarded, client):
    from app.rate_limits import ClientAddress

    environ = {"REMOTE_ADDR": peer, **({"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {})}
    assert ClientAddress(["10.0.0.0/8"])(environ) == client


def test_unknown_routes_are_not_counted(make_app):
    client = limited_app(make_app).test_client()
    for _ in range(5):
        assert client.get("/no/such/route").status_code == 404
    assert client.get(PROBE).headers["X-RateLimit-Remaining"] == "2"
