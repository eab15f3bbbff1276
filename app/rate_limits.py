"""Rate limits per subject, exact across every worker and host that share the limit storage.

    RateLimits      what RATE_LIMIT_* configure; `init_app` installs the hooks, the token charge
                    and the error handler
    LimitWindows    the request windows and the token window, counted in ONE storage call per
                    request (app/limit_windows.py: one Lua script on Redis)
    ClientAddress   the client IP; X-Forwarded-For only when the peer is in TRUSTED_PROXIES
                    (app/client_address.py)
    tokens          RATE_LIMIT_TOKENS_PER_MINUTE (a one-minute window per subject): checked with the
                    request windows, charged by the `completion_usage` receiver with each
                    completion's real usage (`LimitWindows.charge`)
    StorageAlarm    the loud log line while the storage is unreachable, at most every 10 s
    breaker         after a storage failure the storage is skipped for RATE_LIMIT_STORAGE_BACKOFF
                    (app/limit_storage.py): fail open serves without limits at once, fail closed
                    answers 503 at once

How a request is counted:
- RATE_LIMIT_DEFAULT are fixed windows per subject (`limit_key`) over every route, in
  RATE_LIMIT_STORAGE_URI (`memory://` counts per worker process, so N workers allow N times the
  limit; `redis://` counts atomically in one place that every worker and host shares).
- `count` (a before_request hook, installed after the auth guard's, so the subject is known)
  first reads the subject's token window: used up, the request is refused (429
  `token_limit_exceeded`) and spends no request budget. Otherwise each request window counts
  it, smallest first; the first over its amount refuses it (429 `rate_limit_exceeded`).
  The public routes (`app.public_routes`), the web console (`UNLIMITED_BLUEPRINTS`) and
  requests without an endpoint (404, 405) are never counted. On Redis, a request with a valid
  static API key has its failed-login check (AUTH_FAILURE_LIMIT) read first by the same script
  (`_carry_failure_check`): blocked, it is refused and nothing is counted.
- The model-calling views (marked `settles_late`, app/late_checks.py) get the count's answer
  late: the script is sent as the request starts and waited for (`settle`) where the view first
  calls out, after it has parsed, routed and checked the request, so the Redis round trip runs
  beside that work (bodies up to 64 KiB). Nothing reaches a provider before the answer, and a
  refusal replaces any error of the view. Every other view runs once the count is answered.
- Every limited response carries X-RateLimit-Limit, -Remaining, -Reset and Retry-After of the
  smallest window (of the refusing one on a 429), from the figures that same call returned.
- A storage failure: RATE_LIMIT_FAIL_OPEN=true serves without limits (the alarm logs one line
  per 10 s), false answers 503 (`rate_limit_storage_unavailable`).
- The tokens a completion used are charged once known (one storage call, after the answer; in a
  gevent worker on Redis it is posted, not waited for: app/limit_windows.py).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from functools import partial
from typing import Any

from flask import Flask, Request, Response, current_app, has_request_context, request
from limits import RateLimitItemPerMinute, parse_many
from limits.errors import StorageError

from app.auth.failures import DEFERRED_KEY, AuthFailures
from app.client_address import ClientAddress
from app.config import Settings
from app.errors import RateLimited, ServiceUnavailable
from app.late_checks import allows_late, defer, small_body
from app.limit_storage import StorageBreaker, open_storage, storage_breaker
from app.limit_windows import LimitWindows, Tally, Window
from app.public_routes import is_public
from app.signals import SUBJECT_KEY, completion_usage

log = logging.getLogger("gateway.ratelimit")

EXTENSION_KEY = "gateway.rate_limits"
LIMIT_KEY = "gateway.rate_limit_key"
WINDOW_KEY = "gateway.rate_limit_window"  # the Window whose figures go in this request's headers
# The key of the request whose response is being sent: a stream's usage may be reported after the
# request context is gone (the response is iterated in the same greenlet/thread, so this survives).
RESPONSE_KEY: ContextVar[str | None] = ContextVar("rate_limit_response_key", default=None)
SERVED_WITHOUT_LIMITS = "serving WITHOUT rate limits (RATE_LIMIT_FAIL_OPEN=true)"
REFUSED = "answering 503 (RATE_LIMIT_FAIL_OPEN=false)"


def seconds_until(timestamp: float) -> int:
    return max(1, math.ceil(timestamp - time.time()))


# The web console (app/console/): a few operators signed in with ADMIN_API_KEY, whose pages poll
# every few seconds; counted against the address's request limit, an open chart would lock its
# operator (and every client behind the same address) out. Its sign-in is limited by AUTH_FAILURE_LIMIT.
UNLIMITED_BLUEPRINTS = frozenset({"console"})


def counted_request(served: Request) -> bool:
    """Whether the limits count the request: the public routes, the console and requests without
    an endpoint (404, 405) are never limited nor counted."""
    return served.endpoint is not None and not is_public(served.path) and served.blueprint not in UNLIMITED_BLUEPRINTS


class StorageAlarm:
    """Logs storage failures as errors, at most once per `interval` seconds in this process."""

    def __init__(self, interval: float = 10.0):
        self.interval = interval
        self.last = -math.inf
        self.unlogged = 0

    def raise_alarm(self, consequence: str, exc: StorageError) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            self.unlogged += 1
            return
        cause = exc.storage_error
        log.error("rate-limit storage unreachable (%s: %s): %s; %d more failures since the last such line",
                  type(cause).__name__, cause, consequence, self.unlogged)
        self.last, self.unlogged = now, 0


def window_headers(window: Window) -> dict[str, str]:
    """flask-limiter's headers, as it wrote them: the reset second rounded up, Retry-After until then."""
    reset_at = int(window.reset + 1)
    return {"X-RateLimit-Limit": str(window.item.amount), "X-RateLimit-Remaining": str(window.remaining),
            "X-RateLimit-Reset": str(reset_at), "Retry-After": str(max(0, int(reset_at - time.time())))}


