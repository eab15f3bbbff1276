"""Rate limits per subject, exact across every worker and host that share the limit storage.

    RateLimits      what RATE_LIMIT_* configure; `init_app` binds the module-level flask-limiter
                    `Limiter` (app.extensions.limiter), checks each request, writes the headers
    limit_key()     whom a request counts against: "sub:<subject>" (auth's SUBJECT_KEY), else
                    "ip:<client address>"; computed once and kept in the environ under LIMIT_KEY
    ClientAddress   the client IP; X-Forwarded-For only when the peer is in TRUSTED_PROXIES
    TokenBudget     RATE_LIMIT_TOKENS_PER_MINUTE, charged from the `completion_usage` signal to
                    the request's key (a stream reporting after its request context is gone: to
                    its subject, else to RESPONSE_KEY, kept until the response closes)
    StorageAlarm    the loud log line while the storage is unreachable, at most every 10 s

Request limits (RATE_LIMIT_DEFAULT) are flask-limiter *application* limits: one fixed-window
counter per subject over every route, in the storage named by RATE_LIMIT_STORAGE_URI:
`memory://` counts per worker process (N workers allow N times the limit); `redis://` counts
with atomic increments that every worker and host shares. Only the health blueprint (GET /health)
is exempt: by blueprint, never by path.

The check runs after the other before_request hooks of the request's blueprint, because the auth
feature sets SUBJECT_KEY in such a hook; routes outside blueprints are checked by an app hook.

Storage failures: flask-limiter's swallow_errors and in-memory fallback stay off (a per-process
fallback would silently multiply the limit by the number of processes). Storage errors surface as
limits' `StorageError` and RATE_LIMIT_FAIL_OPEN decides: serve without limits and log an error,
or answer 503.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from functools import partial
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, has_request_context, request
from flask_limiter import RateLimitExceeded
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter

from app.api import health
from app.config import Settings
from app.errors import RateLimited, ServiceUnavailable
from app.signals import SUBJECT_KEY, completion_usage

if TYPE_CHECKING:
    from flask_limiter import Limiter

log = logging.getLogger("gateway.ratelimit")

EXTENSION_KEY = "gateway.rate_limits"
LIMIT_KEY = "gateway.rate_limit_key"
# The key of the request whose response is being sent: a stream's usage may be reported after the
# request context is gone (the response is iterated in the same greenlet/thread, so this survives).
RESPONSE_KEY: ContextVar[str | None] = ContextVar("rate_limit_response_key", default=None)
EXEMPT_BLUEPRINTS = (health.bp,)  # GET /health: never limited (by blueprint, never by path)
# Without timeouts a Redis host that drops packets would hang every request.
REDIS_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 2}
REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://")


def limit_key() -> str:
    """flask-limiter's key function; also what the token charge uses, streams included."""
    environ = request.environ
    key = environ.get(LIMIT_KEY)
    if key is None:
        subject = environ.get(SUBJECT_KEY)
        if subject:
            key = f"sub:{subject}"
        else:
            key = f"ip:{current_app.extensions[EXTENSION_KEY].client_address(environ)}"
        environ[LIMIT_KEY] = key
    return key


def request_limits() -> str:
    """The current app's RATE_LIMIT_DEFAULT (the module-level limiter serves whichever app runs)."""
    return current_app.extensions[EXTENSION_KEY].request_limits


def seconds_until(timestamp: float) -> int:
    return max(1, math.ceil(timestamp - time.time()))


def forget_response_key() -> None:
    RESPONSE_KEY.set(None)


