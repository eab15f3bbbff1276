"""A virtual key's own limits, checked before its request and charged when the request ends.

    limits.check(record)                       budget, then tokens per minute, then requests per minute
    limits.charge(record, tokens, usd)         -> the spend delta the ledger writer must still store

`rpm` and `tpm` are fixed one-minute windows of the `limits` library (as the gateway's other
limits) in the storage RATE_LIMIT_STORAGE_URI names, under RATE_LIMIT_KEY_PREFIX: exact across
every worker and host on Redis, per worker process on `memory://`. The budget is checked against
the shared spend counter (spend.py). Refusals are 429 `rate_limit_error` with the codes
`rate_limit_exceeded`, `token_limit_exceeded` and `budget_exceeded`, and a `Retry-After`.

When the storage cannot be reached, RATE_LIMIT_FAIL_OPEN decides, as for the other limits: serve
and log an error (at most every 10 s per worker), or answer 503. After a failure the app's storage
breaker (app/limit_storage.py) skips the storage for RATE_LIMIT_STORAGE_BACKOFF, deciding at once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy.exc import SQLAlchemyError

from app.accounts.budgets import iso, period_window
from app.accounts.spend import SpendCounter, SpendDelta
from app.accounts.store import KeyRecord
from app.errors import RateLimited, ServiceUnavailable
from app.limit_storage import StorageBreaker

log = logging.getLogger("gateway.accounts")

# What a failing spend counter or limit storage raises.
try:
    from redis.exceptions import RedisError
except ImportError:  # pragma: no cover - redis is a dependency
    RedisError = OSError  # type: ignore[misc,assignment]
STORE_ERRORS = (StorageError, SQLAlchemyError, RedisError, OSError)


class Alarm:
    """An error line at most every `interval` seconds per worker, with the count of the ones held back."""

    def __init__(self, interval: float = 10.0):
        self.interval = interval
        self.last = -math.inf
        self.unlogged = 0

    def ring(self, message: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            self.unlogged += 1
            return
        log.error("%s (%s: %s); %d more such failures since the last line", message, type(exc).__name__,
                  " ".join(str(exc).split())[:200], self.unlogged)
        self.last, self.unlogged = now, 0


class KeyLimits:
    REQUESTS, TOKENS = "vkey-requests", "vkey-tokens"

    def __init__(self, storage: Storage, spend: SpendCounter, *, fail_open: bool,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), breaker: StorageBreaker | None = None):
        self.counter = FixedWindowRateLimiter(storage)
        self.spend = spend
        self.fail_open = fail_open
        self.breaker = breaker or StorageBreaker(0)
        self.now = now
        self.alarm = Alarm()
        self._items: dict[int, RateLimitItemPerMinute] = {}

    def _per_minute(self, amount: int) -> RateLimitItemPerMinute:
        item = self._items.get(amount)
        if item is None:
            item = self._items[amount] = RateLimitItemPerMinute(amount)
        return item

    # -- before the request --------------------------------------------------------------------
    def check(self, record: KeyRecord) -> None:
        if record.budget_usd is None and record.tpm is None and record.rpm is None:
            return
        if self.breaker.open:
            self._unchecked(record, None)
            return
        try:
            if record.budget_usd is not None:
                self._check_budget(record)
            if record.tpm is not None:
                self._check_tokens(record)
            if record.rpm is not None:
                self._hit_requests(record)
        except STORE_ERRORS as exc:
            self.breaker.trip()
            self._unchecked(record, exc)

    def _unchecked(self, record: KeyRecord, exc: BaseException | None) -> None:
        """The storage failed (`exc`) or is being skipped: 503, or served and logged (RATE_LIMIT_FAIL_OPEN)."""
        if not self.fail_open:
            raise ServiceUnavailable("The key's limits cannot be checked right now; try again shortly.",
                                     code="rate_limit_storage_unavailable")
        if exc is not None:
            self.alarm.ring(f"key limits not checked for {record.id} (RATE_LIMIT_FAIL_OPEN=true: served)", exc)

    def _check_budget(self, record: KeyRecord) -> None:
        start, reset = period_window(record.budget_period, self.now())
        spent = self.spend.spent(record, start)
        if spent < record.budget_usd:
            return
        headers = {}
        if reset is None:
            when = "it does not reset (budget_period is total): raise budget_usd to continue"
        else:
            when = f"it resets at {iso(reset)}"
            headers["Retry-After"] = str(max(1, math.ceil((reset - self.now()).total_seconds())))
        raise RateLimited(f"Budget exceeded: key {record.name!r} has spent ${spent:.6f} of its "
                          f"${record.budget_usd:.2f} {_period_name(record.budget_period)} budget; {when}.",
                          code="budget_exceeded", headers=headers)

    def _check_tokens(self, record: KeyRecord) -> None:
        item = self._per_minute(record.tpm)
        if self.counter.test(item, self.TOKENS, record.id):
            return
        reset, remaining = self.counter.get_window_stats(item, self.TOKENS, record.id)
        retry = max(1, math.ceil(reset - time.time()))
        raise RateLimited(f"Token limit exceeded: key {record.name!r} allows {record.tpm} tokens per minute; "
                          f"retry in {retry} s.", code="token_limit_exceeded",
                          headers={"Retry-After": str(retry), "X-RateLimit-Limit-Tokens": str(record.tpm),
                                   "X-RateLimit-Remaining-Tokens": str(remaining)})

    def _hit_requests(self, record: KeyRecord) -> None:
        item = self._per_minute(record.rpm)
        if self.counter.hit(item, self.REQUESTS, record.id):
            return
        reset, _ = self.counter.get_window_stats(item, self.REQUESTS, record.id)
        retry = max(1, math.ceil(reset - time.time()))
        raise RateLimited(f"Rate limit exceeded: key {record.name!r} allows {record.rpm} requests per minute; "
                          f"retry in {retry} s.", code="rate_limit_exceeded",
                          headers={"Retry-After": str(retry), "X-RateLimit-Limit": str(record.rpm),
                                   "X-RateLimit-Remaining": "0"})

    # -- when the request ends -----------------------------------------------------------------
    def charge(self, record: KeyRecord, tokens: int, usd: float, at: datetime) -> SpendDelta | None:
        """Count a finished call's tokens and spend. Never raises: a failure is logged and, for the spend,
        handed back as a delta for the ledger writer to store later."""
        skipped = self.breaker.open
        if record.tpm is not None and tokens > 0 and not skipped:
            try:
                self.counter.hit(self._per_minute(record.tpm), self.TOKENS, record.id, cost=tokens)
            except STORE_ERRORS as exc:
                self.breaker.trip()
                self.alarm.ring(f"{tokens} tokens not counted against key {record.id}", exc)
        if record.budget_usd is None or usd <= 0:
            return None
        start, _ = period_window(record.budget_period, at)
        if skipped:
            return SpendDelta(record.id, record.budget_period, start, usd)
        try:
            return self.spend.add(record, start, usd)
        except STORE_ERRORS as exc:
            self.breaker.trip()
            self.alarm.ring(f"spend of key {record.id} not shared now (kept for the database)", exc)
            return SpendDelta(record.id, record.budget_period, start, usd)


def _period_name(period: str) -> str:
    return {"day": "daily", "month": "monthly", "total": "total"}.get(period, period)
