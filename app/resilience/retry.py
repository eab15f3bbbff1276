"""When a failed upstream try is tried again, and after how long.

    failure = classify(exc)          # retry? count towards the circuit? the provider's Retry-After
    policy.wait(retry, failure)      # seconds before retry number `retry` (1, 2, ...) of one target

What is retried, before the first byte reached the client only:

    connection errors (502 upstream_unreachable), timeouts (504 upstream_timeout)   retried, trip the breaker
    the provider answered 500, 502, 503 or 504                                     retried, trip the breaker
    the provider answered 429                                                      retried, not the breaker
    any other answer (400, 401, 404, 422, ...)                                     passed to the client at once
    the gateway could not send the call or read the answer                         passed on, not the breaker

A 429 is a provider that works but limits this key: it is retried after its Retry-After (or the
backoff) and, for an alias, left for the next target, but it never pauses the deployment for
everyone. The gateway's own refusals (a provider without the endpoint, 501) are not upstream
failures at all.

Waits: the first is `backoff`, doubling with each retry up to `max_backoff`, with "equal jitter"
(a random point in the upper half) so that clients failing together do not retry together. A
provider's `Retry-After` (seconds or an HTTP date) replaces the backoff when it is at most
`max_retry_after`; a longer one ends the tries on that target (the next target, or the error).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import NamedTuple

from app.config_file import RetrySettings
from app.errors import UpstreamError, UpstreamStatus, UpstreamTimeout, UpstreamUnreachable

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BREAKER_STATUSES = frozenset({500, 502, 503, 504})
# Answers that say the deployment itself cannot serve (its key was refused): a health failure,
# passed to the client like any other 4xx.
UNHEALTHY_STATUSES = frozenset({401})


class Failure(NamedTuple):
    retry: bool  # worth another try (this target or the next)
    breaks: bool  # counts towards the deployment's circuit breaker
    answered: bool  # the provider answered (with a status): it works, as far as the breaker goes
    unhealthy: bool  # shown as a failure in the deployment's health
    retry_after: float | None  # the provider's Retry-After, in seconds


# The gateway could not send the call or read the answer (a credential that cannot be a header,
# an unreadable body): not retried, not the breaker's business, a failure in the health view.
_NOT_SENT = Failure(False, False, False, True, None)


def upstream_status(exc: UpstreamError) -> int | None:
    """The status the provider answered with, if the failure was an answer."""
    if isinstance(exc, UpstreamStatus):
        return exc.status
    return getattr(exc, "upstream_status", None)


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """A Retry-After header's wait in seconds (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return max(seconds, 0.0)


def classify(exc: UpstreamError) -> Failure:
    if isinstance(exc, UpstreamUnreachable | UpstreamTimeout):
        return Failure(True, True, False, True, None)
    status = upstream_status(exc)
    if status is None:
        return _NOT_SENT
    if status in RETRY_STATUSES:
        breaks = status in BREAKER_STATUSES
        return Failure(True, breaks, not breaks, True, retry_after_seconds(exc.headers.get("Retry-After")))
    return Failure(False, False, True, status in UNHEALTHY_STATUSES, None)


class RetryPolicy:
    __slots__ = ("attempts", "backoff", "max_backoff", "max_retry_after", "random")

    def __init__(self, settings: RetrySettings, *, random: Callable[[], float] = random.random):
        self.attempts = settings.attempts
        self.backoff = settings.backoff
        self.max_backoff = settings.max_backoff
        self.max_retry_after = settings.max_retry_after
        self.random = random

    def waits_too_long(self, failure: Failure) -> bool:
        """The provider asked for a longer pause than the gateway waits: try the next target instead."""
        return failure.retry_after is not None and failure.retry_after > self.max_retry_after

    def wait(self, retry: int, failure: Failure) -> float:
        """Seconds before retry number `retry` (1 for the second try) of one target."""
        if failure.retry_after is not None:
            return failure.retry_after
        ceiling = min(self.backoff * 2 ** (retry - 1), self.max_backoff)
        return ceiling / 2 + self.random() * ceiling / 2
