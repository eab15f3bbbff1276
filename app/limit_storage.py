"""The limit storage (RATE_LIMIT_STORAGE_URI) as every limit uses it, and the breaker in front of it.

    storage = open_storage(uri, prefix)       # a `limits` storage, with timeouts on Redis
    breaker = storage_breaker(app, pause)     # one per app, shared by every feature that counts
    if breaker.open: ...                      # skip the storage: RATE_LIMIT_FAIL_OPEN decides
    breaker.trip()                            # after a storage failure

A Redis that accepts connections and never answers costs each call its socket timeout (2 s), and
a request makes several calls (request limits, token budget, a virtual key's limits, failed
logins): seconds on every request. After a failure the breaker stays open for
RATE_LIMIT_STORAGE_BACKOFF (5 s): the features skip the storage and act as RATE_LIMIT_FAIL_OPEN
says (true: serve without those limits, false: 503 at once). The first request after that tries
the storage again, and either closes the breaker or opens it for another period. Each worker
process has its own breakers (one per app), so a storage that is down costs each worker one
timeout per period.

Users: app/rate_limits.py (request windows and the token budget), app/auth/failures.py,
app/accounts/key_limits.py. `RedisScript` runs their one-round-trip scripts (app/limit_windows.py,
app/accounts/key_limits.py).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from limits.errors import StorageError
from limits.storage import RedisClusterStorage, RedisStorage, Storage, storage_from_string

if TYPE_CHECKING:
    from flask import Flask

    from app.redis_pipe import RedisPipe

EXTENSION_KEY = "gateway.storage_breaker"
# Without timeouts a Redis host that drops packets would hang every request.
REDIS_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 2}
REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://")


def storage_options(uri: str, prefix: str) -> dict:
    """What `limits` is given with RATE_LIMIT_STORAGE_URI."""
    options: dict = {"wrap_exceptions": True, "key_prefix": prefix}
    if uri.startswith(REDIS_SCHEMES):
        options.update(REDIS_OPTIONS)
    return options


def open_storage(uri: str, prefix: str) -> Storage:
    return storage_from_string(uri, **storage_options(uri, prefix))


def plain_redis(storage: Storage) -> RedisStorage | None:
    """The storage if it is one Redis server (where a script may touch any keys), else None."""
    if isinstance(storage, RedisStorage) and not isinstance(storage, RedisClusterStorage):
        return storage
    return None


class RedisScript:
    """A Lua script run on a `limits` Redis storage's server: one round trip (EVALSHA; the script is
    sent again if Redis forgot it). In a gevent worker it goes through the worker's shared pipe with
    the calls of concurrent requests (app/redis_pipe.py), elsewhere through redis-py. Keys are given
    as `limits` names them, without RATE_LIMIT_KEY_PREFIX, unless `prefixed`. Unreachable Redis:
    StorageError."""

    def __init__(self, storage: RedisStorage, source: str | bytes):
        self.storage = storage
        self.source = source
        self.sha = hashlib.sha1(source if isinstance(source, bytes) else source.encode()).hexdigest()
        self._pipe: RedisPipe | None | bool = False  # False: not looked up yet (after the fork)
        self._script = None

    def __call__(self, keys: list[str], args: list, *, prefixed: bool = False):
        return self.send(keys, args, prefixed=prefixed)()

    def send(self, keys: list[str], args: list, *, prefixed: bool = False) -> Callable[[], Any]:
        """Run the script in two steps where the worker's pipe carries it: sent now, its answer
        waited for when the function returned is called (elsewhere it runs now). Either step may
        raise StorageError."""
        names = self._names(keys, prefixed)
        try:
            pipe = self._shared_pipe()
            if pipe is None:
                answer = self._redis_py(names, args)
                return lambda: answer
            sent = pipe.send("EVALSHA", self.sha, len(names), *names, *args)
        except self.storage.base_exceptions as exc:
            raise StorageError(exc) from exc

        def answered() -> Any:
            try:
                return pipe.evalsha_answer(sent, self.source, names, args)
            except self.storage.base_exceptions as exc:
                raise StorageError(exc) from exc

        return answered

    def post(self, keys: list[str], args: list, failed: Callable[[StorageError], None], *,
             prefixed: bool = False) -> None:
        """Run the script without waiting for its answer where the worker's pipe carries it (a write
        whose result nobody needs, made after the client has its answer); elsewhere it runs as a
        call. If Redis cannot be reached or answers an error, `failed` gets the StorageError, at once
        or from the pipe's reader later."""
        names = self._names(keys, prefixed)
        try:
            pipe = self._shared_pipe()
            if pipe is not None:
                pipe.post_evalsha(lambda error: failed(StorageError(error)), self.sha, self.source, names, args)
            else:
                self._redis_py(names, args)
        except self.storage.base_exceptions as exc:
            failed(StorageError(exc))

    def _names(self, keys: list[str], prefixed: bool) -> list[str]:
        storage = self.storage
        return keys if prefixed else [storage.prefixed_key(key) if key else "" for key in keys]

    def _shared_pipe(self) -> RedisPipe | None:
        pipe = self._pipe
        if pipe is False:
            # Imported with a Redis storage only: redis-py and hiredis cost each process about 6 MB.
            from app.redis_pipe import shared_pipe

            pipe = self._pipe = shared_pipe(self.storage)
        return pipe

    def _redis_py(self, names: list[str], args: list) -> Any:
        if self._script is None:
            self._script = self.storage.get_connection().register_script(self.source)
        return self._script(keys=names, args=args, client=self.storage.get_connection())


class StorageBreaker:
    """Open for `pause` seconds after each `trip()`; `clock` is injectable (tests)."""

    __slots__ = ("_until", "clock", "pause")

    def __init__(self, pause: float, clock: Callable[[], float] = time.monotonic):
        self.pause = pause
        self.clock = clock
        self._until = 0.0

    @property
    def open(self) -> bool:
        return self.pause > 0 and self.clock() < self._until

    def trip(self) -> None:
        self._until = self.clock() + self.pause


def storage_breaker(app: Flask, pause: float) -> StorageBreaker:
    """The app's breaker (made on first use, open for `pause` s: RATE_LIMIT_STORAGE_BACKOFF)."""
    breaker = app.extensions.get(EXTENSION_KEY)
    if breaker is None:
        breaker = app.extensions[EXTENSION_KEY] = StorageBreaker(pause)
    return breaker
