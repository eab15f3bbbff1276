"""A small synchronous MCP client over `requests`: the streamable-HTTP transport, nothing else.

Why not the `mcp` SDK's client: it runs on asyncio, and inside a gevent worker every request
is a greenlet of the same OS thread; a second `asyncio.run` in another greenlet fails with
"cannot be called from a running event loop" (probed with mcp 2.3.0). This client follows the
transport as the specification writes it (protocol revision 2025-06-18):

    POST initialize                 -> the server's `Mcp-Session-Id` header (if it sends one)
    POST notifications/initialized  -> 202
    POST tools/list (+ nextCursor)  -> every tool
    POST tools/call                 -> the result

Every POST carries `Accept: application/json, text/event-stream`; after initialize also
`Mcp-Session-Id` and `MCP-Protocol-Version`. An answer is either one JSON body or an SSE stream
whose events carry JSON-RPC messages; the response with our request's id is taken, server
notifications before it are skipped. A 404 on a request with a session means the session
expired: the client initializes again once and resends. The caller's credentials never reach an
MCP server: this client only ever sends the headers above.

Failures are `MCPError`s (502 if one ever reached the error handler; the catalog turns them
into an unavailable server or an error result the model reads):

    MCPError            the server answered something that is not a usable JSON-RPC result
    └── MCPUnreachable  no answer: connection refused, reset or timed out
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from app.errors import UpstreamError

PROTOCOL_VERSION = "2025-06-18"
ACCEPT = "application/json, text/event-stream"
CLIENT_INFO = {"name": "inference-gateway-python", "version": "1"}
MAX_TOOL_PAGES = 100


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

    def __init__(self, url: str, *, connect_timeout: float, request_timeout: float, pool_size: int = 32):
        self.url = url
        self.display_url = display_url(url)
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._http = requests.Session()
        self._http.trust_env = False  # no proxies or .netrc credentials from the environment
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self._http.mount("http://", adapter)
        self._http.mount("https://", adapter)
        self._ids = itertools.count(1)
        self._session_id: str | None = None
        self._protocol_version: str | None = None
        self._init_lock = threading.Lock()

    # -- the protocol ---------------------------------------------------------------------
    def initialize(self) -> None:
        """Open a session (again): initialize, remember the session id, send initialized."""
        with self._init_lock:
            self._session_id = None
            self._protocol_version = None
            request_id = next(self._ids)
            response = self._post({"jsonrpc": "2.0", "id": request_id, "method": "initialize", "params": {
                "protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}},
                timeout=self._request_timeout)
            session_id = response.headers.get("Mcp-Session-Id")
            result = self._result_of(response, request_id)
            self._session_id = session_id
            self._protocol_version = str(result.get("protocolVersion") or PROTOCOL_VERSION)
            self._post({"jsonrpc": "2.0", "method": "notifications/initialized"},
                       timeout=self._request_timeout).close()

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
        """One JSON-RPC request in the session; initializes first if there is no session yet."""
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

    def close(self) -> None:
        """End the session politely (DELETE, as the transport asks) and drop the connections."""
        if self._session_id:
            try:
                self._http.delete(self.url, headers=self._headers(), timeout=(self._connect_timeout, 1.0))
            except requests.RequestException:
                pass
        self._session_id = None
        self._protocol_version = None
        self._http.close()

    # -- the transport --------------------------------------------------------------------
    def _send(self, method: str, params: dict[str, Any] | None, timeout: float | None) -> dict[str, Any]:
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        response = self._post(message, timeout=timeout or self._request_timeout)
        return self._result_of(response, request_id)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
        if self._session_id:
            headers["Mcp-Session-Id"] = self._session_id
        if self._protocol_version:
            headers["MCP-Protocol-Version"] = self._protocol_version
        return headers

    def _post(self, message: dict[str, Any], *, timeout: float) -> requests.Response:
        had_session = self._session_id is not None
        try:
            response = self._http.post(self.url, data=json.dumps(message), headers=self._headers(),
                                       timeout=(self._connect_timeout, timeout), stream=True,
                                       allow_redirects=False)
        except requests.RequestException as exc:
            raise MCPUnreachable(f"the MCP server did not answer ({type(exc).__name__})") from None
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
            content_type = response.headers.get("Content-Type", "")
            if content_type.startswith("text/event-stream"):
                messages: Iterator[Any] = _sse_messages(response)
            else:
                messages = iter([json.loads(response.content)])
            for message in messages:
                for item in message if isinstance(message, list) else [message]:
                    if isinstance(item, dict) and item.get("id") == request_id:
                        if "error" in item:
                            error = item["error"] if isinstance(item["error"], dict) else {}
                            raise MCPError(f"the MCP server answered error {error.get('code')}: "
                                           f"{error.get('message', '')}")
                        result = item.get("result")
                        return result if isinstance(result, dict) else {}
        except requests.RequestException as exc:
            raise MCPUnreachable(f"the MCP server broke off its answer ({type(exc).__name__})") from None
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


def _sse_messages(response: requests.Response) -> Iterator[Any]:
    """The JSON of each SSE event's data, as the events complete."""
    data: list[str] = []
    for raw in response.iter_lines(decode_unicode=False):
        line = raw.decode("utf-8").rstrip("\r")
        if not line:
            if data:
                yield json.loads("\n".join(data))
                data = []
        elif line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
    if data:
        yield json.loads("\n".join(data))


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
