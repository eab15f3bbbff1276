"""Rate limits per subject, exact across every worker and host that share the limit storage.

    RateLimits      what RATE_LIMIT_* configure; `init_app` builds the app's flask-limiter
                    `Limiter` and installs it with the token budget and two error handlers
    ClientAddress   the client IP; X-Forwarded-For only when the peer is in TRUSTED_PROXIES
                    (app/client_address.py)
    TokenBudget     RATE_LIMIT_TOKENS_PER_MINUTE: checked by a before_request hook, charged by
                    the `completion_usage` receiver with each completion's real usage
    StorageAlarm    the loud log line while the storage is unreachable, at most every 10 s
    breaker         after a storage failure the storage is skipped for RATE_LIMIT_STORAGE_BACKOFF
                    (app/limit_storage.py): fail open serves without limits at once (a request
                    filter exempts it from flask-limiter), fail closed answers 503 at once

flask-limiter does the request limits, its own way:
- RATE_LIMIT_DEFAULT are its *application limits*: one fixed-window counter per subject
  (`limit_key`) over every route, in RATE_LIMIT_STORAGE_URI (`memory://` counts per worker
  process, so N workers allow N times the limit; `redis://` counts with atomic increments that
  every worker and host shares). Its own before_request hook checks them, registered after the
  auth guard's, so the subject is known.
- `headers_enabled`: it writes X-RateLimit-Limit, -Remaining, -Reset and Retry-After.
- a `request_filter` leaves the public routes (`app.public_routes`) and the web console out; requests without an
  endpoint (404, 405) are never counted.
- a breach raises its `RateLimitExceeded`; `refuse` renders the gateway's 429 envelope.
- `swallow_errors` is RATE_LIMIT_FAIL_OPEN. Open: a storage error is swallowed (the request is
  served without limits) and logged to flask-limiter's logger, where `StorageErrorFilter`
  turns it into the alarm's one line per 10 s. Closed: the `StorageError` reaches
  `storage_unavailable`, a 503. Its in-memory fallback stays off: a per-process fallback
  would silently multiply the limit by the number of processes.

Hooks, in the order they run: `check_tokens` (before the request limit, so a request refused
for tokens spends no request budget), flask-limiter's check, then `read_window`, which reads the
counted limit's window once, right after the check: the headers show the count of this request,
and a storage failure surfaces before the view runs, never after an answer was paid for.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from flask import Flask, Response, current_app, has_app_context, has_request_context, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter

from app.client_address import ClientAddress
from app.config import Settings
from app.errors import RateLimited, ServiceUnavailable
from app.limit_storage import StorageBreaker, storage_breaker, storage_options
from app.public_routes import is_public
from app.signals import SUBJECT_KEY, completion_usage

log = logging.getLogger("gateway.ratelimit")

EXTENSION_KEY = "gateway.rate_limits"
LIMIT_KEY = "gateway.rate_limit_key"
# The key of the request whose response is being sent: a stream's usage may be reported after the
# request context is gone (the response is iterated in the same greenlet/thread, so this survives).
RESPONSE_KEY: ContextVar[str | None] = ContextVar("rate_limit_response_key", default=None)
SERVED_WITHOUT_LIMITS = "serving WITHOUT rate limits (RATE_LIMIT_FAIL_OPEN=true)"
REFUSED = "answering 503 (RATE_LIMIT_FAIL_OPEN=false)"


def seconds_until(timestamp: float) -> int:
    return max(1, math.ceil(timestamp - time.time()))


def forget_response_key() -> None:
    RESPONSE_KEY.set(None)


# The web console (app/console/): a few operators signed in with ADMIN_API_KEY, whose pages poll
# every few seconds; counted against the address's request limit, an open chart would lock its
# operator (and every client behind the same address) out. Its sign-in is limited by AUTH_FAILURE_LIMIT.
UNLIMITED_BLUEPRINTS = frozenset({"console"})


def public_request() -> bool:
    """flask-limiter request filter: the public routes and the console are never limited nor counted."""
    return is_public(request.path) or request.blueprint in UNLIMITED_BLUEPRINTS


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


class StorageErrorFilter(logging.Filter):
    """On flask-limiter's logger: a storage error it swallowed (fail open), which it logs with a
    traceback on every request, becomes the current app's alarm line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, StorageError) and has_app_context():
            limits = current_app.extensions.get(EXTENSION_KEY)
            if limits is not None:
                limits.failed(SERVED_WITHOUT_LIMITS, exc)
                return False
        return True


_LIMITER_LOG = logging.getLogger("flask-limiter")
_STORAGE_ERRORS = StorageErrorFilter()


