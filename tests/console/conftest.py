"""Fixtures for the console's tests: an app with the console on (accounts on a SQLite file, auth
on, the admin key ADMIN_KEY), and a test client that signs in the way a browser does."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.accounts.database import Database
from app.accounts.feature import EXTENSION_KEY as ACCOUNTS_KEY
from app.accounts.migrate import upgrade
from app.console.gate import EXTENSION_KEY as CONSOLE_KEY
from app.console.gate import Console

ADMIN_KEY = "console-admin-key-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


class Operator:
    """A test client used as a browser would: it reads each form's CSRF token from the page."""

    def __init__(self, client: FlaskClient):
        self.client = client
        self.token = ""

    def get(self, path: str, **kwargs) -> object:
        response = self.client.get(path, **kwargs)
        found = CSRF.search(response.get_data(as_text=True))
        if found:
            self.token = found.group(1)
        return response

    def post(self, path: str, data: dict[str, str] | None = None, **kwargs) -> object:
        return self.client.post(path, data={"csrf_token": self.token, **(data or {})}, **kwargs)

    def sign_in(self, key: str = ADMIN_KEY, **kwargs) -> object:
        self.get("/console/sign-in", **kwargs)
        return self.post("/console/sign-in", {"key": key}, **kwargs)


@pytest.fixture
def console_app(make_app: Callable[..., Flask], tmp_path) -> Iterator[Callable[..., Flask]]:
    built: list[Flask] = []

    def build(overrides: dict[str, str] | None = None) -> Flask:
        env = {"ACCOUNTS_ENABLE": "true", "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}",
               "ADMIN_API_KEY": ADMIN_KEY, "AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "",
               "OPENAI_API_KEY": "sk-provider-secret-1234", **(overrides or {})}
        if env["ACCOUNTS_ENABLE"] == "true":
            db = Database.from_url(env["DATABASE_URL"])
            upgrade(db)
            db.dispose()
        built.append(make_app(env))
        return built[-1]

    yield build
    for app in built:
        accounts = app.extensions.get(ACCOUNTS_KEY)
        if accounts is not None:
            accounts.cache.stop()
            accounts.writer.close()
            accounts.store.database.dispose()


@pytest.fixture
def app(console_app: Callable[..., Flask]) -> Flask:
    return console_app()


@pytest.fixture
def operator(app: Flask) -> Operator:
    return Operator(app.test_client())


@pytest.fixture
def signed_in(operator: Operator) -> Operator:
    assert operator.sign_in().status_code == 302
    return operator


def console_of(app: Flask) -> Console:
    return app.extensions[CONSOLE_KEY]