WINDOW_HEADERS = frozenset(("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"))


class RateLimits:
    def __init__(self, settings: Settings):
        self.request_limits = settings.rate_limit_default.strip()
        self.storage_uri = settings.rate_limit_storage_uri
        self.key_prefix = settings.rate_limit_key_prefix
        self.fail_open = settings.rate_limit_fail_open
        self.tokens_per_minute = settings.rate_limit_tokens_per_minute
        self.client_address = ClientAddress(settings.trusted_proxies)
        self.alarm = StorageAlarm()
        self.breaker = StorageBreaker(float(settings.rate_limit_storage_backoff))  # the app's, from init_app
        self.storage = open_storage(self.storage_uri, self.key_prefix)
        self.failures: AuthFailures | None = None  # its check carried by `count` (_carry_failure_check)
        self.tokens = RateLimitItemPerMinute(self.tokens_per_minute) if self.tokens_per_minute else None
        self._late: dict[str | None, bool] = {}  # endpoint -> whether its view settles the count (late_checks)
        self.windows = LimitWindows.open(self.storage, parse_many(self.request_limits) if self.request_limits else [],
                                         self.tokens)

    def init_app(self, app: Flask) -> None:
        """Install after the auth guard (whose hook names the subject these limits count)."""
        app.extensions[EXTENSION_KEY] = self
        self.breaker = storage_breaker(app, self.breaker.pause)
        app.before_request(self.count)
        self._carry_failure_check(app)
        app.after_request(self.add_headers)
        app.register_error_handler(StorageError, self.storage_unavailable)  # fail closed only
        if self.tokens is not None:
            completion_usage.connect(self.charge_tokens, sender=app, weak=False)
        shared = "per worker process" if self.storage_uri.startswith("memory:") else "shared"
        log.info("rate limits on: %s per subject, %s tokens per minute; counted in %s storage (%s); "
                 "if it is unreachable: %s", self.request_limits or "no request limit",
                 self.tokens_per_minute or "no limit on", self.storage_uri.split(":", 1)[0], shared,
                 "serve without limits" if self.fail_open else "answer 503")

    def _carry_failure_check(self, app: Flask) -> None:
        """On Redis, with static API keys: the failed-login check (AUTH_FAILURE_LIMIT) of a request
        whose key is valid is read by this count's script, in the same round trip, instead of one of
        its own before the guard. Only a key the guard knows without a lookup (AUTH_API_KEYS: a
        digest compared in memory) goes ahead this way: a wrong one, a virtual key or a token is
        checked first, as before. Nothing is counted for a blocked address, and its answer is 429
        whatever it sent; a check the count does not make is made before any view runs
        (`settle_deferred`), or before any answer leaves (`count_failure`)."""
        from app.auth.failures import EXTENSION_KEY as FAILURES_KEY
        from app.auth.guard import AUTH_EXTENSION_KEY

        failures, guard = app.extensions.get(FAILURES_KEY), app.extensions.get(AUTH_EXTENSION_KEY)
        if (failures is None or guard is None or failures.blueprint is not None or failures.blocked_script is None
                or not self.windows.checks_with_count or not len(guard.api_keys)):
            return

        def carried(served: Request) -> bool:
            return counted_request(served) and not self.breaker.open and guard.static_key(served.headers) is not None

        self.failures = failures
        failures.carry_with_count(carried)
        app.before_request(failures.settle_deferred)

    def limit_key(self, environ: dict[str, Any] | None = None) -> str:
        """Whom the request (with this environ) counts against: "sub:<subject>" (auth's SUBJECT_KEY),
        else "ip:<client address>"; computed once per request and kept in the environ."""
        if environ is None:
            environ = request.environ
        key = environ.get(LIMIT_KEY)
        if key is None:
            subject = environ.get(SUBJECT_KEY)
            key = f"sub:{subject}" if subject else f"ip:{self.client_address(environ)}"
            environ[LIMIT_KEY] = key
        return key

    # -- before and after each request ----------------------------------------------------------
    def count(self) -> None:
        """before_request: the token window and the request windows, in one storage call."""
        served = request._get_current_object()  # one proxy lookup for the reads below
        if not counted_request(served):
            if self.tokens is not None:
                RESPONSE_KEY.set(None)  # not this connection's previous request's key (see charge_tokens)
            return
        environ = served.environ
        key = self.limit_key(environ)
        if self.tokens is not None:
            RESPONSE_KEY.set(key)
        if self.breaker.open:  # a storage failure moments ago: decide at once, without waiting for it
            if not self.fail_open:
                raise self.unavailable()
            return
        address = environ.get(DEFERRED_KEY)  # the failed-login check this count carries (_carry_failure_check)
        try:
            if address is None:
                answer = self.windows.send_count(key)
            else:
                answer = self.windows.send_count(key, self.failures.check_for(address))
                del environ[DEFERRED_KEY]
        except StorageError as exc:
            self.storage_failed(exc, SERVED_WITHOUT_LIMITS)
            return
        endpoint = served.endpoint
        late = self._late.get(endpoint)
        if late is None:
            late = self._late[endpoint] = allows_late(current_app.view_functions.get(endpoint))
        if late and small_body(environ):  # the view waits for the answer where it calls out (app/late_checks.py)
            defer(environ, partial(self.settle, answer, address, environ))
        else:
            self.settle(answer, address, environ)

    def settle(self, answer: Callable[[], Tally], address: str | None, environ: dict[str, Any]) -> None:
        """The count's answer: refused (429), or the window for the headers; a storage failure
        serves (a carried failed-login check is then made as `settle_deferred` would) or 503."""
        try:
            tally = answer()
        except StorageError as exc:
            self.storage_failed(exc, SERVED_WITHOUT_LIMITS)
            if address is not None:
                self.failures.refuse_address(address)
            return
        if tally.blocked is not None:
            raise self.failures.refusal(*tally.blocked)
        if tally.refused:
            raise self.refusal(tally)
        if tally.shown is not None:
            environ[WINDOW_KEY] = tally.shown

    def add_headers(self, response: Response) -> Response:
        window = request.environ.get(WINDOW_KEY)
        if window is not None:
            headers, values = response.headers, window_headers(window)
            if any(name.lower() in WINDOW_HEADERS for name, _ in headers):  # a provider's own: ours replace them
                for name in values:
                    headers.remove(name)
            for name, value in values.items():  # added, not set: set looks through every header for each
                headers.add(name, value)
        return response

    def refusal(self, tally: Tally) -> RateLimited:
        if tally.tokens is not None:
            used = tally.tokens
            retry = seconds_until(used.reset)
            return RateLimited(
                f"Token limit exceeded: {used.item.amount} tokens per minute are used up; retry in {retry} s.",
                code="token_limit_exceeded",
                headers={"Retry-After": str(retry), "X-RateLimit-Limit-Tokens": str(used.item.amount),
                         "X-RateLimit-Remaining-Tokens": str(used.remaining),
                         "X-RateLimit-Reset-Tokens": str(math.ceil(used.reset))})
        window = tally.shown
        assert window is not None
        return RateLimited(f"Rate limit exceeded: {window.item} (requests per client); retry in "
                           f"{seconds_until(window.reset)} s.", code="rate_limit_exceeded",
                           headers=window_headers(window))

    def storage_failed(self, exc: StorageError, consequence: str) -> None:
        """RATE_LIMIT_FAIL_OPEN: log (at most every 10 s) and serve, or answer 503."""
        if not self.fail_open:
            self.failed(REFUSED, exc)
            raise self.unavailable() from None
        self.failed(consequence, exc)

    def failed(self, consequence: str, exc: StorageError) -> None:
        """Every storage failure: the breaker opens, the alarm rings (at most every 10 s)."""
        self.breaker.trip()
        self.alarm.raise_alarm(consequence, exc)

    # -- error handlers ----------------------------------------------------------------------------
    def storage_unavailable(self, exc: StorageError) -> Response:
        """A storage error that reached Flask (not one of ours: those are handled where they happen)."""
        self.failed(REFUSED, exc)
        return self.unavailable().to_response()

    @staticmethod
    def unavailable() -> ServiceUnavailable:
        return ServiceUnavailable("Rate limits cannot be checked right now; try again shortly.",
                                  code="rate_limit_storage_unavailable")

    # -- the token charge --------------------------------------------------------------------------
    def charge_tokens(self, sender: Any, *, usage: Mapping[str, Any] | None = None,
                      subject: str | None = None, **_: Any) -> None:
        """`completion_usage` receiver (for this app only): charge the real total_tokens to the
        request's key; a stream reporting after its request: to its subject, else RESPONSE_KEY."""
        try:
            tokens = int((usage or {}).get("total_tokens") or 0)
        except (TypeError, ValueError):
            return
        if tokens <= 0 or self.tokens is None:
            return
        if has_request_context():
            key = self.limit_key()
        elif subject:
            key = f"sub:{subject}"
        elif RESPONSE_KEY.get() is not None:  # a stream's usage, sent as its response ends
            key = RESPONSE_KEY.get()
        else:
            log.warning("%d tokens not charged: usage reported outside any limited request", tokens)
            return
        if self.breaker.open:  # the storage failed moments ago: not charged, counted in the alarm's next line
            self.alarm.unlogged += 1
            return
        self.windows.charge(key, tokens, partial(self.failed, f"{tokens} tokens not charged"))
