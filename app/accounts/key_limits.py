"""A virtual key's own limits, checked before its request and charged when the request ends.

    limits.check(record)                       budget, then tokens per minute, then requests per minute
    limits.charge(record, tokens, usd)         -> the spend delta the ledger writer must still store

`rpm` and `tpm` are fixed one-minute windows of the `limits` library (as the gateway's other
limits) in the storage RATE_LIMIT_STORAGE_URI names, under RATE_LIMIT_KEY_PREFIX: exact across
every worker and host on Redis, per worker process on `memory://`. The budget is checked against
the shared spend counter (spend.py). Refusals are 429 `rate_limit_error` with the codes
`rate_limit_exceeded`, `token_limit_exceeded` and `budget_exceeded`, and a `Retry-After`.

On one Redis server (RATE_LIMIT_STORAGE_URI redis://, where the spend is counted too) the check is
one Lua script and the charge another: one round trip each, atomic, with the same keys, expiries
and answers as the step-by-step path (`KeyLimits.open` picks `RedisKeyLimits`). Step by step, a
key with all three costs three calls before its request and two after it.

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
from limits.storage import RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy.exc import SQLAlchemyError

from app.accounts.budgets import iso, period_window
from app.accounts.spend import RedisSpend, SpendCounter, SpendDelta
from app.accounts.store import KeyRecord
from app.errors import RateLimited, ServiceUnavailable
from app.limit_storage import RedisScript, StorageBreaker, plain_redis

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

    @classmethod
    def open(cls, storage: Storage, spend: SpendCounter, **options) -> KeyLimits:
        """RedisKeyLimits when the limits and the spend are counted in one Redis server, else step by step."""
        redis_storage = plain_redis(storage)
        if redis_storage is not None and isinstance(spend, RedisSpend):
            return RedisKeyLimits(redis_storage, spend, **options)
        return cls(storage, spend, **options)

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
            self._count(record)
        except STORE_ERRORS as exc:
            self.breaker.trip()
            self._unchecked(record, exc)

    def _count(self, record: KeyRecord) -> None:
        """Step by step: the budget, the token window, then one more request in the request window."""
        if record.budget_usd is not None:
            self._check_budget(record)
        if record.tpm is not None:
            self._check_tokens(record)
        if record.rpm is not None:
            self._hit_requests(record)

    def _unchecked(self, record: KeyRecord, exc: BaseException | None) -> None:
        """The storage failed (`exc`) or is being skipped: 503, or served and logged (RATE_LIMIT_FAIL_OPEN)."""
        if not self.fail_open:
            raise ServiceUnavailable("The key's limits cannot be checked right now; try again shortly.",
                                     code="rate_limit_storage_unavailable")
        if exc is not None:
            self.alarm.ring(f"key limits not checked for {record.id} (RATE_LIMIT_FAIL_OPEN=true: served)", exc)

    def _check_budget(self, record: KeyRecord) -> None:
        start, _ = period_window(record.budget_period, self.now())
        spent = self.spend.spent(record, start)
        if spent >= record.budget_usd:
            raise self._budget_refusal(record, spent)

    def _budget_refusal(self, record: KeyRecord, spent: float) -> RateLimited:
        _, reset = period_window(record.budget_period, self.now())
        headers = {}
        if reset is None:
            when = "it does not reset (budget_period is total): raise budget_usd to continue"
        else:
            when = f"it resets at {iso(reset)}"
            headers["Retry-After"] = str(max(1, math.ceil((reset - self.now()).total_seconds())))
        return RateLimited(f"Budget exceeded: key {record.name!r} has spent ${spent:.6f} of its "
                           f"${record.budget_usd:.2f} {_period_name(record.budget_period)} budget; {when}.",
                           code="budget_exceeded", headers=headers)

    def _check_tokens(self, record: KeyRecord) -> None:
        item = self._per_minute(record.tpm)
        if self.counter.test(item, self.TOKENS, record.id):
            return
        reset, remaining = self.counter.get_window_stats(item, self.TOKENS, record.id)
        raise self._token_refusal(record, reset, remaining)

    @staticmethod
    def _token_refusal(record: KeyRecord, reset: float, remaining: int) -> RateLimited:
        retry = max(1, math.ceil(reset - time.time()))
        return RateLimited(f"Token limit exceeded: key {record.name!r} allows {record.tpm} tokens per minute; "
                           f"retry in {retry} s.", code="token_limit_exceeded",
                           headers={"Retry-After": str(retry), "X-RateLimit-Limit-Tokens": str(record.tpm),
                                    "X-RateLimit-Remaining-Tokens": str(remaining)})

    def _hit_requests(self, record: KeyRecord) -> None:
        item = self._per_minute(record.rpm)
        if self.counter.hit(item, self.REQUESTS, record.id):
            return
        reset, _ = self.counter.get_window_stats(item, self.REQUESTS, record.id)
        raise self._request_refusal(record, reset)

    @staticmethod
    def _request_refusal(record: KeyRecord, reset: float) -> RateLimited:
        retry = max(1, math.ceil(reset - time.time()))
        return RateLimited(f"Rate limit exceeded: key {record.name!r} allows {record.rpm} requests per minute; "
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


# KEYS: the spend counter, the token window, the request window ('' for what the key does not limit).
# ARGV: budget in USD ('' for none), tpm (0: none), rpm (0: none), the request window's expiry (s).
# Answers {0} when served; {-3} when the spend counter is missing (seed it from the database, then
# check again without the budget); {-2, spent}, {-1, tokens used, ms to live} or {-4, requests
# counted, ms to live} when refused. The order and the rules are the step-by-step path's: a request
# refused by the budget or by tokens is not counted against rpm.
CHECK_SCRIPT = """
if ARGV[1] ~= '' then
  local spent = redis.call('get', KEYS[1])
  if not spent then
    return {-3}
  end
  if tonumber(spent) >= tonumber(ARGV[1]) then
    return {-2, spent}
  end
