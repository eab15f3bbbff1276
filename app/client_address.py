"""The client's IP address as this gateway can trust it (rate limits, failed-login limits).

TRUSTED_PROXIES names the proxies (nginx in front) whose X-Forwarded-For counts.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

COUNTED_FORMS = 16384  # client addresses whose counted form is kept (a few MB at most)


class ClientAddress:
    """The client's IP address as this gateway can trust it.

    The direct peer, unless the peer is a trusted proxy: then X-Forwarded-For is read from the
    right, skipping trusted proxies, and the first hop that is not one is the client. Hops further
    left were written by the client itself and prove nothing. A malformed hop stops the walk at the
    last address a trusted proxy vouched for.
    """

    def __init__(self, trusted: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network | str]):
        # Settings has parsed and checked TRUSTED_PROXIES; ip_network() returns a network as it is.
        self.trusted = tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)

    def __call__(self, environ: Mapping[str, Any]) -> str:
        peer = environ.get("REMOTE_ADDR") or "unknown"
        if not self.trusted or not self.is_trusted(peer):
            return peer
        client = peer
        for hop in reversed(environ.get("HTTP_X_FORWARDED_FOR", "").split(",")):
            try:
                client = str(ipaddress.ip_address(hop.strip()))
            except ValueError:
                break
            if not self.is_trusted(client):
                break
        return client

    def is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def counted(self, environ: Mapping[str, Any]) -> str:
        """The address limits count: an IPv4 address, or an IPv6 client's /64 network (one host
        usually holds a whole /64, so counting single IPv6 addresses would limit nothing)."""
        return counted_form(self(environ))


@functools.lru_cache(maxsize=COUNTED_FORMS)
def counted_form(address: str) -> str:
    """`address` as the limits count it (see `ClientAddress.counted`); the answers for the most
    recent addresses are kept, so a returning client's address is parsed once."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))
