"""Virtual keys, budgets, prices and the usage ledger, in a SQL database (ACCOUNTS_ENABLE=true).

    database.py    the engine: SQLite (WAL) or PostgreSQL through pg8000 (gevent-friendly)
    models.py      the tables; migrations/ (Alembic) creates them, migrate.py runs it
    store.py       keys in the database: create (secret shown once, SHA-256 kept), change, revoke
    key_cache.py   each worker's copy of the live keys, refreshed within 2 s of any change
    key_limits.py  a key's rpm/tpm (limits library, RATE_LIMIT_STORAGE_URI) and budget checks
    spend.py       spend per key and period, shared by all workers (Redis, else the database)
    budgets.py     budget periods (day, month, total) in UTC
    prices.py      USD per million tokens per model, shipped and overridable
    tally.py       the usage of the request being served (from `completion_usage` signals)
    recorder.py    WSGI middleware: settles each request as its response closes
    ledger.py      the usage ledger's batch writer (bounded buffer, flushed at SIGTERM)
    reports.py     usage sums for GET /admin/usage and `flask keys usage`
    model_access.py  a key's `models`, checked wherever ALLOWED_MODELS is
    feature.py     the per-request hooks, as init_app wires them

The admin API is app/api/admin.py, the CLI app/cli.py, the credential checks app/auth/.
Importing this package is cheap (gunicorn's master must not import SQLAlchemy before the
workers' gevent patching): `init_app` imports the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from app.accounts.feature import Accounts
    from app.config import Settings

log = logging.getLogger("gateway.accounts")


def init_app(app: Flask, settings: Settings, price_overrides: Mapping[str, Any] | None = None) -> Accounts | None:
    """Wire the feature into `app`: after auth's guard (its hook must run first), before the access
    log middleware (which reads what settling sets). Nothing when ACCOUNTS_ENABLE=false."""
    if not settings.accounts_enable:
        return None
    from app import lifecycle, signals
    from app.accounts.database import Database
    from app.accounts.feature import EXTENSION_KEY, Accounts
    from app.accounts.key_cache import KeyCache
    from app.accounts.key_limits import KeyLimits
    from app.accounts.ledger import LedgerWriter
    from app.accounts.model_access import KeyModelPolicy
    from app.accounts.prices import PriceTable
    from app.accounts.recorder import UsageRecorder
    from app.accounts.spend import spend_counter
    from app.accounts.store import KeyStore
    from app.auth.admin_key import AdminKey
    from app.auth.guard import AUTH_EXTENSION_KEY
    from app.auth.virtual_keys import VirtualKeyCredentials
    from app.extensions import EXTENSION_KEY as GATEWAY_KEY
    from app.limit_storage import open_storage, storage_breaker
    from app.logs import Redactor

    database = Database.from_url(settings.database_url)
    store = KeyStore(database)
    cache = KeyCache(store)
    limits = KeyLimits.open(open_storage(settings.rate_limit_storage_uri, settings.rate_limit_key_prefix),
                            spend_counter(settings.rate_limit_storage_uri, settings.rate_limit_key_prefix, database),
                            fail_open=settings.rate_limit_fail_open,
                            breaker=storage_breaker(app, float(settings.rate_limit_storage_backoff)))
    writer = LedgerWriter(database, interval=float(settings.usage_flush_interval),
                          max_rows=settings.usage_buffer_rows)
    credentials = VirtualKeyCredentials(cache)
    guard = app.extensions.get(AUTH_EXTENSION_KEY)
    admin_key = AdminKey(settings.admin_api_key, guard.authenticate if guard is not None else credentials.in_headers)
    accounts = Accounts(app, store, cache, limits, PriceTable(price_overrides), writer, credentials, admin_key,
                        auth_enabled=settings.auth_enable, redact=Redactor(settings.secret_values()))
    app.extensions[EXTENSION_KEY] = accounts

    if guard is not None:
        guard.add_key_lookup(accounts.credentials)
    else:
        log.warning("ACCOUNTS_ENABLE=true but AUTH_ENABLE=false: virtual keys are not asked for, so their models, "
                    "limits and budgets apply to nobody; usage is still recorded. Set AUTH_ENABLE=true.")
    gateway = app.extensions[GATEWAY_KEY]
    gateway.model_policy = KeyModelPolicy(gateway.model_policy)
    app.before_request(accounts.enforce)
    signals.completion_usage.connect(accounts.on_usage, sender=app, weak=False)
    app.wsgi_app = UsageRecorder(app.wsgi_app, accounts.settle)
    lifecycle.on_exit(app, writer.close)  # SIGTERM, HUP: the buffered usage rows are written
    log.info("accounts on: %s database, spend counted in %s; admin API %s", database.dialect,
             type(limits.spend).__name__.removesuffix("Spend").lower(),
             "on" if settings.admin_api_key else "off (ADMIN_API_KEY is empty)")
    return accounts
