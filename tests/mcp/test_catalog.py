"""The tool catalog: filtering, background connect, health polls, reconnect after an outage."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.config import Settings
from app.mcp.catalog import ToolCatalog, ToolFilter
from tests.mcp.conftest import eventually
from tests.support.live_gateway import free_port

FAST = {"MCP_ENABLE": "true", "MCP_MAX_RETRIES": "2", "MCP_INITIAL_BACKOFF": "50ms", "MCP_RETRY_INTERVAL": "100ms",
        "MCP_RECONNECT_INTERVAL": "200ms", "MCP_POLLING_INTERVAL": "200ms", "MCP_POLLING_TIMEOUT": "1s",
        "MCP_DIAL_TIMEOUT": "500ms"}


@pytest.fixture
def make_catalog() -> Iterator:
    catalogs: list[ToolCatalog] = []

    def make(**env: str) -> ToolCatalog:
        catalogs.append(ToolCatalog(Settings.from_environ({**FAST, **env})))
        return catalogs[-1]

    yield make
    for catalog in catalogs:
        catalog.stop()


def names(catalog: ToolCatalog) -> list[str]:
    return sorted(tool.name for tool in catalog.tools())


@pytest.mark.parametrize(("include", "exclude", "allowed"), [
    ([], [], {"add", "explode", "slow_echo"}),
    (["ADD", "mcp_Slow_Echo"], [], {"add", "slow_echo"}),
    ([], ["mcp_explode"], {"add", "slow_echo"}),
    (["add"], ["add", "explode"], {"add"}),  # include wins
])
def test_include_and_exclude_lists(include, exclude, allowed):
    tool_filter = ToolFilter(include, exclude)
    assert {n for n in ("add", "explode", "slow_echo") if tool_filter.allows(n)} == allowed


def test_tools_appear_in_the_background_as_openai_functions(make_catalog, mcp_server):
    catalog = make_catalog(MCP_SERVERS=f" {mcp_server.url} ", MCP_EXCLUDE_TOOLS="slow_echo")
    assert catalog.tools() == ()  # nothing before start: no work at construction time
    started = time.monotonic()
    catalog.start()
    assert time.monotonic() - started < 0.5  # start never waits for a server
    eventually(catalog.tools)
    assert names(catalog) == ["mcp_add", "mcp_explode"]
    add = next(f for f in catalog.functions() if f["function"]["name"] == "mcp_add")
    assert add["type"] == "function"
    assert add["function"]["description"] == "Add two integers."
    assert add["function"]["parameters"]["properties"].keys() == {"a", "b"}
    assert catalog.tools()[0].server == mcp_server.url


def test_calls_run_on_the_server_and_failures_are_readable_results(make_catalog, mcp_server):
    catalog = make_catalog(MCP_SERVERS=mcp_server.url + "?token=s3cret")
    catalog.start()
    eventually(catalog.tools)
    assert {tool.server for tool in catalog.tools()} == {mcp_server.url}  # the token is never shown
    assert catalog.call("mcp_add", {"a": 3, "b": 4}).text == "7"
    failed = catalog.call("mcp_explode", {"reason": "x"})
    assert failed.is_error and failed.text.startswith("Error: ")
    unknown = catalog.call("mcp_nothing", {})
    assert unknown.is_error and "not available" in unknown.text
    assert catalog.owns("mcp_add") and not catalog.owns("add")


def test_a_server_down_at_start_is_picked_up_when_it_comes_up(make_catalog, make_mcp_server):
    port = free_port()
    catalog = make_catalog(MCP_SERVERS=f"http://127.0.0.1:{port}/mcp")
    catalog.start()
    time.sleep(0.5)  # several failed attempts
    assert catalog.tools() == ()
    make_mcp_server(port).start()
    eventually(catalog.tools)
    assert "mcp_add" in names(catalog)


def test_an_outage_removes_the_tools_and_recovery_brings_them_back(make_catalog, make_mcp_server):
    server = make_mcp_server().start()
    catalog = make_catalog(MCP_SERVERS=server.url)
    catalog.start()
    eventually(catalog.tools)
    server.stop()
    eventually(lambda: catalog.tools() == ())
    failed = catalog.call("mcp_add", {"a": 1, "b": 2})
    assert failed.is_error
    server.start()
    eventually(catalog.tools)
    assert catalog.call("mcp_add", {"a": 1, "b": 2}).text == "3"


def test_the_first_server_wins_a_name_both_offer(make_catalog, mcp_server, make_mcp_server):
    other = make_mcp_server().start()
    catalog = make_catalog(MCP_SERVERS=f"{other.url},{mcp_server.url}")
    catalog.start()
    eventually(lambda: len(catalog.available_servers()) == 2)
    assert names(catalog) == ["mcp_add", "mcp_explode", "mcp_slow_echo"]
    assert {tool.server for tool in catalog.tools()} == {other.url}


def test_disabled_mcp_has_no_servers(make_catalog, mcp_server):
    catalog = make_catalog(MCP_ENABLE="false", MCP_SERVERS=mcp_server.url)
    assert not catalog.enabled
    catalog.start()
    time.sleep(0.3)
    assert catalog.tools() == ()
