"""Fixtures for the auth tests: a real OIDC issuer on 127.0.0.1 and apps with auth on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask, Response, g, jsonify, request

from app.auth.guard import AUTH_EXTENSION_KEY, Guard
from app.signals import SUBJECT_KEY
from tests.support.oidc_issuer import OidcIssuer

CLIENT_ID = "gateway-tests"
API_KEY = "gw-test-key-0123456789abcdef"


def whoami() -> Response:
    """A route only the tests register: stands for every feature route added later."""
    return jsonify(subject=g.get("subject"), environ_subject=request.environ.get(SUBJECT_KEY))


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    issuer = OidcIssuer(audience=CLIENT_ID).start()
    yield issuer
    issuer.stop()


@pytest.fixture
def auth_app(make_app: Callable[..., Flask], issuer: OidcIssuer) -> Callable[..., Flask]:
    """An app with auth on (OIDC at `issuer` and API_KEY), plus GET/POST /v1/whoami."""

    def build(overrides: dict[str, str] | None = None) -> Flask:
        env = {"AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": issuer.url, "AUTH_OIDC_CLIENT_ID": CLIENT_ID,
               "AUTH_API_KEYS": API_KEY, **(overrides or {})}
        app = make_app(env)
        app.add_url_rule("/v1/whoami", "whoami", whoami, methods=["GET", "POST"])
        return app

    return build


def guard_of(app: Flask) -> Guard:
    return app.extensions[AUTH_EXTENSION_KEY]


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def assert_refused(response, message: str, *, credential: str | None = None) -> None:
    """401, WWW-Authenticate: Bearer, the OpenAI envelope with `message`, the credential not echoed."""
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == {"error": {"message": message, "type": "authentication_error", "code": None}}
    if credential:
        assert credential not in response.get_data(as_text=True)