class TokenBudget:
    """Tokens per subject per minute: a fixed one-minute window in the limit storage, charged with
    each completion's real usage once it is known and checked before the subject's next request."""

    NAMESPACE = "tokens"

    def __init__(self, per_minute: int, storage: Storage):
        self.item = RateLimitItemPerMinute(per_minute)
        self.counter = FixedWindowRateLimiter(storage)

    def charge(self, key: str, tokens: int) -> None:
        self.counter.hit(self.item, self.NAMESPACE, key, cost=tokens)

    def check(self, key: str) -> None:
        """Raise RateLimited once the subject's tokens this minute are at or above the limit."""
        if self.counter.test(self.item, self.NAMESPACE, key):
            return
        reset, remaining = self.counter.get_window_stats(self.item, self.NAMESPACE, key)
        retry = seconds_until(reset)
        raise RateLimited(
            f"Token limit exceeded: {self.item.amount} tokens per minute are used up; retry in {retry} s.",
            code="token_limit_exceeded",
            headers={"Retry-After": str(retry), "X-RateLimit-Limit-Tokens": str(self.item.amount),
                     "X-RateLimit-Remaining-Tokens": str(remaining), "X-RateLimit-Reset-Tokens": str(math.ceil(reset))})


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
        self.tokens: TokenBudget | None = None
        options = storage_options(self.storage_uri, self.key_prefix)
        self.limiter = Limiter(
            self.limit_key, application_limits=[self.request_limits] if self.request_limits else [],
            strategy="fixed-window", storage_uri=self.storage_uri, storage_options=options, headers_enabled=True,
            swallow_errors=self.fail_open, in_memory_fallback_enabled=False)
        self.limiter.request_filter(public_request)
        self.limiter.request_filter(self.storage_skipped)

    def init_app(self, app: Flask) -> None:
        """Install after the auth guard (whose hook names the subject these limits count)."""
        app.extensions[EXTENSION_KEY] = self
        self.breaker = storage_breaker(app, self.breaker.pause)
        app.before_request(self.refuse_while_broken)
        if self.tokens_per_minute:
            app.before_request(self.check_tokens)  # before flask-limiter's own check
        self.limiter.init_app(app)
        app.before_request(self.read_window)
        app.register_error_handler(RateLimitExceeded, self.refuse)
        app.register_error_handler(StorageError, self.storage_unavailable)  # fail closed only
        if _STORAGE_ERRORS not in _LIMITER_LOG.filters:
            _LIMITER_LOG.addFilter(_STORAGE_ERRORS)
        if self.tokens_per_minute:
            self.tokens = TokenBudget(self.tokens_per_minute, self.limiter.storage)
            app.after_request(self.forget_key_on_close)
            completion_usage.connect(self.charge_tokens, sender=app, weak=False)
        shared = "per worker process" if self.storage_uri.startswith("memory:") else "shared"
        log.info("rate limits on: %s per subject, %s tokens per minute; counted in %s storage (%s); "
                 "if it is unreachable: %s", self.request_limits or "no request limit",
                 self.tokens_per_minute or "no limit on", self.storage_uri.split(":", 1)[0], shared,
                 "serve without limits" if self.fail_open else "answer 503")

    def limit_key(self) -> str:
        """Whom the request counts against: "sub:<subject>" (auth's SUBJECT_KEY), else
        "ip:<client address>"; computed once per request and kept in the environ."""
        environ = request.environ
        key = environ.get(LIMIT_KEY)
        if key is None:
            subject = environ.get(SUBJECT_KEY)
            key = f"sub:{subject}" if subject else f"ip:{self.client_address(environ)}"
            environ[LIMIT_KEY] = key
        return key

    # -- before and after each request ----------------------------------------------------------
    def storage_skipped(self) -> bool:
        """flask-limiter request filter: exempt while the breaker is open and RATE_LIMIT_FAIL_OPEN=true."""
        return self.fail_open and self.breaker.open

    def refuse_while_broken(self) -> None:
        """RATE_LIMIT_FAIL_OPEN=false: 503 at once while the breaker is open (no storage call to wait for)."""
        if not self.fail_open and self.breaker.open and request.endpoint is not None and not is_public(request.path):
            raise self.unavailable()

    def check_tokens(self) -> None:
        if request.endpoint is None or public_request():
            return
        key = self.limit_key()
        RESPONSE_KEY.set(key)
        if self.breaker.open:
            return  # fail open (closed was refused already): served without the token limit
        try:
            self.tokens.check(key)
        except StorageError as exc:
            self.storage_failed(exc, "serving WITHOUT token limits (RATE_LIMIT_FAIL_OPEN=true)")

    def read_window(self) -> None:
        current = self.limiter.current_limit
        if current is None or self.breaker.open:
            return
        try:
            current.remaining  # noqa: B018 -- fetched now, kept on the limit for the headers
        except StorageError as exc:
            self.storage_failed(exc, SERVED_WITHOUT_LIMITS)

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

    def forget_key_on_close(self, response: Response) -> Response:
        if RESPONSE_KEY.get() is not None:
            response.call_on_close(forget_response_key)
        return response

    # -- error handlers ----------------------------------------------------------------------------
    def refuse(self, exc: RateLimitExceeded) -> Response:
        """The 429 envelope; flask-limiter adds the X-RateLimit-* and Retry-After headers."""
        hint = ""
        current = self.limiter.current_limit
        if current is not None:
            try:
                hint = f"; retry in {seconds_until(current.reset_at)} s"
            except StorageError:
                pass
        return RateLimited(f"Rate limit exceeded: {exc.limit.limit} (requests per client){hint}.",
                           code="rate_limit_exceeded").to_response()

    def storage_unavailable(self, exc: StorageError) -> Response:
        """flask-limiter raised a storage error (RATE_LIMIT_FAIL_OPEN=false: it swallows none)."""
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
        try:
            self.tokens.charge(key, tokens)
        except StorageError as exc:
            self.failed(f"{tokens} tokens not charged", exc)
