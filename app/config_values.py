"""The kinds of value a setting holds, each with the parser that turns its text into it.

    Duration      `30s`, `1m30s`, `500ms`, `2h` (Go's notation), as float seconds
    ByteSize      `10485760`, `512KiB`, `10MiB`, `1GB`, as int bytes
    CommaList     `a, b,,c` -> ("a", "b", "c")
    Port          0-65535 (0: any free port, the one taken is logged)
    Host          an IP address or a host name to bind (brackets around IPv6 dropped)
    HttpUrl       empty, or an http:// or https:// URL with a host
    UrlList       a CommaList of HttpUrls
    Networks      IP addresses and CIDRs -> ipaddress networks
    RequestLimits flask-limiter's notation (`60/minute;1000/hour`), checked by the `limits` parser
    StorageUri    a `limits` storage URI (synchronous storages), its driver installed

The classes name what a field holds (they pick its parser); the values of text and port fields
are plain str and int, since socket calls refuse subclasses. A parser raises ValueError with the
reason only; `Settings.from_environ` adds the variable's name. gunicorn's master parses the
settings before forking: nothing here imports more than `limits` (whose ssl import gunicorn has
already made).
"""

from __future__ import annotations

import ipaddress
import re
from importlib.util import find_spec
from urllib.parse import urlsplit


class Duration(float):
    """Seconds, written the Go way: `30s`, `1m30s`, `500ms`, `2h`."""


class CommaList(tuple):
    """A comma-separated list; entries are trimmed and empty entries dropped."""


class ByteSize(int):
    """A size in bytes: `10485760`, `512KiB`, `10MiB`, `1GB`."""


class Port(int):
    """A TCP port, 0 to 65535 (parsed into a plain int: socket calls refuse int subclasses)."""


class Host(str):
    """An address to bind: an IP address (v4 or v6) or a host name."""


class HttpUrl(str):
    """Empty, or an http:// or https:// URL naming a host."""


class UrlList(CommaList):
    """Comma-separated http:// or https:// URLs."""


class Networks(tuple):
    """IP networks (`ipaddress.IPv4Network`/`IPv6Network`); a bare address is a /32 or /128."""


class RequestLimits(str):
    """Request limits in flask-limiter's notation, `;`-separated; empty for none."""


class StorageUri(str):
    """Where the rate limits keep their counters: `memory://`, `redis://host:6379/0`, ..."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE)
# The driver each family of `limits` storage schemes needs (the family is the scheme up to `+`,
# without a trailing `s` for TLS: rediss -> redis, mongodb+srv -> mongodb).
_STORAGE_DRIVERS = {"memory": None, "redis": "redis", "valkey": "valkey", "memcached": "pymemcache",
                    "mongodb": "pymongo"}


def parse_duration(text: str) -> Duration:
    text = text.strip()
    if text == "0":
        return Duration(0)
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError("expected a duration such as 30s, 1m30s or 500ms")
    return Duration(total)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true/false, 1/0 or yes/no")


def parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("expected a whole number") from None


def parse_byte_size(text: str) -> ByteSize:
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError("expected a size such as 10485760 or 10MiB")
    return ByteSize(int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])


def parse_comma_list(text: str) -> CommaList:
    return CommaList(part.strip() for part in text.split(",") if part.strip())


def parse_port(text: str) -> int:
    try:
        port = int(text.strip())
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError("expected a port number from 0 to 65535")
    return port


def parse_optional_port(text: str) -> int | None:
    return parse_port(text) if text.strip() else None


def parse_host(text: str) -> str:
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if not host or len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError("expected an IP address or a host name")
    return host


def check_http_url(url: str) -> None:
    """Raise ValueError unless `url` is an http:// or https:// URL with a host (and a valid port)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number from 0 to 65535 raises ValueError
    except ValueError:
        raise ValueError("expected an http:// or https:// URL (its port is not a number from 0 to 65535)") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL")


def parse_http_url(text: str) -> str:
    url = text.strip()
    if url:
        check_http_url(url)
    return url


def parse_url_list(text: str) -> UrlList:
    urls = parse_comma_list(text)
    for url in urls:
        try:
            check_http_url(url)
        except ValueError:
            raise ValueError(f"{url!r} is not an http:// or https:// URL") from None
    return UrlList(urls)


def parse_networks(text: str) -> Networks:
    networks = []
    for entry in parse_comma_list(text):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR") from None
    return Networks(networks)


def parse_rate_limits(text: str) -> str:
    from limits.util import parse_many  # `limits` itself: the notation is exactly what flask-limiter reads

    limits = text.strip()
    if limits:
        try:
            parse_many(limits)
        except ValueError:
            raise ValueError("expected limits such as 60/minute;1000/hour") from None
    return limits


def parse_storage_uri(text: str) -> str:
    from limits.storage import SCHEMES

    uri = text.strip()
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme not in SCHEMES or scheme.startswith("async+"):
        raise ValueError("expected a storage URI such as memory:// or redis://host:6379/0")
    family = scheme.split("+", 1)[0]
    family = family[:-1] if family.endswith("s") and family[:-1] in _STORAGE_DRIVERS else family
    driver = _STORAGE_DRIVERS.get(family)
    if driver and find_spec(driver) is None:
        raise ValueError(f"the {scheme}:// storage needs the Python package {driver!r}, which is not installed")
    try:
        _ = urlsplit(uri).port
    except ValueError:
        raise ValueError("the port is not a number from 0 to 65535") from None
    return uri


PARSERS = {
    str: str,
    bool: parse_bool,
    int: parse_int,
    Duration: parse_duration,
    ByteSize: parse_byte_size,
    CommaList: parse_comma_list,
    Port: parse_port,
    Port | None: parse_optional_port,
    Host: parse_host,
    HttpUrl: parse_http_url,
    UrlList: parse_url_list,
    Networks: parse_networks,
    RequestLimits: parse_rate_limits,
    StorageUri: parse_storage_uri,
}
