"""The usage ledger's batch writer (SQLite and PostgreSQL): rows written in batches with their
spend, kept in a bounded buffer while the database fails, and everything written at close."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.accounts.database import Database
from app.accounts.ledger import LedgerWriter
from app.accounts.models import KeySpend, UsageRecord
from app.accounts.spend import SpendDelta
from tests.support.live_gateway import free_port

NOW = datetime(2026, 12, 2, 10, tzinfo=UTC)
MONTH = datetime(2026, 12, 1, tzinfo=UTC)


def row(n: int, key_id: str | None = "key_a", cost: float = 0.001) -> dict:
    return {"time": NOW, "request_id": f"req-{n}", "key_id": key_id, "subject": None, "endpoint": "/v1/chat/completions",
            "provider": "openai", "deployment": "openai", "model": "gpt-4o", "alias": None, "prompt_tokens": 10,
            "completion_tokens": 5, "total_tokens": 15, "cost_usd": cost, "priced": True, "status": 200,
            "latency_ms": 12.5, "streamed": n % 2 == 0}


def count(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(UsageRecord))


def test_rows_and_their_spend_are_written_in_batches(database):
    writer = LedgerWriter(database, interval=3600, batch_rows=4)
    for n in range(10):
        writer.add(row(n), [SpendDelta("key_a", "month", MONTH, 0.001)])
    assert count(database) == 0  # nothing is written on the caller's path
    assert writer.write_batch() == 4 and count(database) == 4
    writer.flush()
    assert count(database) == 10 and len(writer) == 0
    with database.session() as session:
        spend = session.scalars(select(KeySpend)).one()
        streamed = session.scalar(select(func.count()).where(UsageRecord.streamed.is_(True)))
    assert (spend.key_id, spend.period, spend.period_start) == ("key_a", "month", MONTH)
    assert spend.spent_usd == pytest.approx(0.01)
    assert streamed == 5
    writer.close()


def test_a_failing_database_keeps_rows_in_a_bounded_buffer_until_it_answers(database):
    down = Database.from_url(f"postgresql+pg8000://postgres@127.0.0.1:{free_port()}/none")
    writer = LedgerWriter(down, interval=3600, max_rows=100, batch_rows=30)
    for n in range(130):
        writer.add(row(n))
    assert len(writer) == 100 and writer.dropped == 30  # the oldest 30 went
    writer.tick()  # what the thread does each interval: fails, logs, keeps the rows
    assert writer.failures == 1 and len(writer) == 100
    writer.database = database  # the database answers again
    writer.tick()
    assert len(writer) == 0 and count(database) == 100
    with database.session() as session:
        first = session.scalar(select(UsageRecord.request_id).order_by(UsageRecord.id).limit(1))
    assert first == "req-30"  # order kept, oldest dropped
    writer.close()


def test_close_writes_what_is_left(database):
    writer = LedgerWriter(database, interval=3600)
    for n in range(3):
        writer.add(row(n, key_id=None))
    writer.close()  # the worker's exit (app.lifecycle, gunicorn's worker_exit hook)
    assert count(database) == 3
    assert len(writer) == 0


def test_the_background_thread_writes_within_its_interval(database):
    writer = LedgerWriter(database, interval=0.05)
    writer.add(row(1))
    deadline = time.monotonic() + 10
    while count(database) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert count(database) == 1
    writer.close()
