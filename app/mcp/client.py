"""A small synchronous MCP client over the gateway's outbound layer: the streamable-HTTP
transport, nothing else.

Why not the `mcp` SDK's client: it runs on asyncio, and inside a gevent worker every request
is a greenlet of the same OS thread; a second `asyncio.run` in another greenlet fails with
"cannot be called from a running event loop" (probed with mcp 2.3.0). This client follows the
transport as the specification writes it (protocol revision 2025-06-18):

    POST initialize                 -> the server's `Mcp-Session-Id` header (if it sends one)
    POST notifications/initialized  -> 202
    POST tools/list (+ nextCursor)  -> every tool
    POST tools/call                 -> the result
    DELETE                          -> the session ends (`close`)

Every POST carries `Accept: application/json, text/event-stream`; after initialize also
`Mcp-Session-Id` and `MCP-Protocol-Version`. An answer is either one JSON body or an SSE stream
(read by `app.upstream.sse`) whose events carry JSON-RPC messages; the response with our
request's id is taken, server notifications before it are skipped. A 404 on a request with a
session means the session expired: the client initializes again once and resends. The caller's
credentials never reach an MCP server: this client only ever sends the headers above.

The server is an `app.upstream` Upstream (session factory, proxies from the environment, the
exception map), with the MCP timeouts:

    MCP_DIAL_TIMEOUT (+ MCP_TLS_HANDSHAKE_TIMEOUT for https)   each connection attempt
    MCP_RESPONSE_HEADER_TIMEOUT   connect + send + response headers, as one bound
    MCP_REQUEST_TIMEOUT           the longest silence while the answer arrives
    MCP_CLIENT_TIMEOUT            the whole exchange, body included (Go's http.Client.Timeout)

Failures are `MCPError`s, built on the upstream exception map (502 if one ever reached the
error handler; the catalog turns them into an unavailable server or an error result the model
reads):

    MCPError            the server answered something that is not a usable JSON-RPC result
    └── MCPUnreachable  no usable answer: UpstreamUnreachable / UpstreamTimeout / UpstreamError
                        from the transport, an HTTP 5xx, or an answer cut off
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from app.config import Settings
from app.errors import UpstreamError
from app.upstream.deadline import Deadline
from app.upstream.proxies import ProxyRules
from app.upstream.sessions import build_upstream
from app.upstream.sse import iter_data
from app.upstream.transport import Timeouts, Upstream

PROTOCOL_VERSION = "2025-06-18"
ACCEPT = "application/json, text/event-stream"
CLIENT_INFO = {"name": "inference-gateway-python", "version": "1"}
MAX_TOOL_PAGES = 100
CLOSE_TIMEOUT = 2.0  # seconds a server gets to confirm the end of a session


class MCPError(UpstreamError):
    code = "mcp_error"


class MCPUnreachable(MCPError):
    code = "mcp_unreachable"


@dataclass(frozen=True)
class RemoteTool:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """What the model reads as the tool's answer; `is_error` when the call failed."""

    text: str
    is_error: bool = False


