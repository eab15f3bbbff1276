"""Failed authentications per client address: key guessing costs time (AUTH_FAILURE_LIMIT).

    failures = AuthFailures.from_settings(settings, breaker)
    failures.init_app(app)       # before the guard's hook: a blocked address is refused first

Two hooks, installed when AUTH_FAILURE_LIMIT is set and there is a credential to guess (AUTH_ENABLE
on; or, with it off, the admin API's ADMIN_API_KEY, and then for /admin only):

- before each request that carries a credential (`Authorization` or `x-api-key`): while its
  address has used up AUTH_FAILURE_LIMIT, 429 `rate_limit_error`, code `auth_failures_exceeded`,
  with `Retry-After` (seconds until the window ends). A correct key from that address is refused
  too: if it were served, each guess would still be answered "right" or "wrong" (200 or 429),
  and the limit would slow nobody down.
- after each response: a 401 to a request that carried a credential counts one failure for its
  address. A request without any credential is not a guess and is not counted.

The address is `ClientAddress.counted` (TRUSTED_PROXIES as for the rate limits; an IPv6 client by
its /64). The counters are fixed windows of the `limits` library in RATE_LIMIT_STORAGE_URI under
RATE_LIMIT_KEY_PREFIX: exact across every worker and host on Redis, per worker on `memory://`.
They do not depend on RATE_LIMIT_ENABLE: guessing keys is an attack on authentication, not load.
On one Redis server the check before a request is one Lua script (every window read, the first
used up answered with its time to live), sent through the worker's shared pipe in a gevent worker
(app/redis_pipe.py). With the rate limits on the same Redis, a request carrying a valid static API
key (known without a lookup) leaves its check to their count's script instead (`carry_with_count`,
DEFERRED_KEY): one round trip for both, nothing counted when the address is blocked; a check left
and not made is made before any view runs (`settle_deferred`) or before the answer leaves
(`count_failure`), so a blocked address gets the same 429 whatever it sent. When the storage fails, RATE_LIMIT_FAIL_OPEN decides as for the other limits (skip the check, or
503), and the storage breaker (app/limit_storage.py) spares the next requests the wait.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from flask import Flask, Request, Response, request
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter

from app.client_address import ClientAddress
from app.config import Settings
from app.errors import RateLimited, ServiceUnavailable
from app.limit_storage import RedisScript, StorageBreaker, open_storage, plain_redis
from app.limit_windows import Check, name_parts
from app.public_routes import is_public
from app.signals import ERROR_KEY

log = logging.getLogger("gateway.auth")

EXTENSION_KEY = "gateway.auth_failures"
NAMESPACE = "auth-failures"
ALARM_INTERVAL = 10.0
DEFERRED_KEY = "gateway.auth_failures_deferred"  # environ: the address whose check the limits' count carries
# KEYS: the failure windows, smallest first; ARGV: their amounts. Answers {} while none is used
# up, else {the first used up (1-based), its ms to live}: what FixedWindowRateLimiter.test and
# get_window_stats would read, in one round trip.
BLOCKED_SCRIPT = """
for i = 1, #KEYS do
  if tonumber(redis.call('get', KEYS[i]) or '0') >= tonumber(ARGV[i]) then
    return {i, redis.call('pttl', KEYS[i])}
  end
