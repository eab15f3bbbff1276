"""A proxy.py plugin for the outbound tests (loaded by name in the proxy's own process).

Every host name resolves to 127.0.0.1, so the tests can name targets `*.gateway.invalid`, which
nothing but this proxy can reach; every request it forwards is appended to $PROXY_REQUEST_LOG.
"""

from __future__ import annotations

import os
from typing import Any

from proxy.http.parser import HttpParser
from proxy.http.proxy import HttpProxyBasePlugin


class LoopbackResolver(HttpProxyBasePlugin):
    def resolve_dns(self, host: str, port: int) -> tuple[str | None, Any]:
        return "127.0.0.1", None

    def before_upstream_connection(self, request: HttpParser) -> HttpParser | None:
        if request.method == b"CONNECT":  # a tunnel: the proxy sees no request inside it
            _record(f"CONNECT {(request.host or b'').decode()}:{request.port}")
        return request

    def handle_client_request(self, request: HttpParser) -> HttpParser | None:
        if request.method != b"CONNECT":
            _record(f"{request.method.decode()} {(request.host or b'').decode()}:{request.port} "
                    f"{(request.path or b'').decode()}")
        return request

    def handle_upstream_chunk(self, chunk: memoryview) -> memoryview | None:
        return chunk

    def on_upstream_connection_close(self) -> None:
        pass


def _record(line: str) -> None:
    with open(os.environ["PROXY_REQUEST_LOG"], "a") as log:
        log.write(line + "\n")