end
local tpm = tonumber(ARGV[2])
if tpm > 0 then
  local used = tonumber(redis.call('get', KEYS[2]) or '0')
  if used >= tpm then
    return {-1, used, redis.call('pttl', KEYS[2])}
  end
end
local rpm = tonumber(ARGV[3])
if rpm > 0 then
  local count = redis.call('incrby', KEYS[3], 1)
  if count == 1 then
    redis.call('expire', KEYS[3], ARGV[4])
  end
  if count > rpm then
    return {-4, count, redis.call('pttl', KEYS[3])}
  end
end
return {0}
"""
NOT_SEEDED, OVER_BUDGET, OUT_OF_TOKENS, OUT_OF_REQUESTS = -3, -2, -1, -4

# KEYS: the token window, the spend counter ('' for none). ARGV: tokens (0: none), the token window's
# expiry (s), USD ('' for none). The spend is raised only where the counter exists (as RedisSpend.add).
CHARGE_SCRIPT = """
local tokens = tonumber(ARGV[1])
if tokens > 0 then
  local used = redis.call('incrby', KEYS[1], tokens)
  if used == tokens then
    redis.call('expire', KEYS[1], ARGV[2])
  end
end
if ARGV[3] ~= '' and redis.call('exists', KEYS[2]) == 1 then
  redis.call('incrbyfloat', KEYS[2], ARGV[3])
end
return 1
"""


class RedisKeyLimits(KeyLimits):
    """KeyLimits in one round trip before the request and one after it (see the module docstring)."""

    def __init__(self, storage: RedisStorage, spend: RedisSpend, **options):
        super().__init__(storage, spend, **options)
        self.redis_spend = spend
        self.check_script = RedisScript(storage, CHECK_SCRIPT)
        self.charge_script = RedisScript(storage, CHARGE_SCRIPT)

    def _count(self, record: KeyRecord) -> None:
        answer = self._run_check(record, with_budget=record.budget_usd is not None)
        if answer[0] == NOT_SEEDED:
            self._check_budget(record)  # RedisSpend.spent seeds the counter from the database
            answer = self._run_check(record, with_budget=False)
        status = answer[0]
        if status == OVER_BUDGET:
            raise self._budget_refusal(record, float(answer[1]))
        if status in (OUT_OF_TOKENS, OUT_OF_REQUESTS):
            reset = time.time() + max(int(answer[2]), 0) / 1000
            if status == OUT_OF_TOKENS:
                raise self._token_refusal(record, reset, max(0, record.tpm - int(answer[1])))
            raise self._request_refusal(record, reset)

    def _run_check(self, record: KeyRecord, *, with_budget: bool) -> list:
        keys = ["", "", ""]
        args: list = ["", record.tpm or 0, record.rpm or 0, 0]
        if with_budget:
            start, _ = period_window(record.budget_period, self.now())
            keys[0], args[0] = self.redis_spend.name(record, start), repr(float(record.budget_usd))
        if record.tpm is not None:
            keys[1] = self.storage_key(self._per_minute(record.tpm), self.TOKENS, record)
        if record.rpm is not None:
            item = self._per_minute(record.rpm)
            keys[2], args[3] = self.storage_key(item, self.REQUESTS, record), item.get_expiry()
        return self.check_script(keys, args, prefixed=True)

    def storage_key(self, item: RateLimitItemPerMinute, namespace: str, record: KeyRecord) -> str:
        """The window's key as the step-by-step path (FixedWindowRateLimiter) names it in Redis."""
        return self.check_script.storage.prefixed_key(item.key_for(namespace, record.id))

    def charge(self, record: KeyRecord, tokens: int, usd: float, at: datetime) -> SpendDelta | None:
        count_tokens = record.tpm is not None and tokens > 0
        delta = None
        if record.budget_usd is not None and usd > 0:
            delta = SpendDelta(record.id, record.budget_period, period_window(record.budget_period, at)[0], usd)
        if self.breaker.open or (not count_tokens and delta is None):
            return delta  # skipped: the spend reaches the database with the ledger row
        keys, args = ["", ""], [0, 0, ""]
        if count_tokens:
            item = self._per_minute(record.tpm)
            keys[0], args[0], args[1] = self.storage_key(item, self.TOKENS, record), tokens, item.get_expiry()
        if delta is not None:
            keys[1], args[2] = self.redis_spend.name(record, delta.period_start), repr(usd)
        try:
            self.charge_script(keys, args, prefixed=True)
        except STORE_ERRORS as exc:
            self.breaker.trip()
            self.alarm.ring(f"{tokens} tokens and ${usd:.6f} of key {record.id} not counted now "
                            "(the spend is kept for the database)", exc)
        return delta


def _period_name(period: str) -> str:
    return {"day": "daily", "month": "monthly", "total": "total"}.get(period, period)
