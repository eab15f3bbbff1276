"""Try a call on its targets: retries with backoff, fallbacks, circuit breakers, the retry budget.

    result = resilience.call(routes, attempt, strategy="fallback", name="fast", tally=tally)
    ...                                        # the result is relayed to the client
    resilience.done(tally.route)               # when the answer is over: its slot is free again

`attempt(route)` makes one try and returns once the first bytes are in hand (app/chat/call.py:
the headers, and a stream's first event or a whole body), so everything here happens before
any byte reaches the client. For each target, in the order of the strategy:

    skip it if its circuit is open (state.py, breaker.py)
    try it up to `retry.attempts` times: a failure retry.py calls retryable is tried again after
    the backoff (or the provider's Retry-After, up to max_retry_after); any other is raised
    each try after the request's first spends the retry budget (budget.py); none left: raise
    a try that fails opens the circuit after N in a row: the next target then
    the last failure is raised when every target has had its tries; 503 `circuit_open` when
    every target was skipped

Strategies: `fallback` keeps the configured order; `round_robin` starts each request one target
further (per alias, per worker); `least_busy` orders by requests in flight in this worker
(ties keep the configured order). `tally` (any object with `route` and `attempts`) is told
which target is being tried and how many tries were made, for the response headers and the
access line, also when the call fails.

Outcomes feed the deployment's health (state.py) and `events` (retries, fallbacks, circuit
changes, budget refusals: metrics). Clock, sleep and randomness are injectable; the wait runs in
the request's greenlet (gevent's sleep), never blocking the worker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from itertools import count
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from app.errors import ServiceUnavailable, UpstreamError
from app.resilience.breaker import CLOSED
from app.resilience.budget import RetryBudget
from app.resilience.retry import RetryPolicy, classify, upstream_status
from app.resilience.state import Upstreams

if TYPE_CHECKING:
    from app.config_file import RetrySettings
    from app.providers.routing import Route

T = TypeVar("T")
FALLBACK, ROUND_ROBIN, LEAST_BUSY = "fallback", "round_robin", "least_busy"


class Events(Protocol):
    def retried(self, deployment: str) -> None: ...
    def fell_back(self, deployment: str, to: str) -> None: ...
    def budget_exhausted(self, deployment: str) -> None: ...


class Tally:
    """Which target a call is on and how many upstream tries it made (see the module docstring)."""

    __slots__ = ("attempts", "route")

    def __init__(self) -> None:
        self.route: Route | None = None
        self.attempts = 0


class Resilience:
    def __init__(self, retry: RetrySettings, upstreams: Upstreams, *, events: Events | None = None,
                 sleep: Callable[[float], None] = time.sleep, random: Callable[[], float] | None = None,
                 clock: Callable[[], float] = time.monotonic, timer: Callable[[], float] = time.perf_counter):
        self.policy = RetryPolicy(retry) if random is None else RetryPolicy(retry, random=random)
        self.budget = RetryBudget(retry.budget, retry.budget_min, clock=clock)
        self.upstreams = upstreams
        self.events = events
        self.sleep = sleep
        self.timer = timer
        self._turns: dict[str, count] = {}

    def done(self, route: Route) -> None:
        """The answer served by `route` is over (relayed, or given up): one request less in flight."""
        self.upstreams[route.provider.id].in_flight -= 1

    def ordered(self, routes: Sequence[Route], strategy: str, name: str) -> Sequence[Route]:
        if len(routes) < 2 or strategy == FALLBACK:
            return routes
        if strategy == ROUND_ROBIN:
            turns = self._turns.get(name)
            if turns is None:
                turns = self._turns[name] = count()
            start = next(turns) % len(routes)
            return [*routes[start:], *routes[:start]]
        upstreams = self.upstreams
        return sorted(routes, key=lambda route: upstreams[route.provider.id].in_flight)

    def call(self, routes: Sequence[Route], attempt: Callable[[Route], T], *, strategy: str = FALLBACK,
             name: str = "", tally: Any = None) -> T:
        policy, upstreams, timer = self.policy, self.upstreams, self.timer
        tries = 0
        last: UpstreamError | None = None
        previous: str | None = None
        paused_for = math.inf
        for route in routes if strategy == FALLBACK else self.ordered(routes, strategy, name):
            deployment = route.provider.id
            state = upstreams[deployment]
            breaker = state.breaker
            if not breaker.admit():
                paused_for = min(paused_for, breaker.retry_in())
                continue
            failure = None
            for retry in range(policy.attempts):
                if tries:
                    if not self.budget.try_extra():
                        breaker.release()
                        if self.events is not None:
                            self.events.budget_exhausted(deployment)
                        raise last  # type: ignore[misc]  # tries > 0: a failure was kept
                    if retry:
                        self.sleep(policy.wait(retry, failure))
                        if self.events is not None:
                            self.events.retried(deployment)
                    elif self.events is not None and previous is not None:
                        self.events.fell_back(previous, deployment)
                else:
                    self.budget.first()
                tries += 1
                if tally is not None:
                    tally.route, tally.attempts = route, tries
                state.in_flight += 1
                started = timer()
                try:
                    result = attempt(route)
                except UpstreamError as exc:
                    state.in_flight -= 1
                    elapsed = (timer() - started) * 1000
                    failure = classify(exc)
                    if failure.unhealthy:
                        state.failed(exc.message, upstream_status(exc), elapsed)
                    else:
                        state.succeeded(elapsed)  # the provider answered: it works
                    if failure.breaks:
                        breaker.failed()
                    elif failure.answered:
                        breaker.succeeded()  # a 429 or a 4xx: the upstream works
                    else:
                        breaker.release()  # nothing was learnt of it: a trial goes back
                    if not failure.retry:
                        raise
                    last = exc
                    previous = deployment
                    if breaker.state is not CLOSED or policy.waits_too_long(failure):
                        break  # paused now, or asked for a longer pause than we wait: the next target
                    continue
                except BaseException:
                    state.in_flight -= 1
                    breaker.release()
                    raise
                state.succeeded((timer() - started) * 1000)
                breaker.succeeded()
                return result
        if last is not None:
            raise last
        retry_in = max(1, math.ceil(paused_for)) if paused_for != math.inf else 1
        names = name or ", ".join(route.provider.id for route in routes)
        raise ServiceUnavailable(
            f"Every upstream of {names} is paused after repeated failures (circuit open); retry in {retry_in}s.",
            code="circuit_open", headers={"Retry-After": str(retry_in)})
