"""A request's rate limits in one call to the limit storage: the token window, then the request windows.

    windows = LimitWindows.open(storage, request_items, tokens_item)
    tally = windows.count(key)      # Tally: refused by tokens / by a request window, or counted
    answer = windows.send_count(key); ...; tally = answer()   # the same, its answer waited for later

What one `count` does, atomically on Redis (one Lua script, one round trip), in a dict of the
process on `memory://` (`MemoryLimitWindows`), and step by step on other storages:

1. The subject's token window (RATE_LIMIT_TOKENS_PER_MINUTE), if any, is read. Used up: refused,
   and no request window is touched (a request refused for tokens spends no request budget).
2. Each request window (RATE_LIMIT_DEFAULT), smallest first, gets one more request; the first
   one over its amount refuses (the later ones are not counted), as flask-limiter counted them.
3. The count and the time to live of every window touched come back with the answer, so the
   X-RateLimit-* headers need no further read.

`charge` adds a completion's tokens to the token window once they are known (on Redis: `limits`'
own increment script, through the same RedisScript). In a gevent worker both scripts go out with
the other requests' calls of the moment on one shared connection (app/redis_pipe.py); the charge,
made once the client has its answer, is posted there without waiting for Redis's reply (a later
call of the worker goes out after it, so it sees it; a failure reaches the `failed` callback).

Before, flask-limiter and the token budget made six round trips for this (the token window, one
increment per request window, then a count and a TTL for the headers). The keys and their
expiries are the ones `limits` uses (`LIMITER/<subject>/global/<amount>/<multiples>/<unit>`
under RATE_LIMIT_KEY_PREFIX), so workers of an earlier release on other hosts count in the same
windows during a rolling upgrade, and the limits stay exact across every worker and host.
Redis Cluster (keys of one request in different slots) takes the step-by-step path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from limits import RateLimitItem
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage

from app.limit_storage import RedisScript, plain_redis

SCOPE = "global"  # flask-limiter's scope for application-wide limits, kept in the keys
TOKENS_NAMESPACE = "tokens"

# KEYS: first the blocked check's windows (ARGV[1] of them, usually none), then the token window
# ('' when there is no token limit), then the request windows, smallest first.
# ARGV[1]: how many windows the blocked check reads; then their amounts; then tokens per minute
# (0: none); then per request window: its amount, its expiry in seconds.
# Answers {-2, which (1-based), ms to live} when the blocked check finds a window used up (nothing
# is counted); {-1, tokens used, ms to live} when the tokens are used up; else {count, ms to live,
# ...} for each window counted, stopping after the first over its amount.
COUNT_SCRIPT = """
local checked = tonumber(ARGV[1])
for i = 1, checked do
  if tonumber(redis.call('get', KEYS[i]) or '0') >= tonumber(ARGV[1 + i]) then
    return {-2, i, redis.call('pttl', KEYS[i])}
  end
end
local k, a = checked + 1, checked + 2
local tokens = tonumber(ARGV[a])
if tokens > 0 then
  local used = tonumber(redis.call('get', KEYS[k]) or '0')
  if used >= tokens then
    return {-1, used, redis.call('pttl', KEYS[k])}
  end
