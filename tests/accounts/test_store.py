"""Keys in the database (SQLite and PostgreSQL): the secret once, only its hash kept, every change
raising the version the workers poll, spend kept per budget period."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text

from app.accounts.budgets import period_window
from app.accounts.models import UsageRecord
from app.accounts.spend import DatabaseSpend
from app.accounts.store import KeyRecord, KeyRevoked, KeyStore


def ledger_row(key_id: str, cost: float, when: datetime) -> dict:
    return {"time": when, "request_id": "r", "key_id": key_id, "subject": f"vkey:{key_id}", "endpoint": "/v1/x",
            "provider": "openai", "deployment": "openai", "model": "gpt-4o", "alias": None, "prompt_tokens": 1,
            "completion_tokens": 1, "total_tokens": 2, "cost_usd": cost, "priced": True, "status": 200,
            "latency_ms": 1.0, "streamed": False}


def test_the_secret_is_returned_once_and_only_its_sha256_is_stored(database):
    store = KeyStore(database)
    row, secret = store.create({"name": "team-a", "models": ["openai/gpt-4o"], "rpm": 10})
    assert secret.startswith("sk-gw-") and len(secret) >= 40
    with database.engine.connect() as connection:
        stored = connection.execute(text("SELECT * FROM virtual_keys")).mappings().one()
    assert secret not in " ".join(str(value) for value in stored.values())
    assert stored["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert stored["secret_hint"] == f"{secret[:9]}...{secret[-4:]}"
    assert store.get(row.id).name == "team-a"
    assert not hasattr(store.get(row.id), "secret")


def test_every_change_raises_the_version_and_revoked_keys_leave_the_live_set(database):
    store = KeyStore(database)
    start = store.version()
    first, _ = store.create({"name": "a"})
    second, _ = store.create({"name": "b", "models": ["OpenAI/GPT-4o"]})
    assert store.version() == start + 2
    store.update(second.id, {"rpm": 5})
    assert store.version() == start + 3
    version, records, digests = store.active_records()
    assert version == start + 3 and set(records) == {first.id, second.id} and len(digests) == 2
    assert records[second.id].rpm == 5 and records[second.id].models == frozenset({"openai/gpt-4o"})
    store.revoke(first.id)
    store.revoke(first.id)  # revoking twice changes nothing more
    assert store.version() == start + 4
    _, records, _ = store.active_records()
    assert set(records) == {second.id}
    with pytest.raises(KeyRevoked):
        store.update(first.id, {"name": "again"})
    assert store.update("key_missing", {"name": "x"}) is None and store.revoke("key_missing") is None


def test_a_budget_set_later_starts_from_what_the_ledger_already_holds(database):
    now = datetime(2026, 12, 15, 12, tzinfo=UTC)
    store = KeyStore(database, now=lambda: now)
    row, _ = store.create({"name": "late-budget"})
    with database.session() as session:
        session.execute(insert(UsageRecord), [ledger_row(row.id, 0.25, now - timedelta(days=1)),
                                              ledger_row(row.id, 0.50, now - timedelta(days=30))])  # last month
    assert store.spent(row) == pytest.approx(0.25)  # no budget: the month from the ledger
    updated = store.update(row.id, {"budget_usd": 1.0})
    start, _ = period_window("month", now)
    assert DatabaseSpend(database).spent(KeyRecord.of(updated), start) == pytest.approx(0.25)
    updated = store.update(row.id, {"budget_period": "total"})
    assert store.spent(updated) == pytest.approx(0.75)


def test_database_spend_is_shared_and_per_period(database):
    store = KeyStore(database)
    row, _ = store.create({"name": "b", "budget_usd": 1.0, "budget_period": "day"})
    record = KeyRecord.of(row)
    spend = DatabaseSpend(database)
    today, _ = period_window("day", datetime.now(UTC))
    yesterday = today - timedelta(days=1)
    assert spend.add(record, today, 0.4) is None
    spend.add(record, today, 0.35)
    spend.add(record, yesterday, 9.0)
    assert spend.spent(record, today) == pytest.approx(0.75)
    assert DatabaseSpend(database).spent(record, yesterday) == pytest.approx(9.0)
    with database.session() as session:
        assert len(session.execute(select(text("1")).select_from(text("key_spend"))).all()) == 2
