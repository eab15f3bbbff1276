"""The tool catalog: filtering, background connect, health polls, reconnect after an outage."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from app.config import Settings
from app.mcp.catalog import ToolCatalog, ToolFilter
from tests.mcp.conftest import eventually
from tests.mcp.fake_mcp import fake_mcp_server
from tests.support.fake_provider import Reply

# Quick polls and reconnects. The poll's timeout stays generous: on a busy 2-core machine the MCP
# server's answer to tools/list can take over a second, and a poll that times out drops the tools
# mid-test. An outage here is a stopped server (refused at once), not a slow one.
FAST = {"MCP_ENABLE": "true", "MCP_MAX_RETRIES": "2", "MCP_INITIAL_BACKOFF": "50ms", "MCP_RETRY_INTERVAL": "100ms",
        "MCP_RECONNECT_INTERVAL": "200ms", "MCP_POLLING_INTERVAL": "200ms", "MCP_POLLING_TIMEOUT": "10s",
        "MCP_DIAL_TIMEOUT": "500ms"}


@pytest.fixture
def make_catalog() -> Iterator:
    catalogs: list[ToolCatalog] = []

    def make(wait: Callable[[float], bool] | None = None, **env: str) -> ToolCatalog:
        catalogs.append(ToolCatalog(Settings.from_environ({**FAST, **env}), wait=wait))
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
    assert time.monotonic() - started < 2  # start never waits for a server (it returns in microseconds)
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


class RecordedWaits:
    """A supervisor's `wait`: records each pause instead of sleeping; `stop_after` pauses it stops."""

    def __init__(self, stop_after: int = 1000):
        self.seconds: list[float] = []
        self.stop_after = stop_after
        self.reached = threading.Event()

    def __call__(self, seconds: float) -> bool:
        self.seconds.append(seconds)
        if len(self.seconds) >= self.stop_after:
            self.reached.set()
            return True
        time.sleep(0.01)  # a real (tiny) pause, so a failing server is not hammered
        return False


def test_backoff_doubles_up_to_the_retry_interval_then_waits_the_reconnect_interval(make_catalog):
    waits = RecordedWaits(stop_after=8)
    with socket.socket() as down:  # bound, never listening: every attempt is refused
        down.bind(("127.0.0.1", 0))
        catalog = make_catalog(waits, MCP_SERVERS=f"http://127.0.0.1:{down.getsockname()[1]}/mcp",
                               MCP_MAX_RETRIES="4", MCP_INITIAL_BACKOFF="1s", MCP_RETRY_INTERVAL="3s",
                               MCP_RECONNECT_INTERVAL="30s")
        catalog.start()
        assert waits.reached.wait(20)
    assert waits.seconds == [1, 2, 3, 30, 1, 2, 3, 30]
    assert catalog.tools() == ()


def test_without_reconnect_a_server_down_is_given_up_after_its_retries(make_catalog, fake_provider):
    fake_provider.on("POST", "/mcp", Reply(status=503))
    waits = RecordedWaits()
    catalog = make_catalog(waits, MCP_SERVERS=fake_provider.url + "/mcp", MCP_MAX_RETRIES="3",
                           MCP_ENABLE_RECONNECT="false")
    catalog.start()
    eventually(lambda: not catalog._threads[0].is_alive())
    assert waits.seconds == [0.05, 0.1]  # between the three attempts; no reconnect wait
    assert len(fake_provider.requests) == 3


def test_a_server_down_at_start_is_picked_up_when_it_comes_up(make_catalog, fake_provider):
    fake_provider.on("POST", "/mcp", Reply(status=503))  # down: every attempt fails
    waits = RecordedWaits()
    catalog = make_catalog(waits, MCP_SERVERS=fake_provider.url + "/mcp", MCP_MAX_RETRIES="2")
    catalog.start()
    eventually(lambda: len(waits.seconds) >= 4)  # two failed rounds: backoff, reconnect, backoff, reconnect
    assert catalog.tools() == ()
    fake_mcp_server(fake_provider, tools_pages=[["add"]])  # up
    eventually(catalog.tools)
    assert names(catalog) == ["mcp_add"]


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
    assert catalog._threads == [] and catalog.tools() == ()
