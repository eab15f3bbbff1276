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
stay true.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.errors import UpstreamError
from app.proxy import headers as proxy_headers
from app.proxy.body import request_body
from app.proxy.model_check import path_models, refuse_later_calls
from app.proxy.path import upstream_path
from app.signals import MODEL_KEY, PROVIDER_KEY

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
    close: Callable[[], None]  # closes the provider response: call it when the caller's response closes


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
                              headers=proxy_headers.to_provider(request.headers.items()), stream=True)
    has_body = request.method != "HEAD" and upstream.status_code not in (204, 304)
    return Forwarded(upstream.status_code, proxy_headers.to_caller(upstream.raw.headers.items()),
                     relay(target, upstream) if has_body else (), upstream.close)


def relay(provider: Provider, upstream: requests.Response) -> Iterator[bytes]:
    """The provider's body as it arrives. If the provider cuts it short, the caller's connection
    is cut too (never a clean end), so a truncated download or stream cannot pass as complete."""
    try:
        yield from provider.iter_body(upstream, decode=False)
    except UpstreamError as exc:
        log.warning("proxy: %s", exc.message, extra={"provider": provider.id})
        # gunicorn closes the client connection without ending the body, and logs this at debug
        raise ConnectionResetError(errno.ECONNRESET, exc.message) from None