class MCPClient:
    """One server's connection. Safe to share between greenlets/threads."""

    def __init__(self, url: str, upstream: Upstream, *, exchange_timeout: float | None = None):
        self.url = url
        self.display_url = display_url(url)
        self._upstream = upstream
        self._exchange_timeout = exchange_timeout or None
        self._ids = itertools.count(1)
        self._session_id: str | None = None
        self._protocol_version: str | None = None
        self._init_lock = threading.Lock()

    @classmethod
    def from_settings(cls, url: str, settings: Settings, *, rules: ProxyRules | None = None) -> MCPClient:
        tls = settings.mcp_tls_handshake_timeout if url.lower().startswith("https:") else 0.0
        timeouts = Timeouts(connect=settings.mcp_dial_timeout + tls, gap=settings.mcp_request_timeout,
                            headers=settings.mcp_response_header_timeout)
        upstream = build_upstream(settings, "the MCP server", url, timeouts=timeouts, rules=rules)
        return cls(url, upstream, exchange_timeout=settings.mcp_client_timeout)

    # -- the protocol ---------------------------------------------------------------------
    def initialize(self) -> None:
        """Open a session (again): initialize, remember the session id, send initialized."""
        with self._init_lock:
            self._session_id = None
            self._protocol_version = None
            request_id = next(self._ids)
            session_id, result = self._exchange({"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": {
                "protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}}, None)
            self._session_id = session_id
            self._protocol_version = str(result.get("protocolVersion") or PROTOCOL_VERSION)
            self._exchange({"jsonrpc": "2.0", "method": "notifications/initialized"}, None)

    def list_tools(self, *, timeout: float | None = None) -> list[RemoteTool]:
        tools: list[RemoteTool] = []
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            result = self.request("tools/list", {"cursor": cursor} if cursor else None, timeout=timeout)
            for tool in result.get("tools") or []:
                if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                    schema = tool.get("inputSchema")
                    tools.append(RemoteTool(tool["name"], str(tool.get("description") or ""),
                                            schema if isinstance(schema, dict) else {"type": "object"}))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return tools

    def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        result = self.request("tools/call", {"name": name, "arguments": arguments})
        return ToolResult(_text_of(result), bool(result.get("isError")))

    def request(self, method: str, params: dict[str, Any] | None = None, *,
                timeout: float | None = None) -> dict[str, Any]:
        """One JSON-RPC request in the session; initializes first if there is no session yet.
        `timeout` bounds the whole exchange (and never extends MCP_CLIENT_TIMEOUT)."""
        session_id = self._session_id
        if self._protocol_version is None:
            self._reopen(session_id)
        try:
            return self._send(method, params, timeout)
        except _SessionExpired:
            self._reopen(session_id)
            return self._send(method, params, timeout)

    def _reopen(self, stale: str | None) -> None:
        """Initialize unless another greenlet already replaced the `stale` session."""
        with self._init_lock:
            if self._protocol_version is not None and self._session_id != stale:
                return
        self.initialize()

    @property
    def session_id(self) -> str | None:
        return self._session_id

    def close(self) -> None:
        """End the session politely (DELETE, as the transport asks) and drop the connections."""
        if self._session_id:
            try:
                with Deadline(CLOSE_TIMEOUT, "the MCP server did not confirm the end of the session"):
                    response = self._upstream.send("DELETE", self.url, headers=self._headers())
                    response.close()
            except UpstreamError:
                pass
        self._session_id = None
        self._protocol_version = None
        self._upstream.close()

    # -- the transport --------------------------------------------------------------------
    def _send(self, method: str, params: dict[str, Any] | None, timeout: float | None) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params is not None:
            message["params"] = params
        return self._exchange(message, timeout)[1]

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
        if self._session_id:
            headers["Mcp-Session-Id"] = self._session_id
        if self._protocol_version:
            headers["MCP-Protocol-Version"] = self._protocol_version
        return headers

    def _exchange(self, message: dict[str, Any], timeout: float | None) -> tuple[str | None, dict[str, Any]]:
        """POST one message; for a request, its result (and the session id the answer names).
        The whole exchange is bounded by MCP_CLIENT_TIMEOUT (and `timeout`)."""
        bounds = [t for t in (self._exchange_timeout, timeout) if t]
        seconds = min(bounds) if bounds else None
        what = message.get("method")
        try:
            with Deadline(seconds, f"the MCP server did not complete its answer to {what} within {seconds:g}s"
                          if seconds else ""):
                response = self._post(message)
                if "id" not in message:
                    response.close()
                    return None, {}
                return response.headers.get("Mcp-Session-Id"), self._result_of(response, message["id"])
        except MCPError:
            raise
        except UpstreamError as exc:
            raise MCPUnreachable(exc.message) from None

    def _post(self, message: dict[str, Any]) -> requests.Response:
        had_session = self._session_id is not None
        response = self._upstream.send("POST", self.url, data=json.dumps(message).encode(), headers=self._headers())
        if response.status_code == 404 and had_session:
            response.close()
            raise _SessionExpired("the MCP server no longer knows the session")
        if response.status_code >= 400:
            response.close()
            error = MCPUnreachable if response.status_code >= 500 else MCPError
            raise error(f"the MCP server answered HTTP {response.status_code} to {message.get('method')}")
        return response

    def _result_of(self, response: requests.Response, request_id: int) -> dict[str, Any]:
        """The `result` of the JSON-RPC response to `request_id`, from a JSON or an SSE body."""
        try:
            if response.headers.get("Content-Type", "").startswith("text/event-stream"):
                messages = (json.loads(data) for data in iter_data(self._upstream.iter_body(response)))
            else:
                messages = iter([json.loads(self._upstream.read_body(response))])
            for message in messages:
                for item in message if isinstance(message, list) else [message]:
                    if isinstance(item, dict) and item.get("id") == request_id:
                        if "error" in item:
                            error = item["error"] if isinstance(item["error"], dict) else {}
                            raise MCPError(f"the MCP server answered error {error.get('code')}: "
                                           f"{error.get('message', '')}")
                        result = item.get("result")
                        return result if isinstance(result, dict) else {}
        except MCPError:
            raise
        except UpstreamError as exc:
            raise MCPUnreachable(f"the MCP server broke off its answer: {exc.message}") from None
        except ValueError:
            raise MCPError("the MCP server sent a body that is not JSON-RPC") from None
        finally:
            response.close()
        raise MCPError(f"the MCP server sent no response to request {request_id}")


class _SessionExpired(MCPError):
    pass


def display_url(url: str) -> str:
    """The URL without credentials or query (which may carry a token), for logs and listings."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _text_of(result: dict[str, Any]) -> str:
    """A tool result as text for the model: text parts as they are, other parts as JSON."""
    parts = []
    for item in result.get("content") or []:
        if isinstance(item, dict) and item.get("type") == "text":
            parts.append(str(item.get("text", "")))
        else:
            parts.append(json.dumps(item))
    if not parts and result.get("structuredContent") is not None:
        parts.append(json.dumps(result["structuredContent"]))
    return "\n".join(parts)
