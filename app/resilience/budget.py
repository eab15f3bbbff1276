"""The retry budget: how many extra upstream requests (retries and fallbacks) a worker may make.

Over a sliding minute, a worker makes at most `budget_min + budget x first tries` extra upstream
requests (defaults: 10 + 20%). While a provider is healthy the budget is never felt; during an
outage every client request still gets its first try, but retries stop once the budget is
spent, so an outage never becomes a retry storm (three tries per request would triple the load
on a provider that is already failing). `budget_min` lets a quiet gateway (a few requests a
minute, where 20% is less than one) still retry a provider's brief hiccup.

Counted in 60 one-second buckets (a ring): recording a first try is one increment, checking an
extra one sums the ring. The clock is injectable (monotonic seconds). One per worker; gevent
switches only at I/O, so no lock is needed.

Hand-written: the Finagle/Envoy-style budget this follows is a few lines, and the retry
libraries for Python (tenacity, urllib3's Retry, backoff) retry one call at a time with no
shared budget across calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable

WINDOW = 60  # seconds


class RetryBudget:
    __slots__ = ("_extras", "_firsts", "_seconds", "clock", "floor", "ratio")

    def __init__(self, ratio: float, floor: int, *, clock: Callable[[], float] = time.monotonic):
        self.ratio = ratio
        self.floor = floor
        self.clock = clock
        self._seconds = [-1] * WINDOW
        self._firsts = [0] * WINDOW
        self._extras = [0] * WINDOW

    def _slot(self, second: int) -> int:
        slot = second % WINDOW
        if self._seconds[slot] != second:
            self._seconds[slot] = second
            self._firsts[slot] = 0
            self._extras[slot] = 0
        return slot

    def first(self) -> None:
        """A client request's first upstream try (always allowed)."""
        self._firsts[self._slot(int(self.clock()))] += 1

    def try_extra(self) -> bool:
        """Spend one extra upstream request if the budget allows it."""
        second = int(self.clock())
        slot = self._slot(second)
        oldest = second - WINDOW + 1
        firsts = extras = 0
        for index, stamp in enumerate(self._seconds):
            if stamp >= oldest:
                firsts += self._firsts[index]
                extras += self._extras[index]
        if extras >= self.floor + self.ratio * firsts:
            return False
        self._extras[slot] += 1
        return True

    def spent(self) -> tuple[int, int]:
        """(first tries, extra requests) over the last minute."""
        oldest = int(self.clock()) - WINDOW + 1
        live = [i for i, stamp in enumerate(self._seconds) if stamp >= oldest]
        return sum(self._firsts[i] for i in live), sum(self._extras[i] for i in live)