end
local answer = {}
for i = 1, #KEYS - k do
  local amount, expiry = tonumber(ARGV[a + 2 * i - 1]), tonumber(ARGV[a + 2 * i])
  local count = redis.call('incrby', KEYS[k + i], 1)
  if count == 1 then
    redis.call('expire', KEYS[k + i], expiry)
  end
  answer[#answer + 1] = count
  answer[#answer + 1] = redis.call('pttl', KEYS[k + i])
  if count > amount then
    break
  end
end
return answer
"""


@dataclass(frozen=True, slots=True)
class Window:
    """One window as counted: its limit, the count after this request, and when it resets (epoch s)."""

    item: RateLimitItem
    count: int
    reset: float

    @property
    def remaining(self) -> int:
        return max(0, self.item.amount - self.count)

    @property
    def over(self) -> bool:
        return self.count > self.item.amount


@dataclass(frozen=True, slots=True)
class Tally:
    """The answer of `LimitWindows.count`: `blocked` is set when a check made in the same call
    found a window used up (which one, 0-based, and when it ends); `tokens` when the token window
    refused; otherwise `shown` is the window for the headers: the one that refused, else the smallest."""

    tokens: Window | None = None
    shown: Window | None = None
    blocked: tuple[int, float] | None = None

    @property
    def refused(self) -> bool:
        return self.tokens is not None or (self.shown is not None and self.shown.over)


@dataclass(frozen=True, slots=True)
class Check:
    """Windows another limit reads (AUTH_FAILURE_LIMIT's, for an address) in the same call as the
    count, before anything is counted: their names in Redis and their amounts. One used up, and
    nothing is counted (`Tally.blocked`)."""

    names: list[str]
    amounts: list[int]


def shown_window(counted: Iterable[Window]) -> Window | None:
    """The window for the headers, taking windows from `counted` (smallest first) only as far as
    the first over its amount, which refuses (the windows after it are not counted); else the smallest."""
    smallest = None
    for window in counted:
        if window.over:
            return window
        if smallest is None:
            smallest = window
    return smallest


class LimitWindows:
    """The request windows (smallest first) and the token window of every subject, in one storage."""

    checks_with_count = False  # RedisLimitWindows: `count` can also read another limit's windows (Check)

    def __init__(self, storage: Storage, items: list[RateLimitItem], tokens: RateLimitItem | None):
        self.storage = storage
        self.items = sorted(items)  # smallest window first, as flask-limiter ordered them
        self.tokens = tokens

    @classmethod
    def open(cls, storage: Storage, items: list[RateLimitItem], tokens: RateLimitItem | None) -> LimitWindows:
        redis_storage = plain_redis(storage)
        if redis_storage is not None:
            return RedisLimitWindows(redis_storage, items, tokens)
        if isinstance(storage, MemoryStorage):
            return MemoryLimitWindows(storage, items, tokens)
        return cls(storage, items, tokens)

    def send_count(self, subject_key: str, check: Check | None = None) -> Callable[[], Tally]:
        """`count` in two steps: sent now, its Tally waited for when the function returned is called
        (on Redis in a gevent worker, where the script goes out on the pipe; elsewhere counted now).
        Either step may raise StorageError."""
        assert check is None or self.checks_with_count
        tally = self.count(subject_key)
        return lambda: tally

    def token_key(self, subject_key: str) -> str:
        assert self.tokens is not None
        return self.tokens.key_for(TOKENS_NAMESPACE, subject_key)

    def count(self, subject_key: str) -> Tally:
        """Check the token window, then count the request in each request window (StorageError if unreachable)."""
        storage = self.storage
        if self.tokens is not None:
            key = self.token_key(subject_key)
            used = storage.get(key)
            if used >= self.tokens.amount:
                return Tally(tokens=Window(self.tokens, used, storage.get_expiry(key)))
        return Tally(shown=shown_window(self._counted(subject_key)))

    def _counted(self, subject_key: str) -> Iterator[Window]:
        storage = self.storage
        for item in self.items:
            key = item.key_for(subject_key, SCOPE)
            yield Window(item, storage.incr(key, item.get_expiry(), 1), storage.get_expiry(key))

    def charge(self, subject_key: str, tokens: int, failed: Callable[[StorageError], None]) -> None:
        """Add a completion's tokens to the subject's token window; `failed` gets the StorageError
        if the storage cannot be reached (on Redis in a gevent worker, possibly after this returns:
        the charge is posted, not waited for)."""
        assert self.tokens is not None
        try:
            self.storage.incr(self.token_key(subject_key), self.tokens.get_expiry(), tokens)
        except StorageError as exc:
            failed(exc)


class RedisLimitWindows(LimitWindows):
    """The same in one Lua script: one round trip, atomic on the server."""

    checks_with_count = True

    def __init__(self, storage: RedisStorage, items: list[RateLimitItem], tokens: RateLimitItem | None):
        super().__init__(storage, items, tokens)
        # each window's key around the subject, as `RateLimitItem.key_for(subject, SCOPE)` writes it,
        # under RATE_LIMIT_KEY_PREFIX as the storage puts it (the scripts get the keys `prefixed`)
        self._key_parts = [name_parts(storage, item, "", SCOPE) for item in self.items]
        self._token_parts = name_parts(storage, tokens, TOKENS_NAMESPACE, "") if tokens else None
        self.script = RedisScript(storage, COUNT_SCRIPT)
        self.charge_script = RedisScript(storage, storage.SCRIPT_INCR_EXPIRE)  # limits' own increment
        self._args = ["0", str(tokens.amount if tokens else 0)]  # no other limit's windows to check
        for item in self.items:
            self._args += [str(item.amount), str(item.get_expiry())]

    def _token_name(self, subject_key: str) -> str:
        """`token_key` under RATE_LIMIT_KEY_PREFIX: the name in Redis."""
        assert self._token_parts is not None
        head, tail = self._token_parts
        return head + subject_key + tail

    def count(self, subject_key: str, check: Check | None = None) -> Tally:
        return self.send_count(subject_key, check)()

    def send_count(self, subject_key: str, check: Check | None = None) -> Callable[[], Tally]:
        token_key = self._token_name(subject_key) if self.tokens else ""
        if check is None:
            keys, args = [token_key], self._args
        else:
            keys, args = [*check.names, token_key], [len(check.names), *check.amounts, *self._args[1:]]
        keys += [head + subject_key + tail for head, tail in self._key_parts]
        answer = self.script.send(keys, args, prefixed=True)
        return lambda: self._tally(answer())

    def _tally(self, answer: list) -> Tally:
        now = time.time()
        if answer[0] == -2:
            return Tally(blocked=(int(answer[1]) - 1, now + max(int(answer[2]), 0) / 1000))
        if answer[0] == -1:
            return Tally(tokens=Window(self.tokens, int(answer[1]), now + max(int(answer[2]), 0) / 1000))
        return Tally(shown=shown_window(Window(item, int(count), now + max(int(ttl_ms), 0) / 1000)
                                        for item, count, ttl_ms in zip(self.items, answer[0::2], answer[1::2],
                                                                       strict=False)))

    def charge(self, subject_key: str, tokens: int, failed: Callable[[StorageError], None]) -> None:
        assert self.tokens is not None
        self.charge_script.post([self._token_name(subject_key)], [self.tokens.get_expiry(), tokens], failed,
                                prefixed=True)


def name_parts(storage: RedisStorage, item: RateLimitItem, before: str, after: str) -> tuple[str, str]:
    """What the storage's name for `item.key_for(before, subject, after)` (an empty one left out)
    puts before and after the subject: `<prefix>:<namespace>/[before/]` and
    `[/after]/<amount>/<multiples>/<granularity>`."""
    marker = "\x00subject\x00"
    key = storage.prefixed_key(item.key_for(*[part for part in (before, marker, after) if part]))
    head, _, tail = key.partition(marker)
    return head, tail


TOKENS = -1  # MemoryLimitWindows: the token window's place in a key


class MemoryLimitWindows(LimitWindows):
    """`memory://`: the same fixed windows in a dict of this process, {(subject, window): [count,
    ends at]} (window: the request window's index, or TOKENS for the token window).

    `limits`' MemoryStorage takes a lock per key and, on each increment, checks (and every 10 ms
    restarts) a timer thread that purges expired keys; under gevent each of those is a greenlet
    switch. Here a window that has ended is replaced when it is next counted, and ended windows
    are swept out at most every SWEEP_INTERVAL seconds. `clock` is injectable (tests)."""

    SWEEP_INTERVAL = 10.0

    def __init__(self, storage: Storage, items: list[RateLimitItem], tokens: RateLimitItem | None,
                 clock: Callable[[], float] = time.time):
        super().__init__(storage, items, tokens)
        self.clock = clock
        self.windows: dict[tuple[str, int], list] = {}
        self._lock = threading.Lock()  # a counter is read, then written (threads outside gevent)
        self._next_sweep = clock() + self.SWEEP_INTERVAL
        self._request_windows = [(n, item, item.get_expiry()) for n, item in enumerate(self.items)]

    def count(self, subject_key: str) -> Tally:
        now = self.clock()
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            if self.tokens is not None:
                used = self.windows.get((subject_key, TOKENS))
                if used is not None and used[1] > now and used[0] >= self.tokens.amount:
                    return Tally(tokens=Window(self.tokens, used[0], used[1]))
            return Tally(shown=shown_window(self._counted_at(subject_key, now)))

    def _counted_at(self, subject_key: str, now: float) -> Iterator[Window]:
        for n, item, expiry in self._request_windows:
            window = self._current((subject_key, n), now, expiry)
            window[0] += 1
            yield Window(item, window[0], window[1])

    def charge(self, subject_key: str, tokens: int, failed: Callable[[StorageError], None]) -> None:
        assert self.tokens is not None
        with self._lock:
            self._current((subject_key, TOKENS), self.clock(), self.tokens.get_expiry())[0] += tokens

    def _current(self, key: tuple[str, int], now: float, expiry: int) -> list:
        """The window `key` is counted in now: the running one, or a new one if it has ended."""
        window = self.windows.get(key)
        if window is None or window[1] <= now:
            window = self.windows[key] = [0, now + expiry]
        return window

    def _sweep(self, now: float) -> None:
        for key in [key for key, (_, ends) in self.windows.items() if ends <= now]:
            del self.windows[key]
        self._next_sweep = now + self.SWEEP_INTERVAL
