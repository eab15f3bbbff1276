"""Ports for test servers that must be named before they listen, without bind-close-reuse races.

A server the test starts itself should bind port 0 and report the port it got (gunicorn does:
see live_gateway.py). Some cannot: a server that must look down first and come up later on the
same address, a subprocess that takes a port number, a URL where nothing may ever answer.

`reserved_port()` binds a socket on 127.0.0.1, port 0, with SO_REUSEADDR, and never listens on it.
The pytest process keeps it bound until it exits, so:

- connecting to the port is refused (no listener): a provider or issuer that is down;
- no other process's port-0 bind is given the port, and a bind without SO_REUSEADDR fails;
- a server of the test's own that sets SO_REUSEADDR (http.server, uvicorn, gunicorn,
  redis-server, prometheus-client all do) can bind it and listen; once it stops, the port is
  refused again instead of free for someone else, so it can be started again on the same port.
"""

from __future__ import annotations

import socket

_held: list[socket.socket] = []


def reserved_port() -> int:
    """A 127.0.0.1 port held (bound, not listening) for the rest of the test session."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    _held.append(sock)
    return sock.getsockname()[1]
