"""Fixtures for the outbound-layer tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.upstream.servers import TrickleServer


@pytest.fixture
def make_trickle() -> Iterator[Callable[..., TrickleServer]]:
    servers: list[TrickleServer] = []

    def make(response: bytes, *, pause: float) -> TrickleServer:
        servers.append(TrickleServer(response, pause=pause).start())
        return servers[-1]

    yield make
    for server in servers:
        server.stop()
