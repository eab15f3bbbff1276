"""Each key's spend in its budget period, shared by every worker and host.

    counter.spent(record, start)      what the key spent since `start` (the period's start)
    counter.add(record, start, usd)   charge a finished call; returns the delta the database still
                                      needs (the ledger writer applies it with the call's row), or None

Two counters; `spend_counter(...)` picks one:

- `RedisSpend`, when RATE_LIMIT_STORAGE_URI is Redis: an INCRBYFLOAT per charge and one GET per
  check of a key with a budget, in the same Redis as the rate limits. The database's `key_spend`
  row stays the lasting record (written in the ledger writer's batches); a counter Redis lost is
  seeded from it again (SET NX), missing at most the charges still waiting in a writer's buffer.
- `DatabaseSpend` otherwise (`memory://` limits count per process, which a budget must not): the
  `key_spend` row itself, read on each request of a key with a budget and raised when a call ends.

Either way the spend is common to all workers and hosts, and a call is charged as soon as its
usage is known, before the client has the whole answer (see Accounts.on_usage): requests that come
one after another overshoot a budget by at most the request that crossed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.accounts.budgets import period_window
from app.accounts.database import Database
from app.accounts.models import KeySpend
from app.accounts.store import KeyRecord

REDIS_SCHEMES = ("redis://", "rediss://")
# Redis keys outlive their period by a day; `total` counters are re-seeded after a week unused.
_TTL_MARGIN_S = 86_400
_TOTAL_TTL_S = 7 * 86_400
_INCR_IF_PRESENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBYFLOAT', KEYS[1], ARGV[1]) end
return false
"""


@dataclass(frozen=True, slots=True)
class SpendDelta:
    key_id: str
    period: str
    period_start: datetime
    usd: float


class SpendCounter(Protocol):
    def spent(self, record: KeyRecord, start: datetime) -> float: ...

    def add(self, record: KeyRecord, start: datetime, usd: float) -> SpendDelta | None: ...


def add_to_row(session, delta: SpendDelta) -> None:
    """Raise the key_spend row by `delta` (insert it the first time), in the caller's transaction."""
    where = (KeySpend.key_id == delta.key_id, KeySpend.period == delta.period,
             KeySpend.period_start == delta.period_start)
    done = session.execute(update(KeySpend).where(*where).values(spent_usd=KeySpend.spent_usd + delta.usd))
    if done.rowcount == 0:
        session.add(KeySpend(key_id=delta.key_id, period=delta.period, period_start=delta.period_start,
                             spent_usd=delta.usd))
        session.flush()


class DatabaseSpend:
    def __init__(self, database: Database):
        self.database = database

    def spent(self, record: KeyRecord, start: datetime) -> float:
        with self.database.session() as session:
            return session.scalar(select(KeySpend.spent_usd).where(
                KeySpend.key_id == record.id, KeySpend.period == record.budget_period,
                KeySpend.period_start == start)) or 0.0

    def add(self, record: KeyRecord, start: datetime, usd: float) -> SpendDelta | None:
        delta = SpendDelta(record.id, record.budget_period, start, usd)
        try:
            with self.database.session() as session:
                add_to_row(session, delta)
        except IntegrityError:  # another worker inserted the row first: it exists now
            with self.database.session() as session:
                add_to_row(session, delta)
        return None


class RedisSpend:
    def __init__(self, client, prefix: str, database: DatabaseSpend):
        self.client = client
        self.prefix = prefix
        self.database = database
        self._incr = client.register_script(_INCR_IF_PRESENT)

    def name(self, record: KeyRecord, start: datetime) -> str:
        """The counter's Redis key (with RATE_LIMIT_KEY_PREFIX): one per key and budget period."""
        return f"{self.prefix}:spend:{record.id}:{record.budget_period}:{int(start.timestamp())}"

    def _ttl(self, record: KeyRecord, start: datetime) -> int:
        if record.budget_period == "total":
            return _TOTAL_TTL_S
        _, reset = period_window(record.budget_period, start)
        assert reset is not None
        return max(60, int((reset - datetime.now(UTC)).total_seconds()) + _TTL_MARGIN_S)

    def spent(self, record: KeyRecord, start: datetime) -> float:
        name = self.name(record, start)
        value = self.client.get(name)
        if value is None:  # first use this period, or Redis lost it: seed from the database
            seeded = self.database.spent(record, start)
            self.client.set(name, repr(seeded), nx=True, ex=self._ttl(record, start))
            value = self.client.get(name)
        return float(value or 0.0)

    def add(self, record: KeyRecord, start: datetime, usd: float) -> SpendDelta | None:
        self._incr(keys=[self.name(record, start)], args=[repr(usd)])
        return SpendDelta(record.id, record.budget_period, start, usd)


def spend_counter(storage_uri: str, prefix: str, database: Database) -> SpendCounter:
    in_database = DatabaseSpend(database)
    if storage_uri.startswith(REDIS_SCHEMES):
        import redis

        client = redis.Redis.from_url(storage_uri, socket_connect_timeout=2, socket_timeout=2)
        return RedisSpend(client, prefix, in_database)
    return in_database
