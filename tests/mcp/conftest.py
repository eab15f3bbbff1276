"""Fixtures for the MCP tests: a real FastMCP server (subprocess) and helpers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.mcp_process import MCPServerProcess


@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MCPServerProcess]:
    """One FastMCP server for the module (tools: add, explode, slow_echo). Do not stop it."""
    server = MCPServerProcess(log_dir=tmp_path_factory.mktemp("mcp")).start()
    yield server
    server.stop()


@pytest.fixture
def make_mcp_server(tmp_path) -> Iterator[Callable[..., MCPServerProcess]]:
    """A server of the test's own (not started yet), for tests that stop and restart it."""
    servers: list[MCPServerProcess] = []

    def make(port: int | None = None) -> MCPServerProcess:
        servers.append(MCPServerProcess(port, log_dir=tmp_path))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def eventually(check: Callable[[], object], timeout: float = 15, interval: float = 0.1) -> object:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)