class ClientAddress:
    """The client's IP address as this gateway can trust it.

    The direct peer, unless the peer is a trusted proxy: then X-Forwarded-For is read from the
    right, skipping trusted proxies, and the first hop that is not one is the client. Hops further
    left were written by the client itself and prove nothing. A malformed hop stops the walk at the
    last address a trusted proxy vouched for.
    """

    def __init__(self, trusted: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network | str]):
        # Settings has parsed and checked TRUSTED_PROXIES; ip_network() returns a network as it is.
        self.trusted = tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)

    def __call__(self, environ: Mapping[str, Any]) -> str:
        peer = environ.get("REMOTE_ADDR") or "unknown"
        if not self.trusted or not self.is_trusted(peer):
            return peer
        client = peer
        for hop in reversed(environ.get("HTTP_X_FORWARDED_FOR", "").split(",")):
            try:
                client = str(ipaddress.ip_address(hop.strip()))
            except ValueError:
                break
            if not self.is_trusted(client):
                break
        return client

    def is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)


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
        self.request_limits = settings.rate_limit_default
        self.storage_uri = settings.rate_limit_storage_uri
        self.key_prefix = settings.rate_limit_key_prefix
        self.fail_open = settings.rate_limit_fail_open
        self.tokens_per_minute = settings.rate_limit_tokens_per_minute
        self.client_address = ClientAddress(settings.trusted_proxies)
        self.alarm = StorageAlarm()
        self.tokens: TokenBudget | None = None
        self.checked_blueprints: set[str] = set()

    def init_app(self, app: Flask, limiter: Limiter) -> None:
        options: dict[str, Any] = {"wrap_exceptions": True, "key_prefix": self.key_prefix}
        if self.storage_uri.startswith(REDIS_SCHEMES):
            options.update(REDIS_OPTIONS)
        app.extensions[EXTENSION_KEY] = self
        app.config.update(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=self.storage_uri,
                          RATELIMIT_STORAGE_OPTIONS=options)
        limiter.init_app(app)
        # flask-limiter checks in an app-level hook, before the blueprints' own hooks (auth); ours
        # replaces it and maps its outcomes to the gateway's errors and fail mode.
        app.before_request_funcs[None].remove(limiter._check_request_limit)
        self.limiter = limiter
        for blueprint in EXEMPT_BLUEPRINTS:
            limiter.exempt(blueprint)
        self.exempt = frozenset(blueprint.name for blueprint in EXEMPT_BLUEPRINTS)
        if self.tokens_per_minute:
            self.tokens = TokenBudget(self.tokens_per_minute, limiter.storage)
            self.app = app
            completion_usage.connect(self.charge_tokens)
        app.before_request(self.enforce_outside_blueprints)
        app.after_request(self.add_headers)
        shared = "per worker process" if self.storage_uri.startswith("memory:") else "shared"
        log.info("rate limits on: %s per subject, %s tokens per minute; counted in %s storage (%s); "
                 "if it is unreachable: %s", self.request_limits or "no request limit",
                 self.tokens_per_minute or "no limit on", self.storage_uri.split(":", 1)[0], shared,
                 "serve without limits" if self.fail_open else "answer 503")

    # -- per request ---------------------------------------------------------------------------
    def enforce_outside_blueprints(self) -> None:
        blueprint = request.blueprint
        if blueprint is None:
            self.enforce()
        elif blueprint not in self.checked_blueprints and blueprint not in self.exempt:
            # First request into this blueprint: check its requests last in its own hook list,
            # which Flask runs after this app-level one (so after auth has named the subject).
            self.checked_blueprints.add(blueprint)
            current_app.before_request_funcs.setdefault(blueprint, []).append(partial(self.enforce, blueprint))

    def enforce(self, blueprint: str | None = None) -> None:
        if request.blueprint != blueprint:  # a parent blueprint's hook on a nested blueprint's route
            return
        if request.endpoint is None or request.blueprints and request.blueprints[-1] in self.exempt:
            return
        try:
            if self.tokens:
                key = limit_key()
                RESPONSE_KEY.set(key)
                self.tokens.check(key)
            self.limiter._check_request_limit()
        except RateLimitExceeded as exc:
            raise RateLimited(f"Rate limit exceeded: {exc.limit.limit} (requests per client){self.retry_hint()}.",
                              code="rate_limit_exceeded") from None
        except StorageError as exc:
            if not self.fail_open:
                raise ServiceUnavailable("Rate limits cannot be checked right now; try again shortly.",
                                         code="rate_limit_storage_unavailable") from None
            self.alarm.raise_alarm("serving WITHOUT rate limits (RATE_LIMIT_FAIL_OPEN=true)", exc)

    def retry_hint(self) -> str:
        current = self.limiter.current_limit
        try:
            return f"; retry in {seconds_until(current.window.reset_time)} s" if current else ""
        except StorageError:
            return ""

    def add_headers(self, response: Response) -> Response:
        if RESPONSE_KEY.get() is not None:
            response.call_on_close(forget_response_key)
        current = self.limiter.current_limit
        if current is None:
            return response
        try:
            reset, remaining = current.window
        except StorageError as exc:
            self.alarm.raise_alarm("X-RateLimit headers left out", exc)
            return response
        response.headers["X-RateLimit-Limit"] = str(current.limit.amount)
        response.headers["X-RateLimit-Remaining"] = str(remaining)
        response.headers["X-RateLimit-Reset"] = str(math.ceil(reset))
        if current.breached:
            response.headers["Retry-After"] = str(seconds_until(reset))
        return response

    def charge_tokens(self, sender: Any, *, usage: Mapping[str, Any] | None = None,
                      subject: str | None = None, **_: Any) -> None:
        """`completion_usage` receiver: charge the completion's real total_tokens to its subject."""
        app = getattr(sender, "_get_current_object", lambda: sender)()
        if app is not self.app or self.tokens is None:
            return
        try:
            tokens = int((usage or {}).get("total_tokens") or 0)
        except (TypeError, ValueError):
            return
        if tokens <= 0:
            return
        if has_request_context():
            key = limit_key()
        elif subject:
            key = f"sub:{subject}"
        elif RESPONSE_KEY.get() is not None:  # a stream's usage, sent as its response ends
            key = RESPONSE_KEY.get()
        else:
            log.warning("%d tokens not charged: usage reported outside any limited request", tokens)
            return
        try:
            self.tokens.charge(key, tokens)
        except StorageError as exc:
            self.alarm.raise_alarm(f"{tokens} tokens not charged", exc)
