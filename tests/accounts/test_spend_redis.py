"""The budget counter in Redis: shared like the rate limits, seeded from the database's lasting record."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.accounts.budgets import period_window
from app.accounts.spend import DatabaseSpend, spend_counter
from app.accounts.store import KeyRecord, KeyStore


def test_redis_counts_spend_for_every_worker_and_is_seeded_from_the_database(database, shared_redis):
    store = KeyStore(database)
    row, _ = store.create({"name": "r", "budget_usd": 5.0})
    record = KeyRecord.of(row)
    start, _ = period_window("month", datetime.now(UTC))
    DatabaseSpend(database).add(record, start, 1.25)  # what earlier workers stored

    worker_a = spend_counter(shared_redis.url, shared_redis.prefix, database)
    worker_b = spend_counter(shared_redis.url, shared_redis.prefix, database)
    assert type(worker_a).__name__ == "RedisSpend"
    assert worker_a.spent(record, start) == pytest.approx(1.25)  # seeded from the database
    delta = worker_b.add(record, start, 0.5)
    assert delta is not None and delta.usd == 0.5  # the database's share, for the ledger writer
    assert worker_a.spent(record, start) == pytest.approx(1.75)  # seen by the other worker at once
    assert type(spend_counter("memory://", "p", database)).__name__ == "DatabaseSpend"
