"""The resilience parts on their own, with an injected clock and sleep (no real waiting, no network):
the circuit breaker's states, the retry budget's sliding minute, the waits, and the tries of one
call over its targets. The live tests (test_live_*.py) show the same through the real gateway."""

from __future__ import annotations

import pytest

from app.config_file import CircuitBreakerSettings, RetrySettings
from app.errors import ServiceUnavailable, UpstreamStatus, UpstreamTimeout, UpstreamUnreachable
from app.resilience.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from app.resilience.budget import RetryBudget
from app.resilience.caller import Resilience, Tally
from app.resilience.retry import RetryPolicy, classify, retry_after_seconds
from app.resilience.state import Upstreams


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeProvider:
    def __init__(self, pid: str) -> None:
        self.id = pid


class FakeRoute:
    def __init__(self, pid: str, model: str = "m") -> None:
        self.provider = FakeProvider(pid)
        self.model = model


def status(code: int, retry_after: str | None = None) -> UpstreamStatus:
    error = UpstreamStatus(code, b"{}", "application/json")
    if retry_after is not None:
        error.headers["Retry-After"] = retry_after
    return error


# -- the breaker --------------------------------------------------------------------------------------

def test_the_breaker_opens_after_n_failures_then_admits_one_trial_after_the_cooldown():
    clock, changes = Clock(), []
    breaker = CircuitBreaker("b", failures=3, cooldown=30, clock=clock, on_change=lambda name, s: changes.append(s))
    for _ in range(2):
        breaker.failed()
    assert breaker.state == CLOSED and breaker.admit()
    breaker.failed()
    assert breaker.state == OPEN and not breaker.admit()
    assert breaker.retry_in() == 30
    clock.now += 29.9
    assert not breaker.admit()
    clock.now += 0.1
    assert breaker.admit() and breaker.state == HALF_OPEN  # the one trial
    assert not breaker.admit()  # the others wait for its outcome
    breaker.failed()  # the trial failed: open again for a whole cooldown
    assert breaker.state == OPEN and not breaker.admit()
    clock.now += 30
    assert breaker.admit()
    breaker.succeeded()
    assert breaker.state == CLOSED and breaker.failures == 0
    assert changes == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_a_trial_that_was_not_made_is_given_back_and_a_lost_one_replaced():
    clock = Clock()
    breaker = CircuitBreaker("b", failures=1, cooldown=10, clock=clock)
    breaker.failed()
    clock.now += 10
    assert breaker.admit()
    breaker.release()
    assert breaker.admit()  # released: the next request takes the trial
    assert not breaker.admit()
    clock.now += 10  # its outcome never came
    assert breaker.admit()


def test_a_success_resets_the_count_of_consecutive_failures():
    breaker = CircuitBreaker("b", failures=2, cooldown=10, clock=Clock())
    breaker.failed()
    breaker.succeeded()
    breaker.failed()
    assert breaker.state == CLOSED


# -- the budget ------------------------------------------------------------------------------------

def test_the_budget_allows_a_floor_plus_a_share_of_first_tries_over_a_sliding_minute():
    clock = Clock()
    budget = RetryBudget(0.2, 2, clock=clock)
    assert [budget.try_extra() for _ in range(3)] == [True, True, False]  # the floor, with no traffic
    for _ in range(10):
        budget.first()
    assert [budget.try_extra() for _ in range(3)] == [True, True, False]  # 2 + 20% of 10 = 4 in all
    clock.now += 59
    assert not budget.try_extra()  # still the same minute
    clock.now += 1  # the first second's tries leave the window
    assert budget.try_extra() and budget.spent() == (0, 1)


# -- waits ------------------------------------------------------------------------------------------

def test_waits_double_with_jitter_up_to_the_cap():
    policy = RetryPolicy(RetrySettings(backoff=0.25, max_backoff=1.0), random=lambda: 1.0)
    failure = classify(status(503))
    assert [policy.wait(n, failure) for n in (1, 2, 3, 4)] == [0.25, 0.5, 1.0, 1.0]
    low = RetryPolicy(RetrySettings(backoff=0.25, max_backoff=1.0), random=lambda: 0.0)
    assert low.wait(1, failure) == 0.125  # equal jitter: the upper half


def test_retry_after_replaces_the_backoff_up_to_the_cap():
    policy = RetryPolicy(RetrySettings(max_retry_after=10))
    assert policy.wait(1, classify(status(429, "1"))) == 1.0
    assert policy.waits_too_long(classify(status(429, "11")))
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None


