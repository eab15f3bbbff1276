"""What one worker knows of each deployment: its circuit breaker, requests in flight, recent outcomes.

    upstreams = Upstreams(settings.circuit_breaker, on_change=...)
    state = upstreams["openai-b"]          # made on first use, one per deployment id
    state.in_flight += 1 / -= 1            # tries out now, and answers still being relayed
    state.succeeded(latency_ms) / state.failed(message, status)
    state.view(now)                        # JSON-able, for app/resilience/health.py

Outcomes are kept as samples `(wall time, latency ms, ok)`, the last SAMPLES per deployment, of
which the health view uses those of the last WINDOW seconds. `version` counts changes, so the
publisher (health.py) writes a worker's view only when something happened.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from app.config_file import CircuitBreakerSettings
from app.resilience.breaker import OPEN, CircuitBreaker

SAMPLES = 256  # per deployment per worker
WINDOW = 300.0  # seconds of samples the health view looks at


class DeploymentState:
    __slots__ = ("breaker", "check", "id", "in_flight", "last_error", "last_error_at", "last_ok_at", "samples",
                 "table", "wall")

    def __init__(self, table: Upstreams, deployment: str, breaker: CircuitBreaker, wall: Callable[[], float]):
        self.table = table
        self.id = deployment
        self.breaker = breaker
        self.wall = wall
        self.in_flight = 0
        self.samples: deque[tuple[float, float, bool]] = deque(maxlen=SAMPLES)
        self.last_error: dict[str, Any] | None = None
        self.last_error_at: float | None = None
        self.last_ok_at: float | None = None
        self.check: dict[str, Any] | None = None  # the last active check (health.py)

    def succeeded(self, latency_ms: float) -> None:
        now = self.wall()
        self.samples.append((now, latency_ms, True))
        self.last_ok_at = now
        self.table.version += 1

    def failed(self, message: str, status: int | None, latency_ms: float) -> None:
        now = self.wall()
        self.samples.append((now, latency_ms, False))
        self.last_error = {"message": message, "status": status}
        self.last_error_at = now
        self.table.version += 1

    def checked(self, ok: bool, latency_ms: float, error: str | None) -> None:
        self.check = {"at": self.wall(), "ok": ok, "latency_ms": round(latency_ms, 2), "error": error}
        self.table.version += 1

    def view(self, now: float) -> dict[str, Any]:
        breaker = self.breaker
        circuit = breaker.state
        if circuit == OPEN and breaker.retry_in() == 0:
            circuit = "half_open"  # the cooldown is over: the next request is its trial
        oldest = now - WINDOW
        return {
            "circuit": circuit, "circuit_retry_in": round(breaker.retry_in(), 3), "in_flight": self.in_flight,
            "last_error": self.last_error, "last_error_at": self.last_error_at, "last_ok_at": self.last_ok_at,
            "check": self.check,
            "samples": [[round(at, 3), round(ms, 2), ok] for at, ms, ok in self.samples if at >= oldest],
        }


class Upstreams(dict):
    """The worker's DeploymentStates by deployment id (made on first use)."""

    def __init__(self, breaker: CircuitBreakerSettings, *, on_change: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        super().__init__()
        self.settings = breaker
        self.on_change = on_change
        self.clock = clock
        self.wall = wall
        self.version = 0

    def __missing__(self, deployment: str) -> DeploymentState:
        breaker = CircuitBreaker(deployment, failures=self.settings.failures, cooldown=self.settings.cooldown,
                                 clock=self.clock, on_change=self._changed)
        state = self[deployment] = DeploymentState(self, deployment, breaker, self.wall)
        return state

    def _changed(self, deployment: str, circuit: str) -> None:
        self.version += 1
        if self.on_change is not None:
            self.on_change(deployment, circuit)

    def view(self) -> dict[str, Any]:
        now = self.wall()
        return {deployment: state.view(now) for deployment, state in self.items()}
