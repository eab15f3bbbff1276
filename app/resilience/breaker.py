"""A circuit breaker per deployment, per worker: stop calling an upstream that keeps failing.

    closed ──(`failures` consecutive failures)──> open ──(`cooldown` passed)──> half_open
      ^                                             ^                              │ one trial request
      └──────────────── the trial succeeds ─────────┼──────── the trial fails ─────┘

`admit()` is asked before each try: closed admits (one comparison, the common path); open
refuses until the cooldown has passed, then admits exactly one trial (half_open) and refuses the
others until its outcome is known. A trial whose outcome never comes (its request given up
before the call) is released with `release()`; one still out after another cooldown is
replaced. Failures are the ones app/resilience/retry.py says trip the breaker (connection
errors, timeouts, 500/502/503/504); any other answer counts as a success (the upstream works).

An alias skips a deployment whose circuit is open; a request with no other target gets 503
(`circuit_open`, with Retry-After) without calling it. Every change of state is reported to
`on_change(deployment, state)` (metrics, health). The clock is injectable (monotonic seconds).

Hand-written: pybreaker and circuitbreaker (the Python libraries) wrap one function call and
keep their own thread locks and listeners per call; the gateway needs the state asked for
before a try and fed with outcomes it has already classified, in a gevent worker where a plain
attribute check is the whole cost of the common path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    __slots__ = ("clock", "cooldown", "failures", "name", "on_change", "opened_at", "state", "threshold", "trial_at")

    def __init__(self, name: str, *, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[str, str], None] | None = None):
        self.name = name
        self.threshold = failures
        self.cooldown = cooldown
        self.clock = clock
        self.on_change = on_change
        self.state = CLOSED
        self.failures = 0  # consecutive
        self.opened_at = 0.0
        self.trial_at: float | None = None

    def _become(self, state: str) -> None:
        self.state = state
        if self.on_change is not None:
            self.on_change(self.name, state)

    def admit(self) -> bool:
        if self.state is CLOSED:
            return True
        now = self.clock()
        if self.state is OPEN:
            if now - self.opened_at < self.cooldown:
                return False
            self.trial_at = now
            self._become(HALF_OPEN)
            return True
        if self.trial_at is None or now - self.trial_at >= self.cooldown:  # no trial out, or a lost one
            self.trial_at = now
            return True
        return False

    def release(self) -> None:
        """An admitted try that was not made after all: another may take the trial."""
        if self.state is HALF_OPEN:
            self.trial_at = None

    def succeeded(self) -> None:
        self.failures = 0
        if self.state is not CLOSED:
            self.trial_at = None
            self._become(CLOSED)

    def failed(self) -> None:
        self.failures += 1
        if self.state is HALF_OPEN or (self.state is CLOSED and self.failures >= self.threshold):
            self.opened_at = self.clock()
            self.trial_at = None
            self._become(OPEN)

    def retry_in(self) -> float:
        """Seconds until this circuit admits a trial (0 when it admits now)."""
        if self.state is CLOSED:
            return 0.0
        now = self.clock()
        if self.state is OPEN:
            return max(self.cooldown - (now - self.opened_at), 0.0)
        return 0.0 if self.trial_at is None else max(self.cooldown - (now - self.trial_at), 0.0)