@pytest.mark.parametrize("error,retried,breaks", [
    (UpstreamUnreachable("x"), True, True), (UpstreamTimeout("x"), True, True),
    (status(500), True, True), (status(502), True, True), (status(503), True, True), (status(504), True, True),
    (status(429), True, False), (status(400), False, False), (status(401), False, False),
    (status(404), False, False), (status(422), False, False),
])
def test_what_is_retried(error, retried, breaks):
    failure = classify(error)
    assert (failure.retry, failure.breaks) == (retried, breaks)


# -- one call over its targets ------------------------------------------------------------------------

def resilience(clock: Clock, **retry) -> Resilience:
    settings = RetrySettings(**{"backoff": 0.25, "budget_min": 100, **retry})
    upstreams = Upstreams(CircuitBreakerSettings(failures=3, cooldown=30), clock=clock, wall=clock)
    return Resilience(settings, upstreams, sleep=clock.sleep, random=lambda: 1.0, clock=clock, timer=clock)


def scripted(outcomes: dict[str, list]):
    """attempt(route): pops the next outcome of its deployment: an exception is raised, else returned."""
    tried = []

    def attempt(route):
        tried.append(route.provider.id)
        outcome = outcomes[route.provider.id].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return attempt, tried


def test_a_503_then_a_success_is_two_tries_with_a_backoff_between():
    clock = Clock()
    attempt, tried = scripted({"a": [status(503), "ok"]})
    tally = Tally()
    assert resilience(clock).call([FakeRoute("a")], attempt, tally=tally) == "ok"
    assert tried == ["a", "a"] and tally.attempts == 2 and clock.now == 1000.25


def test_other_4xx_are_never_retried():
    attempt, tried = scripted({"a": [status(400)], "b": ["ok"]})
    with pytest.raises(UpstreamStatus):
        resilience(Clock()).call([FakeRoute("a"), FakeRoute("b")], attempt)
    assert tried == ["a"]


def test_an_alias_falls_back_after_its_first_targets_tries():
    attempt, tried = scripted({"a": [UpstreamUnreachable("down")] * 3, "b": ["ok"]})
    tally = Tally()
    assert resilience(Clock()).call([FakeRoute("a"), FakeRoute("b")], attempt, tally=tally) == "ok"
    assert tried == ["a", "a", "a", "b"] and tally.route.provider.id == "b" and tally.attempts == 4


def test_a_long_retry_after_moves_on_to_the_next_target_at_once():
    clock = Clock()
    attempt, tried = scripted({"a": [status(429, "60")], "b": ["ok"]})
    assert resilience(clock).call([FakeRoute("a"), FakeRoute("b")], attempt) == "ok"
    assert tried == ["a", "b"] and clock.now == 1000.0


def test_an_open_circuit_is_skipped_and_every_target_paused_is_503():
    clock = Clock()
    layer = resilience(clock, attempts=1)
    routes = [FakeRoute("a"), FakeRoute("b")]
    attempt, tried = scripted({"a": [UpstreamTimeout("slow")] * 3, "b": ["ok"] * 10})
    for _ in range(3):
        assert layer.call(routes, attempt) == "ok"
    assert tried == ["a", "b"] * 3
    tried.clear()
    assert layer.call(routes, attempt) == "ok"
    assert tried == ["b"]  # a's circuit is open
    with pytest.raises(ServiceUnavailable) as info:
        layer.call([routes[0]], attempt)
    assert info.value.code == "circuit_open" and info.value.headers["Retry-After"] == "30"


def test_round_robin_and_least_busy_orders():
    layer = resilience(Clock())
    routes = [FakeRoute("a"), FakeRoute("b"), FakeRoute("c")]
    firsts = [layer.ordered(routes, "round_robin", "x")[0].provider.id for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]
    layer.upstreams["a"].in_flight = 2
    layer.upstreams["b"].in_flight = 1
    assert [r.provider.id for r in layer.ordered(routes, "least_busy", "y")] == ["c", "b", "a"]


def test_the_budget_stops_retries_under_a_total_outage():
    clock = Clock()
    layer = resilience(clock, budget_min=5, budget=0.2, attempts=3)
    layer.upstreams.settings = CircuitBreakerSettings(failures=10_000, cooldown=30)  # keep the breaker out of it
    calls = 0

    def attempt(route):
        nonlocal calls
        calls += 1
        raise status(503)

    for _ in range(50):
        with pytest.raises(UpstreamStatus):
            layer.call([FakeRoute("dead")], attempt)
    assert calls == 50 + 5 + 10  # first tries, the floor, 20% of 50


def test_in_flight_counts_until_the_answer_is_done():
    layer = resilience(Clock())
    route = FakeRoute("a")
    layer.call([route], lambda r: "ok")
    assert layer.upstreams["a"].in_flight == 1
    layer.done(route)
    assert layer.upstreams["a"].in_flight == 0
