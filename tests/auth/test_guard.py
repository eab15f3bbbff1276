"""The app-wide check: what is protected, what is open, what a refusal looks like."""

from __future__ import annotations

import re

import pytest

from tests.auth.conftest import API_KEY, assert_refused, bearer, whoami


def _example_path(rule) -> str:
    return re.sub(r"<[^>]+>", "x", rule.rule)


def test_every_route_but_the_health_blueprint_needs_a_credential(auth_app):
    app = auth_app()
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("health."):
            continue
        for method in sorted(rule.methods):
            response = client.open(_example_path(rule), method=method)
            assert response.status_code == 401, (method, rule.rule)
            checked += 1
    assert checked >= 4  # /v1/whoami GET, POST, HEAD, OPTIONS and /static/...


def test_health_is_open(auth_app):
    client = auth_app().test_client()
    assert client.get("/health").get_json() == {"message": "OK"}
    # only /health: even the API contract needs a credential
    assert client.get("/openapi.yaml").status_code == 401


def test_unknown_route_is_refused_before_it_is_not_found(auth_app):
    client = auth_app().test_client()
    assert_refused(client.get("/v1/nothing-here"), "missing credential")
    assert_refused(client.post("/proxy/openai/v1/anything", json={"x": 1}), "missing credential")
    assert client.get("/v1/nothing-here", headers=bearer(API_KEY)).status_code == 404


def test_missing_credential(auth_app):
    client = auth_app().test_client()
    assert_refused(client.get("/v1/whoami"), "missing credential")
    assert_refused(client.get("/v1/whoami", headers={"x-api-key": "  "}), "missing credential")


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token abc", "", API_KEY,
                                   f"Bearer:{API_KEY}"])
def test_malformed_authorization_header(auth_app, value):
    client = auth_app().test_client()
    assert_refused(client.get("/v1/whoami", headers={"Authorization": value}),
                   "malformed Authorization header: expected 'Bearer <credential>'", credential=API_KEY)


def test_authorization_wins_over_x_api_key(auth_app):
    client = auth_app().test_client()
    response = client.get("/v1/whoami", headers={"Authorization": "Bearer wrong-key", "x-api-key": API_KEY})
    assert_refused(response, "invalid credential")


def test_jwt_shaped_bearer_with_oidc_off_is_refused(auth_app):
    client = auth_app({"AUTH_OIDC_ISSUER": ""}).test_client()
    assert_refused(client.get("/v1/whoami", headers=bearer("aaa.bbb.ccc")), "invalid credential")
    assert client.get("/v1/whoami", headers=bearer(API_KEY)).status_code == 200


def test_later_before_request_hooks_see_the_subject(auth_app):
    app = auth_app()
    seen = []
    app.before_request(lambda: seen.append(__import__("flask").g.subject))
    app.test_client().get("/v1/whoami", headers=bearer(API_KEY))
    assert seen and seen[0].startswith("key:")


def test_auth_off_installs_nothing(make_app):
    app = make_app({"SERVER_HOST": "127.0.0.1"})
    app.add_url_rule("/v1/whoami", "whoami", whoami)
    response = app.test_client().get("/v1/whoami")
    assert response.status_code == 200
    assert response.get_json() == {"subject": None, "environ_subject": None}


@pytest.mark.parametrize("host, warned", [("0.0.0.0", True), ("::", True), ("10.1.2.3", True),
                                          ("127.0.0.1", False), ("localhost", False), ("::1", False)])
def test_auth_off_warns_when_listening_beyond_loopback(make_app, capsys, host, warned):
    capsys.readouterr()
    make_app({"SERVER_HOST": host})
    err = capsys.readouterr().err
    assert ("AUTH_ENABLE=false while the gateway listens on a non-loopback address" in err) is warned
