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

What a hostile or broken server cannot do (`Limits`, from CLIENT_MAX_* at start-up):

    answer with a redirect (3xx but 304)   it is not followed: UpstreamError 502 `upstream_redirect`,
                                           naming the status, never the Location
    send a body too large to hold          `read_body` stops at `Limits.body` bytes (decoded):
                                           502 `upstream_too_large`, a declared length at once
    send a compression bomb                gzip / deflate are decoded here, in pieces of at most
                                           READ_SIZE bytes however much one chunk inflates to
                                           (urllib3 inflates a whole chunk at once); any other
                                           encoding is a 502 `upstream_encoding`
    send an event that never ends          an event stream read with `decode=True` is cut once it
                                           goes `Limits.event` bytes without an event boundary:
                                           502 `upstream_event_too_large` (a relay that has begun
                                           ends with that error event)

The request is prepared directly rather than through `Session.request`: the session's headers
are the only session state the gateway uses, and skipping the merging of cookies, auth, hooks
and environment settings saves a fifth of the gateway's CPU per request. A URL under the base
made only of characters requests would leave as they are (the usual case) skips URL parsing too.
No redirects are followed.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import requests
import urllib3
import urllib3.exceptions
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity

from app.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from app.upstream.arrived import arrived
from app.upstream.clock import UpstreamClock, upstream_clock, waiting_for_providers
from app.upstream.deadline import Deadline
from app.upstream.proxies import ProxyRules

__all__ = ["READ_SIZE", "Limits", "Timeouts", "Upstream", "UpstreamClock", "canonical_url", "upstream_clock",
           "waiting_for_providers"]

READ_SIZE = 64 * 1024
# A path and query that `PreparedRequest.prepare_url` would send exactly as written.
_PLAIN_TAIL = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,/:;=?@]*")
_NO_BODY_METHODS = frozenset({"GET", "HEAD"})
_INFLATE_BITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
EVENT_STREAM = "text/event-stream"


class Limits:
    """How much a server may send (None: no bound). `body`: a body read whole, decoded;
    `event`: one server-sent event."""

    __slots__ = ("body", "event")

    def __init__(self, *, body: int | None = None, event: int | None = None):
        self.body = body or None
        self.event = event or None

    def __repr__(self) -> str:
        return f"Limits(body={self.body}, event={self.event})"


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


def _zlib_header(data: bytes) -> bool:
    """Whether `data` starts with a zlib header (HTTP's `deflate`), rather than raw deflate."""
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


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

    __slots__ = ("_adapter", "_defaults", "_fixed", "_late", "_unusable", "base_url", "limits", "name", "proxies",
                 "rules", "session", "subject", "timeouts")

    def __init__(self, name: str, base_url: str, session: requests.Session, *, timeouts: Timeouts,
                 proxies: Mapping[str, str] | None = None, rules: ProxyRules | None = None,
                 headers: Mapping[str, str] | None = None, limits: Limits | None = None):
        """`name` is how messages call it ("provider openai"); `headers` are added to every call,
        over the caller's (credentials); `rules` (ProxyRules) choose the proxy of a URL outside
        `base_url`."""
        self.name = name
        self.subject = name[:1].upper() + name[1:]
        self.base_url = canonical_url(base_url)
        self.session = session
        self.timeouts = timeouts
        self.limits = limits or Limits()
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
                    response = self._adapter.send(prepared, stream=True, timeout=timeouts.urllib3, verify=True,
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
        if 300 <= response.status_code < 400 and response.status_code != 304:
            response.close()
            raise UpstreamError(f"{self.subject} answered {response.status_code}, a redirect, which the gateway does "
                                f"not follow.", code="upstream_redirect")
        return response

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
        """Yield the body as the server sends it: each chunk as soon as it arrives, nothing buffered
        (chunks that arrived together are yielded together: app/upstream/arrived.py).

        `decode=True` undoes gzip / deflate in bounded pieces and bounds each event of an event
        stream (see the module docstring); `decode=False` yields the bytes exactly as sent (still
        gzip'd if the server compressed them).
        """
        raw = response.raw
        if raw.chunked and raw.supports_chunked_reads():
            chunks = arrived(raw.read_chunked(decode_content=False), raw)  # the chunks already here, in one
        else:
            chunks = iter(lambda: raw.read1(READ_SIZE, decode_content=False), b"")
        if decode:
            coding = response.headers.get("Content-Encoding", "").strip().lower()
            if coding and coding != "identity":
                chunks = self._inflated(chunks, coding)
            if self.limits.event and response.headers.get("Content-Type", "").startswith(EVENT_STREAM):
                chunks = self._events_bounded(chunks, self.limits.event)
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
        """The whole body, decoded, with the same error mapping as `iter_body`; at most `Limits.body` bytes."""
        limit = self.limits.body
        if limit is None:
            return b"".join(self.iter_body(response))
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(limit)
        parts, size = [], 0
        for chunk in self.iter_body(response):
            size += len(chunk)
            if size > limit:
                raise self._too_large(limit)
            parts.append(chunk)
        return b"".join(parts)

    def _too_large(self, limit: int) -> UpstreamError:
        return UpstreamError(f"{self.subject} sent a response larger than CLIENT_MAX_RESPONSE_BODY_SIZE "
                             f"({limit} bytes) allows.", code="upstream_too_large")

    def _inflated(self, chunks: Iterator[bytes], coding: str) -> Iterator[bytes]:
        """gzip / deflate undone in pieces of at most READ_SIZE bytes (urllib3 would inflate a whole
        chunk at once: 64 KiB of gzip can hold 64 MiB of zeros)."""
        bits = _INFLATE_BITS.get(coding)
        if bits is None:
            raise UpstreamError(f"{self.subject} sent its answer in an encoding the gateway cannot read "
                                f"({coding[:40]!r}).", code="upstream_encoding")
        decoder = None
        try:
            for chunk in chunks:
                if decoder is None:
                    if coding == "deflate" and not _zlib_header(chunk):
                        bits = -zlib.MAX_WBITS  # raw deflate, as some servers send it
                    decoder = zlib.decompressobj(bits)
                data = chunk
                while not decoder.eof:  # until this chunk is used up and nothing more comes out
                    piece = decoder.decompress(data, READ_SIZE)
                    data = decoder.unconsumed_tail
                    if piece:
                        yield piece
                    elif not data:
                        break
            if decoder is not None and not decoder.eof:
                raise zlib.error("truncated")
        except zlib.error:
            raise UpstreamError(f"{self.subject} sent a compressed answer that cannot be decoded.",
                                code="upstream_encoding") from None

    def _events_bounded(self, chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
        """The chunks of an event stream, cut with UpstreamError once one event passes `limit` bytes."""
        since, tail = 0, b""
        for chunk in chunks:
            window = tail + chunk
            end = max(window.rfind(b"\n\n"), window.rfind(b"\n\r\n"))
            since = len(window) - end if end >= 0 else since + len(chunk)
            if since > limit:
                raise UpstreamError(f"{self.subject} sent an event larger than CLIENT_MAX_EVENT_SIZE ({limit} bytes) "
                                    f"allows.", code="upstream_event_too_large")
            tail = window[-2:]
            yield chunk

    def close(self) -> None:
        self.session.close()
