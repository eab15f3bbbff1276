"""One model call: opened on the request's targets through the resilience layer, then read.

    calls = Calls(resilience, routes, strategy="fallback", name="")   # a request's targets (dispatch.py)
    opened = calls.open(endpoint, payload, stream=True)               # tries, retries, fallbacks
    opened.chunks() / opened.body; opened.close()                     # relay it, then let it go
    data = complete(calls, endpoint, payload, meter_for)              # non-stream -> parsed JSON
    for event in stream_events(calls, endpoint, payload, meter_for): ...  # stream -> parsed events

`open_response(route, ...)` is one try: the POST, and a provider's error answer raised as
`UpstreamStatus` (passed through; its Retry-After kept), a provider without the endpoint 501,
an unreachable one 502, a silent one 504. `open_once` adds what must be in hand before the
client gets its status line: a non-stream answer's whole body, a stream's first event (a stream
that fails or ends before it is a failed try, so it is retried and falls back like any other);
a file answer (`Endpoint.relays_bytes`: audio) only its headers, its body relayed as it comes.
`Calls.open` runs `open_once` through `Resilience.call` (app/resilience/caller.py): nothing has
reached the client while it tries. Once `opened` is handed on, a failure ends the stream with
one error event (app/streaming/relay.py), never a retry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

from app.chat.estimate import TextCount, estimated_usage, prompt_chars
from app.errors import UpstreamError, UpstreamStatus, UpstreamUnreachable
from app.streaming import sse
from app.upstream import sse as sse_reader

if TYPE_CHECKING:
    import requests

    from app.chat.endpoints import Endpoint
    from app.chat.usage import Meter
    from app.providers.routing import Route
    from app.resilience import Resilience

log = logging.getLogger("gateway.chat")

MeterFor = Callable[..., "Meter"]  # meter_for(route, stream=...) -> a Meter for one model call


def open_response(route: Route, endpoint: Endpoint, payload: dict[str, Any], *, stream: bool) -> requests.Response:
    """Send the request `endpoint` builds for `route` to its provider; the response, open for reading (one try)."""
    provider = route.provider
    call = endpoint.upstream_request(route, payload, stream=stream)
    response = provider.request(call.method, call.path, data=call.body, params=call.params, stream=True,
                                headers=call.headers)
    if response.status_code < 400:
        return response
    try:
        error_body = provider.read_body(response)
    finally:
        response.close()
    content_type = response.headers.get("Content-Type")
    retry_after = response.headers.get("Retry-After")
    if content_type and content_type.startswith(sse.MIMETYPE):  # an error must not look like a stream
        error = UpstreamError(f"Provider {provider.id} answered {response.status_code}: "
                              f"{error_body[:1000].decode(errors='replace')}", code="upstream_status")
        error.status = response.status_code
        error.upstream_status = response.status_code  # type: ignore[attr-defined]  # read by app/resilience/retry.py
    else:
        error = UpstreamStatus(response.status_code, error_body, content_type)
    if retry_after:
        error.headers["Retry-After"] = retry_after
    raise error


class Opened:
    """A provider's answer whose first bytes are in hand; nothing of it has reached the client yet.

    `body` is the whole answer (non-stream, or a stream request answered in one piece), else
    None and `chunks()` yields the stream from its start. `close()` closes the provider response
    and frees the call's slot (requests in flight); it runs once, whatever calls it.
    """

    __slots__ = ("_closed", "_done", "_head", "_rest", "body", "response", "route")

    def __init__(self, route: Route, response: requests.Response, *, body: bytes | None = None,
                 head: list[bytes] | None = None, rest: Iterator[bytes] | None = None):
        self.route = route
        self.response = response
        self.body = body
        self._head = head or []
        self._rest = rest
        self._done: Callable[[Route], None] | None = None
        self._closed = False

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def content_type(self) -> str:
        return self.response.headers.get("Content-Type") or "application/json"

    def chunks(self) -> Iterator[bytes]:
        return chain(self._head, self._rest) if self._rest is not None else iter(self._head)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.body is None:  # a whole body was read and its response closed already
                self.response.close()
        finally:
            if self._done is not None:
                self._done(self.route)


def open_once(route: Route, endpoint: Endpoint, payload: dict[str, Any], *, stream: bool) -> Opened:
    """One try, with what must be in hand before the client's status line (see the module docstring)."""
    response = open_response(route, endpoint, payload, stream=stream)
    provider = route.provider
    try:
        content_type = response.headers.get("Content-Type") or ""
        if endpoint.relays_bytes and not content_type.startswith("application/json"):
            return Opened(route, response, rest=provider.iter_body(response))  # a file (audio): never read whole
        if not stream or not content_type.startswith(sse.MIMETYPE):
            body = provider.read_body(response)
            response.close()
            return Opened(route, response, body=body)
        rest = provider.iter_body(response)
        return Opened(route, response, head=first_event(rest, provider.id), rest=rest)
    except BaseException:
        response.close()
        raise


