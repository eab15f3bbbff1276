"""WSGI middleware: when a response closes, settle the request's model calls.

    UsageRecorder(wsgi_app, settle)     inside the access log, so the access line sees what it sets

At the start of a request it opens a `Tally` (tally.py); when the response body is closed (a
stream's too, after its last byte) it calls `settle(environ, tally, outcome)`, which sets the
access line's facts and queues the ledger row (see `Accounts.settle`). Settling never raises into the server: a failure is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.accounts.tally import CURRENT, Tally

log = logging.getLogger("gateway.accounts")


@dataclass(slots=True)
class Outcome:
    started: datetime  # wall clock, UTC
    status: int
    latency_ms: float
    event_stream: bool


Settle = Callable[[dict[str, Any], Tally, Outcome], None]


class UsageRecorder:
    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], settle: Settle):
        self.wsgi_app = wsgi_app
        self.settle = settle

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = _Request(environ, self.settle)

        def recorded_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            request.status = status
            for name, value in headers:
                if name.lower() == "content-type" and value.startswith("text/event-stream"):
                    request.event_stream = True
            return start_response(status, headers, exc_info)

        try:
            body = self.wsgi_app(environ, recorded_start_response)
        except BaseException:
            request.finish()
            raise
        return _RecordedBody(body, request)


class _Request:
    __slots__ = ("environ", "event_stream", "settle", "started", "started_wall", "status", "tally", "token")

    def __init__(self, environ: dict[str, Any], settle: Settle):
        self.environ = environ
        self.settle = settle
        self.started = time.perf_counter()
        self.started_wall = datetime.now(UTC)
        self.status = "500"
        self.event_stream = False
        self.tally = Tally()
        self.token = CURRENT.set(self.tally)

    def finish(self) -> None:
        if self.token is None:
            return
        try:
            CURRENT.reset(self.token)
        except ValueError:  # closed in another context than it started in
            CURRENT.set(None)
        self.token = None
        try:
            status = int(self.status.split(" ", 1)[0])
        except ValueError:
            status = 500
        outcome = Outcome(self.started_wall, status, (time.perf_counter() - self.started) * 1000, self.event_stream)
        try:
            self.settle(self.environ, self.tally, outcome)
        except Exception:  # the response is out: a fault here must not break its close
            log.exception("settling a request's usage failed")


class _RecordedBody:
    __slots__ = ("body", "request")

    def __init__(self, body: Iterable[bytes], request: _Request):
        self.body = body
        self.request = request

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.request.finish()
