"""WSGI middleware: times every request (but the public routes: GET /health) and records it when the body is closed.

What is measured, honestly:

- `started` is when this, the outermost middleware, receives the request from gunicorn. gunicorn
  records no accept time, so the wait in the kernel's accept queue and the reading of the
  request line and headers are not included; time the request's greenlet spends waiting for the
  event loop (other requests using the CPU) while inside the app is.
- The upstream wait is what `transport.send` and `transport.iter_body` spent blocked on a
  provider (connect, send, response headers, every body chunk), added up in the request's
  `UpstreamClock`. Tool calls to MCP servers are not provider waits and count as gateway time;
  so do waits in other greenlets unless the request wraps its wait for them in
  `transport.waiting_for_providers()`. The clock cannot tell a provider's slowness from the
  event loop being busy when the bytes arrive: that wake-up delay counts as upstream wait.
- The gateway's own time is the wall time until the body is closed minus the upstream wait. For
  a stream that includes the time spent handing chunks to the client's socket.
- `Server-Timing: gateway;dur=.., upstream;dur=..` goes on responses whose body is complete
  when the headers leave (a Content-Length, not an event stream), measured at that moment. A
  proxied body relayed as it arrives keeps the provider's Content-Length: its `upstream` is then
  the wait for the provider's headers only.
  Streams get no Server-Timing: their headers leave before the durations are known.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from app.public_routes import is_public
from app.signals import MODEL_KEY, PROVIDER_KEY
from app.telemetry.metrics import Metrics
from app.upstream.transport import UpstreamClock, upstream_clock

log = logging.getLogger("gateway.telemetry")

FLASK_REQUEST_KEY = "werkzeug.request"  # where werkzeug's Request (Flask's, with its url_rule) puts itself
UNMATCHED = "unmatched"


class RequestObserver:
    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], metrics: Metrics):
        self.wsgi_app = wsgi_app
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if is_public(environ.get("PATH_INFO")):  # GET /health (app.public_routes)
            return self.wsgi_app(environ, start_response)
        return _Observation(self.metrics, environ).run(self.wsgi_app, start_response)


class _Observation:
    __slots__ = ("clock", "environ", "finished", "first_byte", "metrics", "route", "started", "status", "stream")

    def __init__(self, metrics: Metrics, environ: dict[str, Any]):
        self.metrics = metrics
        self.environ = environ
        self.started = time.perf_counter()
        self.clock = UpstreamClock()
        self.status = "500"
        self.route = UNMATCHED
        self.stream = False
        self.first_byte = 0.0
        self.finished = False

    def run(self, wsgi_app: Callable[..., Iterable[bytes]], start_response: Callable[..., Any]) -> Iterable[bytes]:
        upstream_clock.set(self.clock)

        def observed_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            self.status = status
            self.route = matched_route(self.environ)  # Flask's request is still in the environ (not once it is closed)
            if _body_complete(headers):
                headers.append(("Server-Timing", self.server_timing()))
            else:
                self.stream = True
            return start_response(status, headers, exc_info)

        try:
            body = wsgi_app(self.environ, observed_start_response)
        except BaseException:
            self.finish()
            raise
        return _ObservedBody(body, self)

    def server_timing(self) -> str:
        upstream = self.clock.waited
        gateway = time.perf_counter() - self.started - upstream
        if upstream:
            return f"gateway;dur={gateway * 1000:.1f}, upstream;dur={upstream * 1000:.1f}"
        return f"gateway;dur={gateway * 1000:.1f}"

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        upstream_clock.set(None)
        try:
            self.record(time.perf_counter())
        except Exception:  # the response is already out; a metrics fault must not break its close
            log.exception("recording request metrics failed")

    def record(self, ended: float) -> None:
        elapsed_ms = (ended - self.started) * 1000
        environ = self.environ
        method = environ.get("REQUEST_METHOD", "")
        route = self.route
        metrics = self.metrics
        metrics.gateway_overhead_by[method, route].observe(max(elapsed_ms - self.clock.waited * 1000, 0.0))
        provider = environ.get(PROVIDER_KEY)
        if not provider:
            return
        metrics.responses_by[provider, method, route, self.status[:3]].inc()
        metrics.request_duration_by[provider, method, route].observe(elapsed_ms)
        if self.stream and self.first_byte:
            metrics.time_to_first_token_by[provider, metrics.models(provider, environ.get(MODEL_KEY))].observe(
                (self.first_byte - self.started) * 1000)


class _ObservedBody:
    """The response body: records the request when closed; for a stream, notes its first byte."""

    __slots__ = ("body", "observation")

    def __init__(self, body: Iterable[bytes], observation: _Observation):
        self.body = body
        self.observation = observation

    def __iter__(self) -> Iterator[bytes]:
        return self._stream() if self.observation.stream else iter(self.body)

    def _stream(self) -> Iterator[bytes]:
        chunks = iter(self.body)
        for chunk in chunks:
            if chunk:
                self.observation.first_byte = time.perf_counter()
                yield chunk
                break
            yield chunk
        yield from chunks

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.observation.finish()


def _body_complete(headers: list[tuple[str, str]]) -> bool:
    length = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == "content-length":
            length = True
        elif lowered == "content-type" and value.startswith("text/event-stream"):
            return False
    return length


def matched_route(environ: dict[str, Any]) -> str:
    """The rule of the route Flask matched (`/v1/chat/completions`), read off the request it keeps in
    the environ while it serves it; `unmatched` for a path no route has."""
    rule = getattr(environ.get(FLASK_REQUEST_KEY), "url_rule", None)
    return rule.rule if rule is not None else UNMATCHED
