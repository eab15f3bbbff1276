"""The proxied call: the caller's request to the provider, and the provider's answer back.

    forwarded = forward(providers, policy, "openai", request, body_limit=...)
    # -> Forwarded(status, headers, body, close): the view sends it as it comes

In order, each refusal before any connection is made: the path must stay inside the provider
(`path.py`, 400); the provider must be known and configured (400); while a model list is set, no
write to a files or batches path (`model_check.py`, 403); the body is read only as far as the
model check needs (`body.py`, 413; 403 for a body whose model cannot be read while a list is
set) and the models the body and the path name must pass ALLOWED_MODELS / DISALLOWED_MODELS
(403). The request facts (provider, model) are recorded for logs and metrics.
Then the provider is called with the caller's headers less the ones that must not cross
(`headers.py`) and the provider's credential (`Provider.request`, which maps failures to
502/504). Its status, headers and body come back as it sent them: the body chunk by chunk as it
arrives (an SSE stream event by event), undecoded, so `Content-Length` and `Content-Encoding`
stay true. The answer to a POST is read for usage as it passes (`usage.py`), and the call is
charged when the caller's response closes, like any model call (`completion_usage`).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from flask import current_app

from app.chat.estimate import prompt_chars
from app.chat.usage import Meter
from app.errors import UpstreamError
from app.providers.routing import Route
from app.proxy import headers as proxy_headers
from app.proxy.body import request_body
from app.proxy.model_check import path_models, refuse_later_calls
from app.proxy.path import upstream_path
from app.proxy.usage import ProxyUsage
from app.signals import MODEL_KEY, PROVIDER_KEY, SUBJECT_KEY

if TYPE_CHECKING:
    import requests
    from werkzeug.wrappers import Request

    from app.providers.provider import Provider, Providers
    from app.providers.routing import ModelPolicy

log = logging.getLogger("gateway.proxy")


@dataclass(frozen=True, slots=True)
class Forwarded:
    status: int
    headers: list[tuple[str, str]]
    body: Iterable[bytes]
    close: Callable[[], None]  # closes the provider response (a body closes it itself): call it when the
    # caller's response closes


def forward(providers: Providers, policy: ModelPolicy, provider_id: str, request: Request, *,
            body_limit: int) -> Forwarded:
    environ = request.environ
    # the route's `tail` is percent-decoded (a `%2f` already looks like `/`): the raw target is re-read
    path = upstream_path(environ, provider_id)
    target = providers.lookup(provider_id)
    environ[PROVIDER_KEY] = target.id
    target.require_configured()

    check = policy.active
    if check:
        refuse_later_calls(request.method, path)
    body = request_body(request.stream, length=request.content_length, content_type=request.content_type or "",
                        content_encoding=request.headers.get("Content-Encoding", ""),
                        chunked="chunked" in request.headers.get("Transfer-Encoding", "").lower(), limit=body_limit,
                        check=check)
    models = [body.model] if body.model else []
    models += path_models(path)
    for model in models:
        policy.check(f"{target.id}/{model}")
    if models:
        environ[MODEL_KEY] = models[0]

    query = environ.get("QUERY_STRING")
    upstream = target.request(request.method, f"{path}?{query}" if query else path, data=body.data,
                              headers=proxy_headers.to_provider(request.headers.items(), identity=bool(models)),
                              stream=True)
    has_body = request.method != "HEAD" and upstream.status_code not in (204, 304)
    usage = None
    if request.method == "POST":  # a model call is a POST: its answer is read for usage as it passes
        meter = Meter(current_app._get_current_object(), Route(target, models[0] if models else "unknown"),
                      subject=environ.get(SUBJECT_KEY), stream=_event_stream(upstream))
        usage = ProxyUsage(meter, prompt_chars=prompt_chars(body.payload) if body.payload else 0,
                           model_call=bool(models), answer=upstream)
    close = partial(_close, upstream, usage)
    return Forwarded(upstream.status_code, proxy_headers.to_caller(upstream.raw.headers.items()),
                     Relayed(relay(target, upstream, usage), close) if has_body else (), close)


class Relayed:
    """The body of the caller's response. werkzeug hands a `direct_passthrough` body to the server
    as it is (the response's `call_on_close` callbacks never run then), and the server closes
    what it iterated, finished or not: so this body's `close` is the one that closes the
    provider's response and charges the call."""

    __slots__ = ("_chunks", "_close")

    def __init__(self, chunks: Iterator[bytes], close: Callable[[], None]):
        self._chunks = chunks
        self._close = close

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        try:
            self._chunks.close()
        finally:
            self._close()


def _event_stream(upstream: requests.Response) -> bool:
    return upstream.headers.get("Content-Type", "").lower().startswith("text/event-stream")


def _close(upstream: requests.Response, usage: ProxyUsage | None) -> None:
    """When the caller's response closes (complete, or the caller hung up): the provider's response
    goes, and the call is charged what it used (an estimate when the usage never came). Twice is
    the same as once."""
    upstream.close()
    if usage is not None:
        usage.finish()


def relay(provider: Provider, upstream: requests.Response, usage: ProxyUsage | None = None) -> Iterator[bytes]:
    """The provider's body as it arrives. If the provider cuts it short, the caller's connection
    is cut too (never a clean end), so a truncated download or stream cannot pass as complete."""
    try:
        if usage is None:
            yield from provider.iter_body(upstream, decode=False)
            return
        feed = usage.feed
        for chunk in provider.iter_body(upstream, decode=False):
            feed(chunk)
            yield chunk
    except UpstreamError as exc:
        log.warning("proxy: %s", exc.message, extra={"provider": provider.id})
        # gunicorn closes the client connection without ending the body, and logs this at debug
        raise ConnectionResetError(errno.ECONNRESET, exc.message) from None
