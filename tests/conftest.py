"""Shared fixtures: the app and its test client, a live gunicorn gateway, fake providers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from tests.support.fake_provider import FakeProvider
from tests.support.live_gateway import ROOT, GatewayLauncher, gateway_environ


@pytest.fixture
def make_app(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Callable[..., Flask]:
    """Build an app from `overrides` alone: the test process's own gateway settings and .env are ignored."""
    clean = gateway_environ()
    for key in list(os.environ):
        if key not in clean:
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env

    def build(overrides: dict[str, str] | None = None) -> Flask:
        app = create_app(overrides or {})
        app.config["TESTING"] = True
        return app

    return build


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def live_gateway(tmp_path) -> Iterator[GatewayLauncher]:
    launcher = GatewayLauncher(tmp_path)
    yield launcher
    launcher.stop_all()


@pytest.fixture(scope="module")
def module_live_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayLauncher]:
    """Like `live_gateway`, for gateways shared by a module's tests (a gunicorn start costs ~1 s):
    start one in a module-scoped fixture and reset per-test state (e.g. `module_fake_provider`)."""
    launcher = GatewayLauncher(tmp_path_factory.mktemp("gateway"))
    yield launcher
    launcher.stop_all()


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def module_fake_provider() -> Iterator[FakeProvider]:
    """One fake provider for a module; call `.reset()` in each test (or a fixture) before use."""
    fake = FakeProvider().start()
    yield fake
    fake.stop()


@pytest.fixture
def make_fake_provider() -> Iterator[Callable[[], FakeProvider]]:
    """For tests that need several fake providers."""
    fakes: list[FakeProvider] = []

    def make() -> FakeProvider:
        fakes.append(FakeProvider().start())
        return fakes[-1]

    yield make
    for fake in fakes:
        fake.stop()


__all__ = ["ROOT"]
