"""The upstream clock: how long one request spent waiting for the servers it called.

When telemetry is on it puts an `UpstreamClock` in `upstream_clock` for each request;
`Upstream.send` and `Upstream.iter_body` (app.upstream.transport) add the time they spend
blocked on the server to it. When it is off, the cost is one context-variable lookup per call.
Calls made in other greenlets or threads (a concurrent fan-out) do not see the request's clock:
wrap the request's own wait for them in `waiting_for_providers()` instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class UpstreamClock:
    """Seconds one request spent waiting for providers (connect, send, headers, each body chunk)."""

    __slots__ = ("waited",)

    def __init__(self) -> None:
        self.waited = 0.0

    def timed(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """Yield `chunks`, adding the wait for each one (and for the end) to `waited`."""
        while True:
            started = time.perf_counter()
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            finally:
                self.waited += time.perf_counter() - started
            yield chunk


# One per greenlet (gevent gives each its own context); None when telemetry is off.
upstream_clock: ContextVar[UpstreamClock | None] = ContextVar("upstream_clock", default=None)


@contextmanager
def waiting_for_providers() -> Iterator[None]:
    """Count the block as time spent waiting for providers (e.g. waiting for a concurrent fan-out)."""
    clock = upstream_clock.get()
    started = time.perf_counter()
    try:
        yield
    finally:
        if clock is not None:
            clock.waited += time.perf_counter() - started
