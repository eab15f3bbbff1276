"""The MCP tools the gateway offers models, kept up to date in the background.

`ToolCatalog` holds one `ServerLink` per configured server. `start()` (called when a gunicorn
worker starts, from the `post_worker_init` hook, never at import time nor in gunicorn's master)
starts one background supervisor per server (a thread; a greenlet in the gevent worker);
`stop()` (the `worker_exit` hook) stops them and ends every session (DELETE):

    connect:    initialize + tools/list, up to MCP_MAX_RETRIES attempts with exponential
                backoff (MCP_INITIAL_BACKOFF * 2^(n-1), capped at MCP_RETRY_INTERVAL)
    failed:     wait MCP_RECONNECT_INTERVAL and connect again (MCP_ENABLE_RECONNECT=false: give up)
    connected:  every MCP_POLLING_INTERVAL call tools/list (MCP_POLLING_TIMEOUT); the answer
                refreshes the server's tools; no answer marks it unavailable and reconnects
                (a tool call that finds the server gone wakes the poll at once)

Readers never wait for any of this: `tools()`, `functions()` and `owns()` read an immutable
snapshot rebuilt whenever a server comes, goes or changes its tools. A server that is down
contributes nothing; when it comes back, its tools come back.

Every wait between attempts goes through `wait(seconds)` (by default the stop event's own
wait, so `stop()` cuts it short); tests give their own to see the backoff without sleeping.

Tools are exposed as `mcp_<name>`; MCP_INCLUDE_TOOLS / MCP_EXCLUDE_TOOLS filter them
(case-insensitive, with or without `mcp_`, include wins). When two servers offer the same name
the first server in MCP_SERVERS wins.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from app.config import Settings
from app.mcp.client import MCPClient, MCPError, MCPUnreachable, RemoteTool, ToolResult
from app.upstream.proxies import ProxyRules

log = logging.getLogger("gateway.mcp")

PREFIX = "mcp_"


@dataclass(frozen=True)
class CatalogTool:
    name: str  # as the model sees it: mcp_<remote_name>
    remote_name: str
    description: str
    input_schema: dict[str, Any]
    server: str

    def as_function(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.input_schema}}

    def as_listing(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "server": self.server,
                "input_schema": self.input_schema}


class ToolFilter:
    """MCP_INCLUDE_TOOLS / MCP_EXCLUDE_TOOLS: case-insensitive, `mcp_`-insensitive, include wins."""

    def __init__(self, include: Iterable[str], exclude: Iterable[str]):
        self._include = frozenset(_bare(name) for name in include)
        self._exclude = frozenset(_bare(name) for name in exclude)

    def allows(self, remote_name: str) -> bool:
        name = _bare(remote_name)
        if self._include:
            return name in self._include
        return name not in self._exclude


def _bare(name: str) -> str:
    name = name.strip().lower()
    return name.removeprefix(PREFIX)


@dataclass(eq=False)
class ServerLink:
    """One server: its client, whether it answers, its tools, and a way to wake its supervisor."""

    url: str  # as configured; shown only as display_url (no credentials, no query)
    client: MCPClient
    available: bool = False
    reported_down: bool = False
    tools: tuple[RemoteTool, ...] = ()
    wake: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class _Snapshot:
    tools: tuple[CatalogTool, ...] = ()
    functions: tuple[dict[str, Any], ...] = ()
    by_name: dict[str, tuple[CatalogTool, ServerLink]] = field(default_factory=dict)


class ToolCatalog:
    def __init__(self, settings: Settings, *, wait: Callable[[float], bool] | None = None):
        """`wait(seconds)` pauses a supervisor and returns True when the catalog is stopping."""
        self._settings = settings
        self._filter = ToolFilter(settings.mcp_include_tools, settings.mcp_exclude_tools)
        urls = settings.mcp_servers if settings.mcp_enable else ()
        rules = ProxyRules.from_environ()
        self._links = [ServerLink(url, MCPClient.from_settings(url, settings, rules=rules))
                       for url in dict.fromkeys(urls)]
        self._snapshot = _Snapshot()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wait = wait or self._stopping.wait
        self._started = False
        self._threads: list[threading.Thread] = []

    # -- what requests read -----------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return bool(self._links)

    def available_servers(self) -> tuple[str, ...]:
        return tuple(link.client.display_url for link in self._links if link.available)

    def tools(self) -> tuple[CatalogTool, ...]:
        return self._snapshot.tools

    def functions(self) -> tuple[dict[str, Any], ...]:
        """The tools as OpenAI function definitions, ready to add to a request's `tools`."""
        return self._snapshot.functions

    def owns(self, name: str) -> bool:
        return name in self._snapshot.by_name

    def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run one tool; every failure comes back as an error result the model can read."""
        entry = self._snapshot.by_name.get(name)
        if entry is None:
            return ToolResult(f"Error: the MCP tool {name} is not available right now.", is_error=True)
        tool, link = entry
        try:
            result = link.client.call_tool(tool.remote_name, arguments)
        except MCPError as exc:
            if isinstance(exc, MCPUnreachable):
                link.wake.set()  # let the supervisor find out at once whether the server is gone
            log.warning("MCP tool %s on %s failed: %s", name, link.client.display_url, exc.message)
            return ToolResult(f"Error: the tool {name} could not run: {exc.message}", is_error=True)
        if result.is_error:
            return ToolResult(f"Error: {result.text}", is_error=True)
        return result

    # -- the background ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the supervisors once per process (cheap to call on every request)."""
        if self._started or not self._links:
            return
        with self._lock:
            if self._started:
                return
            self._started = True
            for link in self._links:
                thread = threading.Thread(target=self._supervise, args=(link,), daemon=True,
                                          name=f"mcp {link.client.display_url}")
                thread.start()
                self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the supervisors (waiting up to `timeout` in all) and end every server's session."""
        self._stopping.set()
        for link in self._links:
            link.wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for link in self._links:
            link.client.close()

    def _supervise(self, link: ServerLink) -> None:
        settings = self._settings
        while not self._stopping.is_set():
            if self._connect(link):
                self._poll(link)
                if not settings.mcp_enable_reconnect:
                    return
            elif not settings.mcp_enable_reconnect:
                log.error("MCP server %s: giving up (MCP_ENABLE_RECONNECT=false)", link.client.display_url)
                return
            elif self._wait(settings.mcp_reconnect_interval):
                return

    def _connect(self, link: ServerLink) -> bool:
        """Up to MCP_MAX_RETRIES attempts with backoff. The first failed round is a warning;
        while the server stays down, later rounds are logged at debug level only."""
        settings = self._settings
        attempts = max(1, settings.mcp_max_retries)
        for attempt in range(1, attempts + 1):
            try:
                link.client.initialize()
                tools = link.client.list_tools()
            except MCPError as exc:
                log.debug("MCP server %s: attempt %d/%d failed: %s", link.client.display_url, attempt, attempts,
                          exc.message)
                if attempt == attempts:
                    if not link.reported_down:
                        link.reported_down = True
                        log.warning("MCP server %s is unavailable (%s); retrying every %gs",
                                    link.client.display_url, exc.message, settings.mcp_reconnect_interval)
                    return False
                backoff = min(settings.mcp_initial_backoff * 2 ** (attempt - 1), settings.mcp_retry_interval)
                if self._wait(backoff) or self._stopping.is_set():
                    return False
                continue
            link.reported_down = False
            self._update(link, available=True, tools=tools)
            log.info("MCP server %s: connected, %d tools", link.client.display_url, len(tools))
            return True
        return False

    def _poll(self, link: ServerLink) -> None:
        """Watch a connected server until it stops answering (or the catalog stops)."""
        settings = self._settings
        interval = settings.mcp_polling_interval if settings.mcp_polling_enable else None
        while not self._stopping.is_set():
            link.wake.wait(interval)
            link.wake.clear()
            if self._stopping.is_set():
                return
            try:
                tools = link.client.list_tools(timeout=settings.mcp_polling_timeout)
            except MCPError as exc:
                log.warning("MCP server %s stopped answering (%s); reconnecting", link.client.display_url,
                            exc.message)
                self._update(link, available=False, tools=())
                return
            if not settings.mcp_disable_healthcheck_logs:
                log.info("MCP server %s: healthy, %d tools", link.client.display_url, len(tools))
            if tuple(tools) != link.tools:
                self._update(link, available=True, tools=tools)

    def _update(self, link: ServerLink, *, available: bool, tools: Iterable[RemoteTool]) -> None:
        with self._lock:
            link.available = available
            link.tools = tuple(tools)
            self._snapshot = self._build_snapshot()

    def _build_snapshot(self) -> _Snapshot:
        by_name: dict[str, tuple[CatalogTool, ServerLink]] = {}
        for link in self._links:
            if not link.available:
                continue
            for remote in link.tools:
                if not self._filter.allows(remote.name):
                    continue
                name = PREFIX + remote.name
                if name in by_name:
                    log.warning("MCP tool %s of %s ignored: %s offers it too", remote.name,
                                link.client.display_url, by_name[name][1].client.display_url)
                    continue
                by_name[name] = (CatalogTool(name, remote.name, remote.description, remote.input_schema,
                                             link.client.display_url), link)
        tools = tuple(tool for tool, _ in by_name.values())
        return _Snapshot(tools, tuple(tool.as_function() for tool in tools), by_name)