end
return {}
"""


class AuthFailures:
    def __init__(self, items: list[RateLimitItem], storage: Storage, client_address: ClientAddress, *,
                 breaker: StorageBreaker, fail_open: bool, blueprint: str | None = None):
        """`blueprint`: count and refuse only there (the admin API while AUTH_ENABLE=false)."""
        self.items = sorted(items)
        self.counter = FixedWindowRateLimiter(storage)
        redis = plain_redis(storage)
        self.blocked_script = RedisScript(redis, BLOCKED_SCRIPT) if redis is not None else None
        if redis is not None:  # each window's name in Redis around the address, built once
            self._key_parts = [name_parts(redis, item, NAMESPACE, "") for item in self.items]
            self._amounts = [item.amount for item in self.items]
        self.client_address = client_address
        self.breaker = breaker
        self.fail_open = fail_open
        self.blueprint = blueprint
        self._last_alarm = -math.inf
        # Set by the rate limits when their count can read this check's windows in the same round
        # trip (`carry_with_count`): which requests may leave their check to it.
        self._carried: Callable[[Request], bool] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, breaker: StorageBreaker, *, blueprint: str | None = None) -> AuthFailures:
        return cls(parse_many(settings.auth_failure_limit),
                   open_storage(settings.rate_limit_storage_uri, settings.rate_limit_key_prefix),
                   ClientAddress(settings.trusted_proxies), breaker=breaker,
                   fail_open=settings.rate_limit_fail_open, blueprint=blueprint)

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self
        app.before_request(self.refuse_blocked)
        app.after_request(self.count_failure)
        log.info("failed authentications limited to %s per client address%s",
                 ";".join(str(item) for item in self.items), f" on /{self.blueprint}" if self.blueprint else "")

    def _applies(self, served: Request) -> bool:
        environ = served.environ  # a credential's headers, looked up without building werkzeug's Headers
        return (("HTTP_AUTHORIZATION" in environ or "HTTP_X_API_KEY" in environ) and not is_public(served.path)
                and (self.blueprint is None or served.blueprint == self.blueprint))

    def refuse_blocked(self) -> None:
        """before_request: 429 while the address has used up its failures (503 if they cannot be read
        and RATE_LIMIT_FAIL_OPEN=false); or, for a request the rate limits' count will carry the
        check for, the address is left to it (DEFERRED_KEY)."""
        served = request._get_current_object()  # one proxy lookup for the reads that follow
        if self._applies(served):
            address = self.client_address.counted(served.environ)
            if self._carried is not None and self._carried(served):
                served.environ[DEFERRED_KEY] = address
                return
            self.refuse_address(address)

    # -- the check carried by the rate limits' count ----------------------------------------------
    def carry_with_count(self, carried: Callable[[Request], bool]) -> None:
        """Let the rate limits' count read the failure windows of the requests `carried` picks,
        in the same Lua script and round trip (only on Redis). `settle_deferred` must be a
        before_request hook after that count: a check the count did not make is made there."""
        assert self.blocked_script is not None
        self._carried = carried

    def check_for(self, address: str) -> Check:
        """The address's failure windows, as the rate limits' count reads them (names in Redis)."""
        return Check([head + address + tail for head, tail in self._key_parts], self._amounts)

    def settle_deferred(self) -> None:
        """before_request, after the rate limits' count: a check left to the count and not made by
        it (a route it does not count, a storage failure) is made now, before any view runs."""
        address = request.environ.pop(DEFERRED_KEY, None)
        if address is not None:
            self.refuse_address(address)

    def refusal(self, which: int, reset: float) -> RateLimited:
        """429 for an address that has used up failure window `which` (0-based), ending at `reset`."""
        retry = max(1, math.ceil(reset - time.time()))
        return RateLimited(f"Too many failed authentications from this address ({self.items[which]}); retry in "
                           f"{retry} s.", code="auth_failures_exceeded", headers={"Retry-After": str(retry)})

    def refuse_address(self, address: str) -> None:
        """RateLimited (429, Retry-After) while `address` has used up its failures; also the web
        console's sign-in form (app/console/), which carries its key in a form field, not a header."""
        if self.breaker.open:
            self._storage_unusable(None)
            return
        try:
            blocked = self._used_up(address)
        except StorageError as exc:
            self.breaker.trip()
            self._storage_unusable(exc)
            return
        if blocked is not None:
            raise self.refusal(*blocked)

    def _used_up(self, address: str) -> tuple[int, float] | None:
        """The first window (0-based) whose failures `address` has used up, and when it ends (epoch s)."""
        if self.blocked_script is not None:
            check = self.check_for(address)
            answer = self.blocked_script(check.names, check.amounts, prefixed=True)
            if not answer:
                return None
            return int(answer[0]) - 1, time.time() + max(int(answer[1]), 0) / 1000
        for which, item in enumerate(self.items):
            if not self.counter.test(item, NAMESPACE, address):
                return which, self.counter.get_window_stats(item, NAMESPACE, address).reset_time
        return None

    def count_failure(self, response: Response) -> Response:
        """after_request: a 401 to a request with a credential is one failure of its address. A check
        left to the rate limits' count that was never made (a hook refused the request before it)
        is made here, and its 429 replaces the answer: what a blocked address is told may not
        depend on what it sent."""
        served = request._get_current_object()
        address = served.environ.pop(DEFERRED_KEY, None)
        if address is not None:
            try:
                self.refuse_address(address)
            except (RateLimited, ServiceUnavailable) as refused:
                served.environ[ERROR_KEY] = refused.summary()  # for the access line, as the error handler does
                return refused.to_response()
        if response.status_code == 401 and self._applies(served):
            self.count_address(self.client_address.counted(served.environ))
        return response

    def count_address(self, address: str) -> None:
        """One failed authentication from `address` (never raises: a storage failure is logged)."""
        if self.breaker.open:
            return
        try:
            for item in self.items:
                self.counter.hit(item, NAMESPACE, address)
        except StorageError as exc:
            self.breaker.trip()
            self._alarm("not counted", exc)

    def _storage_unusable(self, exc: StorageError | None) -> None:
        if not self.fail_open:
            raise ServiceUnavailable("Failed authentications cannot be counted right now; try again shortly.",
                                     code="rate_limit_storage_unavailable")
        if exc is not None:
            self._alarm("not checked (RATE_LIMIT_FAIL_OPEN=true: served)", exc)

    def _alarm(self, what: str, exc: StorageError) -> None:
        now = time.monotonic()
        if now - self._last_alarm >= ALARM_INTERVAL:
            self._last_alarm = now
            log.error("limit storage unreachable (%s): failed authentications %s", type(exc.storage_error).__name__,
                      what)
