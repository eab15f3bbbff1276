"""Calling a provider's completion endpoints: routing, the upstream call, usage and tool calls.

The views in `app/api/chat.py` answer with `forward()`. The MCP agent loop (app/mcp/) builds on
the same parts:

    route = route_model(model, request.args.get("provider"))   # resolve, allow list, request facts
    check_images(route, messages)                               # ENABLE_VISION and the catalog
    meter = Meter.for_request(route, stream=...)                # usage / tool-call signals
    data = complete(route, payload, meter)                      # non-stream chat -> parsed JSON
    for event in stream_events(route, payload, meter): ...      # streamed chat -> parsed events
    sse_response(...) / sse.encode(...)                         # writing events (app.streaming)

The body goes upstream as the client sent it with only `model` rewritten (and, for streams,
`stream_options`, see `ask_for_usage`). Non-stream answers come back byte for byte; streams are
relayed event by event (`app.streaming.relay`). A provider's error status passes through with its
body (`UpstreamStatus`); an unreachable provider is 502, a silent one 504.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests
from flask import Flask, Response, current_app, has_app_context, request

from app import signals
from app.errors import InvalidRequest, Unsupported, UpstreamError, UpstreamStatus
from app.extensions import state
from app.providers.provider import Provider
from app.providers.routing import Route, resolve
from app.streaming import sse
from app.streaming.relay import relay, sse_response
from app.upstream import sse as sse_reader

log = logging.getLogger("gateway.completions")

_UPSTREAM_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
_UPSTREAM_STREAM_HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}
# A usage object (not `"usage": null`, which OpenAI puts in every chunk once usage is asked for).
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
# The usage object itself (its values nest one level: prompt_tokens_details and the like).
_USAGE_VALUE = re.compile(rb'"usage"\s*:\s*(\{(?:[^{}]|\{[^{}]*\})*\})')


@dataclass(frozen=True)
class Endpoint:
    """One of the OpenAI-style endpoints the gateway forwards."""

    name: str  # for messages: "chat completions", "completions", "embeddings"
    attr: str  # the ProviderSpec field holding the provider's path
    streams: bool
    has_messages: bool

    def path(self, provider: Provider) -> str:
        path = getattr(provider.spec, self.attr)
        if path is None:
            raise Unsupported(f"Provider {provider.id} has no {self.name} endpoint.", code="unsupported_endpoint")
        return path


CHAT = Endpoint("chat completions", "chat_endpoint", streams=True, has_messages=True)
COMPLETIONS = Endpoint("completions", "completions_endpoint", streams=True, has_messages=False)
EMBEDDINGS = Endpoint("embeddings", "embeddings_endpoint", streams=False, has_messages=False)


# -- routing -----------------------------------------------------------------------------------

def route_model(model: str, provider_param: str | None) -> Route:
    """Resolve the provider (400 unknown / unconfigured), record it for logs and metrics, check the
    allow/deny lists (403)."""
    gateway = state()
    route = resolve(model, provider_param, gateway.providers)
    environ = request.environ
    environ[signals.PROVIDER_KEY] = route.provider.id
    environ[signals.MODEL_KEY] = route.model
    gateway.model_policy.check(route.model_id)
    return route


def has_image(messages: Any) -> bool:
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    return True
    return False


def check_images(route: Route, messages: Any) -> None:
    """Images need ENABLE_VISION=true and a provider whose catalog entry supports vision (else 400)."""
    if not has_image(messages):
        return
    if not state().settings.enable_vision:
        raise InvalidRequest("Image content is disabled on this gateway: remove the image_url parts or set "
                             "ENABLE_VISION=true.", code="vision_disabled")
    if not route.provider.spec.supports_vision:
        raise InvalidRequest(f"Provider {route.provider.id} does not accept images: remove the image_url parts "
                             f"or choose a provider with vision.", code="vision_unsupported")


# -- usage and tool calls ----------------------------------------------------------------------

class Meter:
    """What one completion used and called, told to other features by signal (app.signals).

    `see(obj)` reads a response body or a stream chunk: it keeps the usage and sends
    `tool_called` for each named tool call. `finish()` sends `completion_usage` once, if usage
    was seen. Safe to call outside a request (it pushes an app context to send). Use one Meter per
    provider call (an agent loop makes one per iteration): it reports usage once.
    """

    __slots__ = ("_finished", "app", "model", "provider", "stream", "subject", "usage")

    def __init__(self, app: Flask, route: Route, *, subject: str | None, stream: bool):
        self.app = app
        self.provider = route.provider.id
        self.model = route.model
        self.subject = subject
        self.stream = stream
        self.usage: dict[str, Any] | None = None
        self._finished = False

    @classmethod
    def for_request(cls, route: Route, *, stream: bool) -> Meter:
        return cls(current_app._get_current_object(), route, subject=request.environ.get(signals.SUBJECT_KEY), stream=stream)

    def see(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        for choice in obj.get("choices") or ():
            part = (choice.get("message") or choice.get("delta")) if isinstance(choice, dict) else None
            calls = part.get("tool_calls") if isinstance(part, dict) else None
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                name = function.get("name") if isinstance(function, dict) else None
                if isinstance(name, str) and name:
                    self._send(signals.tool_called, provider=self.provider, model=self.model, tool_name=name,
                               tool_type="mcp" if name.startswith("mcp_") else "standard_tool_use")

    def read_body(self, raw: bytes) -> None:
        """`see` a whole response body, then `finish`. Only tool calls make it parse the whole body;
        usage alone is read from the last `"usage": {...}` (where providers put it)."""
        try:
            if b'"tool_calls"' in raw:
                self.see(json.loads(raw))
            elif (at := raw.rfind(b'"usage"')) >= 0:
                match = _USAGE_VALUE.match(raw, at)
                self.see({"usage": json.loads(match.group(1))} if match else json.loads(raw))
        except ValueError:
            pass  # not JSON: nothing to count
        self.finish()

    def finish(self) -> None:
        if self._finished or self.usage is None:
            return
        self._finished = True
        usage = dict(self.usage)
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            if not isinstance(usage.get(key), int):
                usage[key] = 0
        self._send(signals.completion_usage, provider=self.provider, model=self.model, usage=usage,
                   subject=self.subject, stream=self.stream)

    def _send(self, signal: Any, **kwargs: Any) -> None:
        if not signal.receivers:
            return
        try:
            if has_app_context():
                signal.send(self.app, **kwargs)
            else:
                with self.app.app_context():
                    signal.send(self.app, **kwargs)
        except Exception:  # a listener's bug must not break the completion
            log.exception("a %s listener failed", signal.name)


# -- the upstream call -------------------------------------------------------------------------

def upstream_body(route: Route, payload: dict[str, Any]) -> bytes:
    """The client's body with the provider's model name (nothing else changes)."""
    payload["model"] = route.model
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def ask_for_usage(provider: Provider, payload: dict[str, Any]) -> bool:
    """Ask a streaming provider for usage; True when the client did not ask (hide the usage chunk).

    Providers whose catalog entry rejects `stream_options` get none (usage is then what they send).
    """
    options = payload.get("stream_options")
    client_asked = isinstance(options, dict) and options.get("include_usage") is True
    if not provider.spec.accepts_stream_options:
        payload.pop("stream_options", None)
        return False
    payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return not client_asked


def post(route: Route, path: str, body: bytes, *, stream: bool) -> requests.Response:
    """POST to the provider; its response, open for reading. A status >= 400 raises UpstreamStatus."""
    provider = route.provider
    response = provider.request("POST", path, data=body, stream=True,
                                headers=_UPSTREAM_STREAM_HEADERS if stream else _UPSTREAM_HEADERS)
    if response.status_code >= 400:
        try:
            error_body = provider.read_body(response)
        finally:
            response.close()
        content_type = response.headers.get("Content-Type")
        if content_type and content_type.startswith(sse.MIMETYPE):  # an error must not look like a stream
            error = UpstreamError(f"Provider {provider.id} answered {response.status_code}: "
                                  f"{error_body[:1000].decode(errors='replace')}", code="upstream_status")
            error.status = response.status_code
            raise error
        raise UpstreamStatus(response.status_code, error_body, content_type)
    return response


def complete(route: Route, payload: dict[str, Any], meter: Meter | None = None) -> dict[str, Any]:
    """A non-stream chat completion as parsed JSON (for the MCP loop). Raises like `post`."""
    body = upstream_body(route, {**payload, "stream": False})
    response = post(route, CHAT.path(route.provider), body, stream=False)
    raw = route.provider.read_body(response)
    response.close()
    try:
        data = json.loads(raw)
    except ValueError:
        raise UpstreamError(f"Provider {route.provider.id} answered with something that is not JSON.") from None
    if meter is not None:
        meter.see(data)
        meter.finish()
    return data


def stream_events(route: Route, payload: dict[str, Any], meter: Meter | None = None) -> Iterator[dict[str, Any]]:
    """A streamed chat completion as parsed events (for the MCP loop); `[DONE]` ends it.

    Usage is asked for (see `ask_for_usage`); the usage-only chunk is yielded like any event.
    Closing the iterator closes the provider response. Raises like `post` before the first event;
    mid-stream failures raise the provider's GatewayError.
    """
    body_payload = {**payload, "stream": True}
    ask_for_usage(route.provider, body_payload)
    response = post(route, CHAT.path(route.provider), upstream_body(route, body_payload), stream=True)
    try:
        for data in sse_reader.iter_data(route.provider.iter_body(response)):
            if data == sse_reader.DONE:
                break
            try:
                event = json.loads(data)
            except ValueError:
                log.warning("provider %s sent an event that is not JSON", route.provider.id)
                continue
            if meter is not None:
                meter.see(event)
            yield event
    finally:
        response.close()
        if meter is not None:
            meter.finish()


# -- the passthrough views ---------------------------------------------------------------------

class _StreamTap:
    """Looks at the relayed blocks that may carry usage or tool calls; drops the usage-only chunk
    the client did not ask for; closes the provider response when the relay ends."""

    __slots__ = ("hide_usage_chunk", "meter", "response")

    def __init__(self, meter: Meter, hide_usage_chunk: bool, response: requests.Response):
        self.meter = meter
        self.hide_usage_chunk = hide_usage_chunk
        self.response = response

    def look(self, block: bytes) -> bytes:
        if not ((b'"usage"' in block and _USAGE_OBJECT.search(block))
                or (b'"tool_calls"' in block and b'"name"' in block)):
            return block  # the common case: nothing to read, relay as is
        kept, dropped = [], False
        for event in sse_reader.events_in(block):
            data = sse_reader.data_of(event)
            if data and data != sse_reader.DONE:
                try:
                    obj = json.loads(data)
                except ValueError:
                    obj = None
                self.meter.see(obj)
                if self.hide_usage_chunk and isinstance(obj, dict) and obj.get("choices") == [] and obj.get("usage"):
                    dropped = True
                    continue
            kept.append(event)
        return b"".join(kept) if dropped else block

    def close(self) -> None:
        self.response.close()
        self.meter.finish()


def forward(endpoint: Endpoint, payload: dict[str, Any]) -> Response:
    """Route a validated request, call the provider, and answer as it did (stream or not)."""
    route = route_model(payload["model"], request.args.get("provider"))
    path = endpoint.path(route.provider)
    if endpoint.has_messages:
        check_images(route, payload["messages"])
    stream = endpoint.streams and payload.get("stream") is True
    meter = Meter.for_request(route, stream=stream)
    provider = route.provider
    if stream:
        hide_usage_chunk = ask_for_usage(provider, payload)
        response = post(route, path, upstream_body(route, payload), stream=True)
        if (response.headers.get("Content-Type") or "").startswith(sse.MIMETYPE):
            tap = _StreamTap(meter, hide_usage_chunk, response)
            return sse_response(relay(provider.iter_body(response), close=tap.close, look=tap.look))
        meter.stream = False  # the provider answered in one piece: pass that on as it is
    else:
        response = post(route, path, upstream_body(route, payload), stream=False)
    try:
        raw = provider.read_body(response)
    finally:
        response.close()
    meter.read_body(raw)
    return Response(raw, status=response.status_code,
                    content_type=response.headers.get("Content-Type") or "application/json")
