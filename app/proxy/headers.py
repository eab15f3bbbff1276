"""Which headers cross the proxy, in each direction.

To the provider: everything the caller sent except
    the caller's credentials  Authorization, Cookie, x-api-key, Proxy-Authorization: they are
                              for the gateway; the provider's own credential is added by
                              `Provider.request` from its auth style
    hop-by-hop headers        Connection (and every header it names), Keep-Alive, Proxy-*, TE,
                              Trailer, Transfer-Encoding, Upgrade: they describe one connection
    Host, Content-Length,     requests sets them for the upstream connection and body framing
      Expect
Without an `Accept-Encoding` from the caller the provider is asked for `identity`, so a body
never arrives compressed to a client that did not ask for it (the body is relayed undecoded).
A model call (a request that names a model) always asks for `identity`: the gateway reads the
answer's usage as it relays it (app/proxy/usage.py).

Back to the caller: the provider's headers less the hop-by-hop ones. `Content-Length` stays,
because the body is relayed byte for byte; `Content-Encoding` stays for the same reason. An
event stream gets `X-Accel-Buffering: no` (unless the provider said otherwise), so nginx in
front relays it event by event.
"""

from __future__ import annotations

from collections.abc import Iterable

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade",
})
CALLER_CREDENTIALS = frozenset({"authorization", "cookie", "x-api-key", "proxy-authorization"})
_NOT_FORWARDED = HOP_BY_HOP | CALLER_CREDENTIALS | {"host", "content-length", "expect"}


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    return frozenset(token.strip().lower() for name, value in headers if name.lower() == "connection"
                     for token in value.split(","))


def _hop(lower: str, named: frozenset[str]) -> bool:
    return lower in HOP_BY_HOP or lower.startswith("proxy-") or lower in named


def to_provider(incoming: Iterable[tuple[str, str]], *, identity: bool = False) -> dict[str, str]:
    """The caller's headers that may reach the provider (the credential is added later);
    `identity`: ask for an uncompressed answer whatever the caller accepts (a model call, whose
    usage the gateway reads as it relays it)."""
    incoming = list(incoming)
    named = _connection_tokens(incoming)
    forwarded: dict[str, str] = {}
    for name, value in incoming:
        lower = name.lower()
        if lower in _NOT_FORWARDED or _hop(lower, named) or (identity and lower == "accept-encoding"):
            continue
        forwarded[name] = value
    if identity or not any(name.lower() == "accept-encoding" for name in forwarded):
        forwarded["Accept-Encoding"] = "identity"
    return forwarded


def to_caller(upstream: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The provider's response headers, repeated ones (Set-Cookie) kept apart, hop-by-hop ones dropped."""
    upstream = list(upstream)
    named = _connection_tokens(upstream)
    lowered = {name.lower(): value for name, value in upstream}
    chunked = "transfer-encoding" in lowered
    forwarded = [(name, value) for name, value in upstream
                 if not _hop(name.lower(), named) and not (chunked and name.lower() == "content-length")]
    event_stream = lowered.get("content-type", "").partition(";")[0].strip().lower() == "text/event-stream"
    if event_stream and "x-accel-buffering" not in lowered:
        forwarded.append(("X-Accel-Buffering", "no"))
    return forwarded
