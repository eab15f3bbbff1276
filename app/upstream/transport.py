"""One server the gateway calls (`Upstream`), and the one place `requests`/`urllib3` errors
become `GatewayError`s.

    upstream = Upstream("provider openai", "https://api.openai.com/v1", new_session(settings),
                        timeouts=Timeouts.from_settings(settings), proxies=rules.proxies_for(base))
    response = upstream.send("POST", upstream.base_url + "/chat/completions", headers=..., data=body)
    for chunk in upstream.iter_body(response): ...          # or upstream.read_body(response)

Everything fixed about the server (its session and pool, its proxy, its timeouts, the headers
added to every call) is decided when the `Upstream` is built, at start-up; a call only merges
its own headers and sends. The exception map, for sending and for reading the body alike:

    the header deadline ran out (Timeouts.headers)                   -> UpstreamTimeout     (504)
    requests ConnectTimeout / ReadTimeout, urllib3 ReadTimeoutError  -> UpstreamTimeout     (504)
    requests ProxyError (the proxy refused or failed)                -> UpstreamUnreachable (502)
    requests ConnectionError, urllib3 ProtocolError, OSError         -> UpstreamUnreachable (502)
    any other requests / urllib3 error                               -> UpstreamError       (502)

Messages name the upstream ("Provider openai could not be reached."), never its URL, which may
carry a secret. Callers with their own error classes (the MCP client) build on this map.

The request is prepared directly rather than through `Session.request`: the session's headers
are the only session state the gateway uses, and skipping the merging of cookies, auth, hooks
and environment settings saves a fifth of the gateway's CPU per request. A URL under the base
made only of characters requests would leave as they are (the usual case) skips URL parsing too.
No redirects are followed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import requests
import urllib3
import urllib3.exceptions
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity

from app.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from app.upstream.clock import UpstreamClock, upstream_clock, waiting_for_providers
from app.upstream.deadline import Deadline
from app.upstream.proxies import ProxyRules

__all__ = ["READ_SIZE", "Timeouts", "Upstream", "UpstreamClock", "canonical_url", "upstream_clock",
           "waiting_for_providers"]

READ_SIZE = 64 * 1024
# A path and query that `PreparedRequest.prepare_url` would send exactly as written.
_PLAIN_TAIL = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,/:;=?@]*")
_NO_BODY_METHODS = frozenset({"GET", "HEAD"})


class Timeouts:
    """How long a call may wait, in seconds (None: no bound).

    connect   each connection attempt (TCP connect, plus the TLS handshake)
    gap       the longest silence while waiting for bytes: the headers, then each body chunk
    headers   everything up to the response headers: connect + send + headers, as one bound
    """

    __slots__ = ("connect", "gap", "headers", "urllib3")

    def __init__(self, *, connect: float | None, gap: float | None, headers: float | None):
        self.connect = connect or None
        self.gap = gap or None
        self.headers = headers or None
        self.urllib3 = urllib3.Timeout(connect=self.connect, read=self.gap)

    def __repr__(self) -> str:
        return f"Timeouts(connect={self.connect}, gap={self.gap}, headers={self.headers})"

    @classmethod
    def for_clients(cls, *, header_timeout: float, gap: float) -> Timeouts:
        """CLIENT_RESPONSE_HEADER_TIMEOUT bounds connect + send + headers; CLIENT_TIMEOUT each gap."""
        connect = min(t for t in (header_timeout, gap) if t) if header_timeout or gap else None
        return cls(connect=connect, gap=gap, headers=header_timeout)


def canonical_url(url: str) -> str:
    """`url` as requests would send it (quoted, normalised host), without a trailing `/`."""
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url.rstrip("/"), None)
    except (requests.exceptions.RequestException, ValueError):
        return url.rstrip("/")  # unusable: every call fails with a clear 502, the worker lives on
    return prepared.url.rstrip("/")


class Upstream:
    """One server: its session, proxy, timeouts and fixed headers; `send` / `iter_body` / `read_body`."""

    __slots__ = ("_adapter", "_defaults", "_fixed", "_late", "_unusable", "base_url", "name", "proxies", "rules",
                 "session", "subject", "timeouts")

    def __init__(self, name: str, base_url: str, session: requests.Session, *, timeouts: Timeouts,
                 proxies: Mapping[str, str] | None = None, rules: ProxyRules | None = None,
                 headers: Mapping[str, str] | None = None):
        """`name` is how messages call it ("provider openai"); `headers` are added to every call,
        over the caller's (credentials); `rules` (ProxyRules) choose the proxy of a URL outside
        `base_url`."""
        self.name = name
        self.subject = name[:1].upper() + name[1:]
        self.base_url = canonical_url(base_url)
        self.session = session
        self.timeouts = timeouts
        self.rules = rules
        self.proxies = dict(proxies) if proxies is not None else (rules.proxies_for(self.base_url) if rules else {})
        self._adapter = session.get_adapter(self.base_url)
        self._defaults = CaseInsensitiveDict(session.headers)
        fixed = CaseInsensitiveDict(headers or {})
        self._unusable: str | None = None
        try:
            for item in fixed.items():
                check_header_validity(item)
        except requests.exceptions.InvalidHeader:
            # e.g. a key with a line break: every call fails clearly, the worker lives on
            self._unusable = f"Request to {name} failed: its credential cannot be sent as an HTTP header."
            fixed = CaseInsensitiveDict()
        self._fixed = fixed
        self._late = self._late_message(timeouts)

    def _late_message(self, timeouts: Timeouts) -> str:
        if not timeouts.headers:
            return ""
        return f"{self.subject} did not send its response headers within {timeouts.headers:g}s."

    def __repr__(self) -> str:
        return f"Upstream({self.name!r}, proxied={bool(self.proxies)})"

    # -- sending ------------------------------------------------------------------------------
    def send(self, method: str, url: str, *, headers: Mapping[str, str] | None = None, params: Any = None,
             data: Any = None, json: Any = None, timeouts: Timeouts | None = None) -> requests.Response:
        """Send one request and return once the response headers are in (the body is not read)."""
        if self._unusable is not None:
            raise UpstreamError(self._unusable)
        if timeouts is None:
            timeouts, late = self.timeouts, self._late
        else:
            late = self._late_message(timeouts)
        clock = upstream_clock.get()
        started = time.perf_counter() if clock is not None else 0.0
        try:
            prepared, proxies = self._prepare(method, url, headers, params, data, json)
            with Deadline(timeouts.headers, late):
                try:
                    return self._adapter.send(prepared, stream=True, timeout=timeouts.urllib3, verify=True,
                                              cert=None, proxies=proxies)
                except requests.exceptions.ProxyError:
                    raise UpstreamUnreachable(f"{self.subject} could not be reached through the proxy.") from None
                except (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout):
                    raise UpstreamTimeout(f"{self.subject} did not answer in time.") from None
                except requests.exceptions.ConnectionError:
                    raise UpstreamUnreachable(f"{self.subject} could not be reached.") from None
                except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError):
                    raise UpstreamError(f"Request to {self.name} failed.") from None
        finally:
            if clock is not None:
                clock.waited += time.perf_counter() - started

    def _prepare(self, method: str, url: str, headers: Mapping[str, str] | None, params: Any, data: Any,
                 json: Any) -> tuple[requests.PreparedRequest, Mapping[str, str]]:
        merged = self._defaults.copy()
        if headers:
            merged.update(headers)
        merged.update(self._fixed)
        prepared = requests.PreparedRequest()
        base = self.base_url
        if (params is None and json is None and (data is None or isinstance(data, bytes))
                and url.startswith(base) and _PLAIN_TAIL.fullmatch(url, len(base))):
            try:
                for item in headers.items() if headers else ():
                    check_header_validity(item)
            except requests.exceptions.InvalidHeader:
                raise UpstreamError(f"Request to {self.name} failed: a header cannot be sent.") from None
            method = method.upper()
            prepared.method = method
            prepared.url = url
            prepared.headers = merged
            if data:
                merged["Content-Length"] = str(len(data))
                prepared.body = data
            elif method not in _NO_BODY_METHODS and "Content-Length" not in merged:
                merged["Content-Length"] = "0"
            return prepared, self.proxies
        try:
            prepared.prepare(method=method, url=url, headers={k: v for k, v in merged.items() if v is not None},
                             data=data, json=json, params=params)
        except (requests.exceptions.RequestException, ValueError):
            raise UpstreamError(f"Request to {self.name} failed: it cannot be sent as given.") from None
        if url.startswith(base) or self.rules is None:
            return prepared, self.proxies
        return prepared, self.rules.proxies_for(url)

    # -- reading ------------------------------------------------------------------------------
    def iter_body(self, response: requests.Response, *, decode: bool = True) -> Iterator[bytes]:
        """Yield the body as the server sends it: each chunk as soon as it arrives, nothing buffered.

        `decode=False` yields the bytes exactly as sent (still gzip'd if the server compressed them).
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
            raise UpstreamTimeout(f"{self.subject} stopped sending before the response was complete.") from None
        except (urllib3.exceptions.ProtocolError, OSError):
            raise UpstreamUnreachable(f"Connection to {self.name} was lost mid-response.") from None
        except urllib3.exceptions.HTTPError:
            raise UpstreamError(f"{self.subject} sent a response that could not be read.") from None

    def read_body(self, response: requests.Response) -> bytes:
        """The whole body, with the same error mapping as `iter_body`."""
        return b"".join(self.iter_body(response))

    def close(self) -> None:
        self.session.close()
