"""The one place where `requests` and `urllib3` meet the gateway.

`build_session` makes a provider's `requests.Session` (pool sized for a gevent worker's load);
`send` and `iter_body` turn the libraries' exceptions into `GatewayError`s, iteration of a
streamed body included:

    requests ConnectTimeout / ReadTimeout, urllib3 ReadTimeoutError  -> UpstreamTimeout    (504)
    requests ConnectionError, urllib3 ProtocolError, OSError         -> UpstreamUnreachable (502)
    any other requests / urllib3 error                               -> UpstreamError       (502)
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from app.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable

READ_SIZE = 64 * 1024


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


def send(session: requests.Session, method: str, url: str, *, provider: str, **kwargs: Any) -> requests.Response:
    """session.request, with its failures as GatewayErrors naming the provider (never the URL's secrets)."""
    try:
        return session.request(method, url, allow_redirects=False, **kwargs)
    except (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout):
        raise UpstreamTimeout(f"Provider {provider} did not answer in time.") from None
    except requests.exceptions.ConnectionError:
        raise UpstreamUnreachable(f"Provider {provider} could not be reached.") from None
    except requests.exceptions.RequestException:
        raise UpstreamError(f"Request to provider {provider} failed.") from None


def iter_body(response: requests.Response, *, provider: str, decode: bool = True) -> Iterator[bytes]:
    """Yield the body as the provider sends it: each chunk as soon as it arrives, nothing buffered.

    `decode=False` yields the bytes exactly as sent (still gzip'd if the provider compressed them).
    """
    raw = response.raw
    try:
        if raw.chunked and raw.supports_chunked_reads():
            yield from raw.read_chunked(decode_content=decode)
        else:
            while chunk := raw.read1(READ_SIZE, decode_content=decode):
                yield chunk
    except urllib3.exceptions.ReadTimeoutError:
        raise UpstreamTimeout(f"Provider {provider} stopped sending before the response was complete.") from None
    except (urllib3.exceptions.ProtocolError, OSError):
        raise UpstreamUnreachable(f"Connection to provider {provider} was lost mid-response.") from None
    except urllib3.exceptions.HTTPError:
        raise UpstreamError(f"Provider {provider} sent a response that could not be read.") from None


def read_body(response: requests.Response, *, provider: str) -> bytes:
    """The whole body, with the same error mapping as `iter_body`."""
    return b"".join(iter_body(response, provider=provider))
