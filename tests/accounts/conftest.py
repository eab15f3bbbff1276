"""Fixtures for the accounts tests: a fresh database per test, SQLite and PostgreSQL alike.

`database_url` is parametrized over both: a SQLite file in the test's tmp_path, and a new
database on the PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres), created for the test
and dropped after it. A missing PostgreSQL fails the test, never skips it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pg8000.native
import pytest
from flask import Flask

from app.accounts.database import Database
from app.accounts.feature import EXTENSION_KEY
from app.accounts.migrate import upgrade
from tests.ratelimit.conftest import RedisSpace, shared_redis  # noqa: F401 - the shared Redis fixture

POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
ADMIN_KEY = "admin-key-for-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def postgres_admin() -> pg8000.native.Connection:
    try:
        return pg8000.native.Connection(database="postgres", timeout=10, **POSTGRES)
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the same failure here
        pytest.fail(f"these tests need PostgreSQL on 127.0.0.1:5432 with trust auth for user postgres ({exc})")


class PostgresDatabases:
    def __init__(self) -> None:
        self.created: list[str] = []

    def create(self) -> str:
        name = f"gateway_test_{uuid.uuid4().hex[:16]}"
        connection = postgres_admin()
        try:
            connection.run(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        self.created.append(name)
        return f"postgresql+pg8000://postgres@127.0.0.1:5432/{name}"

    def drop_all(self) -> None:
        if not self.created:
            return
        connection = postgres_admin()
        try:
            for name in self.created:
                connection.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            connection.close()


@pytest.fixture
def postgres_databases() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, postgres_databases: PostgresDatabases) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    return postgres_databases.create()


@pytest.fixture
def postgres_url(postgres_databases: PostgresDatabases) -> str:
    return postgres_databases.create()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database.from_url(database_url)
    upgrade(db)
    yield db
    db.dispose()


@pytest.fixture
def accounts_app(make_app: Callable[..., Flask], database_url: str) -> Iterator[Callable[..., Flask]]:
    """An app with accounts on over `database_url` (migrated), the admin key ADMIN_KEY and auth on."""
    built: list[Flask] = []

    def build(overrides: dict[str, str] | None = None) -> Flask:
        env = {"ACCOUNTS_ENABLE": "true", "DATABASE_URL": database_url, "ADMIN_API_KEY": ADMIN_KEY,
               "AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "", **(overrides or {})}
        db = Database.from_url(env["DATABASE_URL"])
        upgrade(db)
        db.dispose()
        built.append(make_app(env))
        return built[-1]

    yield build
    for app in built:
        accounts = app.extensions[EXTENSION_KEY]
        accounts.cache.stop()
        accounts.writer.close()
        accounts.store.database.dispose()
