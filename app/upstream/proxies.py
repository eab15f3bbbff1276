"""HTTPS_PROXY / HTTP_PROXY / NO_PROXY, read once from the environment, decided once per target.

    rules = ProxyRules.from_environ()                     # at start-up
    rules.proxies_for("https://api.openai.com/v1")        # {"https": "http://proxy:3128"} or {}

The rules are those of Go's net/http (`httpproxy.FromEnvironment`), which the original gateway
used, so a deployment keeps behaving as it did:

- `HTTPS_PROXY` for `https://` targets, `HTTP_PROXY` for `http://` ones. Either case works; the
  upper-case name wins when both are set. A value without a scheme means `http://`.
- `localhost` and loopback addresses (127.0.0.0/8, ::1) are never proxied.
- `NO_PROXY` is a comma-separated list: `*` turns proxying off; an IP address or a CIDR block
  matches a target written as an IP address; a name matches itself and its subdomains
  (`example.com` matches `api.example.com`), a leading `.` or `*.` only its subdomains; an
  entry with `:port` matches only that port.

Hand-written because requests' own environment handling (`trust_env`) does not fit: it reads
the environment (and `.netrc`, which the gateway never reads) again on every request, prefers
the lower-case names, matches `NO_PROXY` names as bare suffixes (`example.com` also matches
`badexample.com`) and proxies loopback targets.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": "80", "https": "443"}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _first_set(environ: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return ""


def _proxy_url(value: str) -> str | None:
    if not value:
        return None
    return value if "://" in value else "http://" + value


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _split_port(entry: str) -> tuple[str, str]:
    """`host:port`, `[v6]:port`, or a bare host (a bare IPv6 address keeps its colons)."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else ""
    host, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, port
    return entry, ""


@dataclass(frozen=True)
class _Domain:
    suffix: str  # always starts with "."
    port: str  # "" for any port
    itself: bool  # the bare name matches too (entries written without a leading ".")

    def matches(self, host: str, port: str) -> bool:
        named = host.endswith(self.suffix) or (self.itself and host == self.suffix[1:])
        return named and (not self.port or self.port == port)


class NoProxy:
    """The parsed NO_PROXY list."""

    def __init__(self, value: str):
        self.everything = False
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.addresses: list[tuple[IPAddress, str]] = []
        self.domains: list[_Domain] = []
        for raw in value.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                self.everything = True
                return
            if "/" in entry:
                try:
                    self.networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    pass  # not a CIDR block: ignored, as Go does with entries it cannot read
                continue
            host, port = _split_port(entry)
            address = _ip(host)
            if address is not None:
                self.addresses.append((address, port))
                continue
            if not host:
                continue
            host = host[1:] if host.startswith("*.") else host
            self.domains.append(_Domain(host if host.startswith(".") else "." + host, port, not host.startswith(".")))

    def bypasses(self, host: str, port: str) -> bool:
        if self.everything:
            return True
        address = _ip(host)
        if address is not None:
            if any(address in network for network in self.networks):
                return True
            if any(address == ip and (not p or p == port) for ip, p in self.addresses):
                return True
        return any(domain.matches(host, port) for domain in self.domains)


class ProxyRules:
    def __init__(self, *, http: str = "", https: str = "", no_proxy: str = ""):
        self._by_scheme = {"http": _proxy_url(http), "https": _proxy_url(https)}
        self._no_proxy = NoProxy(no_proxy)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ProxyRules:
        environ = os.environ if environ is None else environ
        return cls(http=_first_set(environ, "HTTP_PROXY", "http_proxy"),
                   https=_first_set(environ, "HTTPS_PROXY", "https_proxy"),
                   no_proxy=_first_set(environ, "NO_PROXY", "no_proxy"))

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL to reach `url` through, or None to connect directly."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        proxy = self._by_scheme.get(scheme)
        if proxy is None:
            return None
        host = (parts.hostname or "").strip().lower()
        if not host or host == "localhost":
            return None
        address = _ip(host)
        if address is not None and address.is_loopback:
            return None
        try:
            port = str(parts.port) if parts.port is not None else DEFAULT_PORTS[scheme]
        except ValueError:
            return None  # an invalid port: the request fails on its own, without a proxy
        return None if self._no_proxy.bypasses(host, port) else proxy

    def proxies_for(self, url: str) -> dict[str, str]:
        """What `HTTPAdapter.send(proxies=...)` takes: `{scheme: proxy}`, or `{}` for a direct connection."""
        proxy = self.proxy_for(url)
        return {urlsplit(url).scheme.lower(): proxy} if proxy else {}