def first_event(chunks: Iterator[bytes], provider_id: str) -> list[bytes]:
    """Read `chunks` up to the end of the stream's first event with data; the chunks read, as they came."""
    head: list[bytes] = []
    splitter = sse_reader.EventSplitter()
    for chunk in chunks:
        head.append(chunk)
        if len(head) == 1 and chunk.startswith(b"data:") and b"\n\n" in chunk:
            return head  # the usual first chunk: it starts with a whole event with data
        block = splitter.feed(chunk)
        if block and any(sse_reader.data_of(event) is not None for event in sse_reader.events_in(block)):
            return head
    raise UpstreamUnreachable(f"Provider {provider_id} ended its stream before its first event.")


class Calls:
    """A request's targets and the resilience layer that tries them; every model call of the request.

    After each `open`, `route` is the target that served (or was tried last) and `attempts` the
    upstream tries made, for the response headers and the access line.
    """

    __slots__ = ("attempts", "name", "resilience", "route", "routes", "strategy")

    def __init__(self, resilience: Resilience, routes: Sequence[Route], *, strategy: str = "fallback",
                 name: str = ""):
        self.resilience = resilience
        self.routes = routes
        self.strategy = strategy
        self.name = name
        self.route: Route | None = None
        self.attempts = 0

    def open(self, endpoint: Endpoint, payload: dict[str, Any], *, stream: bool) -> Opened:
        def attempt(route: Route) -> Opened:
            return open_once(route, endpoint, payload, stream=stream)

        opened = self.resilience.call(self.routes, attempt, strategy=self.strategy, name=self.name, tally=self)
        opened._done = self.resilience.done
        return opened


def complete(calls: Calls, endpoint: Endpoint, payload: dict[str, Any], meter_for: MeterFor) -> dict[str, Any]:
    """A non-stream call as parsed JSON (for the MCP loop); its usage (or an estimate) and tool calls metered."""
    opened = calls.open(endpoint, {**payload, "stream": False}, stream=False)
    opened.close()
    try:
        data = json.loads(opened.body or b"")
    except ValueError:
        raise UpstreamError(f"Provider {opened.route.provider.id} answered with something that is not JSON.") from None
    meter = meter_for(opened.route, stream=False)
    endpoint.usage.read(data, meter)
    if meter.usage is None and opened.status < 300:  # a provider that reports none: as passthrough does
        text = TextCount()
        text.feed(opened.body or b"")
        meter.usage = estimated_usage(prompt_chars(payload), text.chars)
    meter.finish()
    return data


def stream_events(calls: Calls, endpoint: Endpoint, payload: dict[str, Any],
                  meter_for: MeterFor) -> Iterator[dict[str, Any]]:
    """A streamed call as parsed events (for the MCP loop); `[DONE]` ends it.

    Usage is asked for where the endpoint needs it; the usage-only chunk is yielded like any
    event. Closing the iterator closes the provider response. Raises like `Calls.open` on the
    first `next()`; a mid-stream failure raises the provider's GatewayError. A stream that ends
    without usage (cut, or a provider that sends none) is charged an estimate, as the tap does.
    """
    opened = calls.open(endpoint, {**payload, "stream": True}, stream=True)
    meter = meter_for(opened.route, stream=True)
    text = TextCount()
    try:
        chunks = opened.chunks() if opened.body is None else iter((opened.body,))
        for data in sse_reader.iter_data(chunks):
            if data == sse_reader.DONE:
                break
            text.feed(data)
            try:
                event = json.loads(data)
            except ValueError:
                log.warning("provider %s sent an event that is not JSON", opened.route.provider.id)
                continue
            endpoint.usage.read(event, meter)
            yield event
    finally:
        opened.close()
        if meter.usage is None:  # cut short (the client hung up), or a provider that reports none
            meter.usage = estimated_usage(prompt_chars(payload), text.chars)
        meter.finish()
