"""The one session factory: every `requests.Session` the gateway sends through is made here.

    upstream = build_upstream(settings, "provider openai", "https://api.openai.com/v1", headers=...)
    session = new_session(settings)          # what build_upstream uses; compress=False: identity bodies

What every session has:

- a pool sized for the load a gevent worker carries: urllib3 keeps up to `pool_size(settings)`
  connections per host (CLIENT_MAX_IDLE_CONNS_PER_HOST, at most CLIENT_MAX_IDLE_CONNS; 0, the
  default, means WORKER_CONNECTIONS), so a worker serving WORKER_CONNECTIONS concurrent calls to
  one provider reuses every connection instead of discarding the surplus ("Connection pool is
  full"). A call never waits for a free connection (`pool_block=False`) and is never retried;
- TLS at CLIENT_TLS_MIN_VERSION or newer, certificates verified;
- nothing from the environment at request time (`trust_env=False`): `.netrc` is never read and
  proxies are chosen once per target by `app.upstream.proxies` and passed with each send;
- no cookie jar filled from responses: a server's cookies are never kept or replayed;
- connections that report their socket to `app.upstream.deadline`, so an overall deadline can
  cut them in plain-thread mode.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from typing import Any

import requests
import urllib3.connection
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from app.config import Settings
from app.upstream.deadline import watch_connection
from app.upstream.proxies import ProxyRules
from app.upstream.transport import Limits, Timeouts, Upstream

# Connection pools (one per host) a session keeps: a provider, MCP server or issuer is one or two
# hosts, plus a proxy.
HOST_POOLS = 4


class _Watched:
    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        watch_connection(self)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        watch_connection(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


@functools.cache
def tls_context(min_version: str) -> ssl.SSLContext:
    """One context per process and minimum version (loading the CA store is the slow part)."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_3 if min_version.upper() == "TLS13" else ssl.TLSVersion.TLSv1_2
    return context


class GatewayAdapter(HTTPAdapter):
    """requests' adapter with the gateway's TLS context, watched connections and no cookies."""

    def __init__(self, *, tls: ssl.SSLContext, **kwargs: Any):
        self._tls = tls
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._tls
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        fresh = proxy not in self.proxy_manager
        proxy_kwargs.setdefault("ssl_context", self._tls)  # requests does not pass it on by itself
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if fresh:
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        """requests' own, less the cookie jar: nothing a server sets is kept."""
        response = requests.Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url.decode("utf-8") if isinstance(req.url, bytes) else req.url
        response.request = req
        response.connection = self
        return response


def pool_size(settings: Settings) -> int:
    """Connections kept per host: CLIENT_MAX_IDLE_CONNS_PER_HOST, at most CLIENT_MAX_IDLE_CONNS;
    0 (the default of both) means WORKER_CONNECTIONS."""
    per_host = settings.client_max_idle_conns_per_host or settings.worker_connections
    overall = settings.client_max_idle_conns or settings.worker_connections
    return max(1, min(per_host, overall))


def new_session(settings: Settings, *, compress: bool = True) -> requests.Session:
    """A session for one upstream; `compress=False` asks for uncompressed bodies."""
    session = requests.Session()
    session.trust_env = False
    adapter = GatewayAdapter(tls=tls_context(settings.client_tls_min_version), pool_connections=HOST_POOLS,
                             pool_maxsize=pool_size(settings), pool_block=False, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # only what `Upstream.iter_body` decodes itself, in bounded pieces
    session.headers["Accept-Encoding"] = "gzip, deflate" if compress else "identity"
    return session


def build_upstream(settings: Settings, name: str, base_url: str, *, timeouts: Timeouts | None = None,
                   headers: Mapping[str, str] | None = None, compress: bool = True,
                   rules: ProxyRules | None = None) -> Upstream:
    """An `Upstream` for `base_url`: a session from `new_session`, the proxy the environment names
    for it (`rules`, default: read now), and by default the client timeouts
    (CLIENT_RESPONSE_HEADER_TIMEOUT for connect + send + headers, CLIENT_TIMEOUT for each gap), and
    the bounds on what it may send (CLIENT_MAX_RESPONSE_BODY_SIZE, CLIENT_MAX_EVENT_SIZE)."""
    if timeouts is None:
        timeouts = Timeouts.for_clients(header_timeout=settings.client_response_header_timeout,
                                        gap=settings.client_timeout)
    return Upstream(name, base_url, new_session(settings, compress=compress), timeouts=timeouts,
                    rules=rules or ProxyRules.from_environ(), headers=headers,
                    limits=Limits(body=settings.client_max_response_body_size, event=settings.client_max_event_size))
