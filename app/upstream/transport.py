"""The one place where `requests` and `urllib3` meet the gateway.

`build_session` makes a provider's `requests.Session` (pool sized for a gevent worker's load);
`send` and `iter_body` turn the libraries' exceptions into `GatewayError`s, iteration of a
streamed body included:

    requests ConnectTimeout / ReadTimeout, urllib3 ReadTimeoutError  -> UpstreamTimeout    (504)
    requests ConnectionError, urllib3 ProtocolError, OSError         -> UpstreamUnreachable (502)
    any other requests / urllib3 error                               -> UpstreamError       (502)

When telemetry is on it puts an `UpstreamClock` in `upstream_clock` for each request; `send` and
`iter_body` then add the time they spend waiting for the provider to it. When it is off, the
cost is one context-variable lookup per call. Calls made in other greenlets or threads (a
concurrent fan-out) do not see the request's clock: wrap the request's own wait for them in
`waiting_for_providers()` instead.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from app.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable

READ_SIZE = 64 * 1024
_NO_PROXIES: dict[str, str] = {}


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


class _TlsAdapter(HTTPAdapter):
    def __init__(self, *, min_tls: ssl.TLSVersion, **kwargs: Any):
        self._min_tls = min_tls
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        context = ssl.create_default_context()
        context.minimum_version = self._min_tls
        kwargs["ssl_context"] = context
        super().init_poolmanager(*args, **kwargs)


def build_session(*, pools: int, pool_size: int, min_tls: str, disable_compression: bool) -> requests.Session:
    """A session for one provider. Environment proxies and .netrc are not consulted."""
    session = requests.Session()
    session.trust_env = False
    adapter = _TlsAdapter(
        min_tls=ssl.TLSVersion.TLSv1_3 if min_tls.upper() == "TLS13" else ssl.TLSVersion.TLSv1_2,
        pool_connections=pools, pool_maxsize=pool_size, pool_block=False, max_retries=0,
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if disable_compression:
        session.headers["Accept-Encoding"] = "identity"
    return session


def send(session: requests.Session, method: str, url: str, *, provider: str, headers: Mapping[str, str] | None = None,
         params: Any = None, data: Any = None, json: Any = None, stream: bool = True,
         timeout: Any = None) -> requests.Response:
    """Send one request through the session's adapter (its pool), failures as GatewayErrors naming
    the provider (never the URL's secrets).

    The request is prepared directly rather than through `Session.request`: the session's headers
    are the only session state the gateway uses, and skipping the merging of cookies, auth, hooks
    and environment settings saves about a fifth of the gateway's CPU per request. It also means a
    provider's cookies are never kept and replayed on another caller's request. No redirects.
    """
    clock = upstream_clock.get()
    started = time.perf_counter() if clock is not None else 0.0
    try:
        merged = CaseInsensitiveDict(session.headers)
        if headers:
            merged.update(headers)
        prepared = requests.PreparedRequest()
        prepared.prepare(method=method, url=url, headers={k: v for k, v in merged.items() if v is not None},
                         data=data, json=json, params=params)
        return session.get_adapter(prepared.url).send(prepared, stream=stream, timeout=timeout, verify=True,
                                                      cert=None, proxies=_NO_PROXIES)
    except (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout):
        raise UpstreamTimeout(f"Provider {provider} did not answer in time.") from None
    except requests.exceptions.ConnectionError:
        raise UpstreamUnreachable(f"Provider {provider} could not be reached.") from None
    except requests.exceptions.RequestException:
        raise UpstreamError(f"Request to provider {provider} failed.") from None
    finally:
        if clock is not None:
            clock.waited += time.perf_counter() - started


def iter_body(response: requests.Response, *, provider: str, decode: bool = True) -> Iterator[bytes]:
    """Yield the body as the provider sends it: each chunk as soon as it arrives, nothing buffered.

    `decode=False` yields the bytes exactly as sent (still gzip'd if the provider compressed them).
    """
    raw = response.raw
    if raw.chunked and raw.supports_chunked_reads():
        chunks = raw.read_chunked(decode_content=decode)
    else:
        chunks = iter(lambda: raw.read1(READ_SIZE, decode_content=decode), b"")
    clock = upstream_clock.get()
    if clock is not None:
        chunks = clock.timed(chunks)
    try:
        yield from chunks
    except urllib3.exceptions.ReadTimeoutError:
        raise UpstreamTimeout(f"Provider {provider} stopped sending before the response was complete.") from None
    except (urllib3.exceptions.ProtocolError, OSError):
        raise UpstreamUnreachable(f"Connection to provider {provider} was lost mid-response.") from None
    except urllib3.exceptions.HTTPError:
        raise UpstreamError(f"Provider {provider} sent a response that could not be read.") from None


def read_body(response: requests.Response, *, provider: str) -> bytes:
    """The whole body, with the same error mapping as `iter_body`."""
    return b"".join(iter_body(response, provider=provider))
