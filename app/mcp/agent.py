"""The agent loop: the model calls MCP tools, the gateway runs them and asks the model again.

The chat view calls it explicitly (it is not middleware) after routing, auth and the model
policy, handing over how to reach the provider as a callable, so this module knows nothing of
providers:

    agent = AgentLoop(catalog, max_iterations=settings.mcp_max_iterations)
    if agent.applies():
        return jsonify(agent.run(body, call_model))             # call_model(body) -> response dict
        return sse_response(agent.stream(body, open_stream))    # open_stream(body) -> iterator of
                                                                 #   SSE data payloads (bytes)

Each model call gets the client's own `tools` plus the MCP tools (a client tool of the same
name wins). While the model answers with calls to MCP tools only, the calls run (several at
once when there are several), the assistant message and one `role: "tool"` message per call are
appended, and the model is called again, at most `max_iterations` model calls in all. A call to
one of the client's own tools ends the loop: that answer goes back to the client as usual. A
failing tool is an error result the model reads ("Error: ..."), never a failed request.

Streaming: every iteration's events go to the client as they arrive, as one stream; the
intermediate `[DONE]`s are swallowed and one `[DONE]` ends it. Streamed tool calls are
reassembled by index to be run. Errors when opening the first stream raise (the view answers
with the right status); later errors end the stream with one `data: {"error": {...}}` event.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import current_app, has_app_context

from app.errors import GatewayError
from app.mcp.catalog import ToolCatalog
from app.mcp.client import ToolResult
from app.signals import tool_called

log = logging.getLogger("gateway.mcp")

CallModel = Callable[[dict[str, Any]], dict[str, Any]]
OpenStream = Callable[[dict[str, Any]], Iterable[bytes]]

DONE = b"[DONE]"


class AgentLoop:
    def __init__(self, catalog: ToolCatalog, *, max_iterations: int):
        self.catalog = catalog
        self.max_iterations = max(1, max_iterations)

    def applies(self) -> bool:
        """True when MCP is on and at least one tool is available right now."""
        return bool(self.catalog.functions())

    # -- non-streaming -----------------------------------------------------------------------
    def run(self, body: dict[str, Any], call_model: CallModel, *, provider: str = "",
            model: str = "") -> dict[str, Any]:
        turn = _Turn(self.catalog, body, provider=provider, model=model)
        for iteration in range(1, self.max_iterations + 1):
            response = call_model(turn.request())
            message = _first_message(response)
            calls = message.get("tool_calls") if message else None
            if not turn.all_mcp(calls):
                return response
            if iteration == self.max_iterations:
                log.warning("MCP agent loop stopped after %d model calls (MCP_MAX_ITERATIONS)", iteration)
                return response
            turn.run_tools(message, calls)
        raise AssertionError("unreachable")

    # -- streaming ---------------------------------------------------------------------------
    def stream(self, body: dict[str, Any], open_stream: OpenStream, *, provider: str = "",
               model: str = "") -> Iterator[bytes]:
        """Open the first stream now (so its errors reach the view), return the event generator."""
        turn = _Turn(self.catalog, body, provider=provider, model=model)
        first = open_stream(turn.request())
        return self._events(turn, first, open_stream)

    def _events(self, turn: _Turn, events: Iterable[bytes], open_stream: OpenStream) -> Iterator[bytes]:
        iteration = 1
        try:
            while True:
                assembled = _StreamedMessage()
                try:
                    for data in events:
                        if data.strip() == DONE:
                            continue
                        assembled.feed(data)
                        yield b"data: " + data + b"\n\n"
                finally:
                    close = getattr(events, "close", None)
                    if close is not None:
                        close()
                calls = assembled.tool_calls()
                if not turn.all_mcp(calls):
                    break
                if iteration == self.max_iterations:
                    log.warning("MCP agent loop stopped after %d model calls (MCP_MAX_ITERATIONS)", iteration)
                    break
                turn.run_tools(assembled.message(), calls)
                iteration += 1
                events = open_stream(turn.request())
        except GatewayError as exc:
            log.warning("MCP agent stream ended early: %s", exc.message)
            yield b"data: " + json.dumps(exc.envelope()).encode() + b"\n\n"
            return
        yield b"data: [DONE]\n\n"


class _Turn:
    """One client request's conversation as the loop grows it."""

    def __init__(self, catalog: ToolCatalog, body: dict[str, Any], *, provider: str, model: str):
        self.catalog = catalog
        self.body = body
        self.provider = provider
        self.model = model
        self.messages: list[Any] = list(body.get("messages") or [])
        client_tools = list(body.get("tools") or [])
        client_names = {_function_name(tool) for tool in client_tools}
        mcp_tools = [tool for tool in catalog.functions() if tool["function"]["name"] not in client_names]
        self.mcp_names = frozenset(tool["function"]["name"] for tool in mcp_tools)
        self.tools = client_tools + mcp_tools
        self._sender = current_app._get_current_object() if has_app_context() else None

    def request(self) -> dict[str, Any]:
        request = {**self.body, "messages": self.messages}
        if self.tools:
            request["tools"] = self.tools
        return request

    def all_mcp(self, calls: Any) -> bool:
        """True when the model called tools and every one of them is an MCP tool."""
        if not calls or not isinstance(calls, list):
            return False
        return all(_call_name(call) in self.mcp_names for call in calls)

    def run_tools(self, assistant: dict[str, Any], calls: list[dict[str, Any]]) -> None:
        """Run the calls (concurrently when several) and append the assistant and tool messages."""
        if self._sender is not None:
            for call in calls:
                tool_called.send(self._sender, provider=self.provider, model=self.model, tool_type="mcp",
                                 tool_name=_call_name(call))
        results: list[ToolResult | None] = [None] * len(calls)

        def run(index: int) -> None:
            results[index] = self._run_one(calls[index])

        if len(calls) == 1:
            run(0)
        else:
            threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        self.messages.append(assistant)
        for call, result in zip(calls, results, strict=True):
            text = result.text if result is not None else "Error: the tool did not run."
            self.messages.append({"role": "tool", "tool_call_id": call.get("id") or "", "content": text})

    def _run_one(self, call: dict[str, Any]) -> ToolResult:
        name = _call_name(call) or ""
        raw = (call.get("function") or {}).get("arguments") or "{}"
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return ToolResult(f"Error: the arguments of {name} are not valid JSON.", is_error=True)
        if not isinstance(arguments, dict):
            return ToolResult(f"Error: the arguments of {name} must be a JSON object.", is_error=True)
        try:
            return self.catalog.call(name, arguments)
        except Exception:  # a tool must never fail the request
            log.exception("MCP tool %s failed inside the gateway", name)
            return ToolResult(f"Error: the tool {name} failed inside the gateway.", is_error=True)


class _StreamedMessage:
    """The assistant message of one streamed answer: its text and its tool calls by index."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}

    def feed(self, data: bytes) -> None:
        try:
            chunk = json.loads(data)
        except ValueError:
            return
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not choices or not isinstance(choices[0], dict):
            return
        delta = choices[0].get("delta") or {}
        if delta.get("content"):
            self.content.append(str(delta["content"]))
        for part in delta.get("tool_calls") or []:
            call = self.calls.setdefault(int(part.get("index", 0)), {
                "id": "", "type": "function", "function": {"name": "", "arguments": ""}})
            if part.get("id"):
                call["id"] = part["id"]
            function = part.get("function") or {}
            if function.get("name") and not call["function"]["name"]:
                call["function"]["name"] = function["name"]
            if function.get("arguments"):
                call["function"]["arguments"] += function["arguments"]

    def tool_calls(self) -> list[dict[str, Any]]:
        return [self.calls[index] for index in sorted(self.calls)]

    def message(self) -> dict[str, Any]:
        return {"role": "assistant", "content": "".join(self.content) or None, "tool_calls": self.tool_calls()}


def _first_message(response: Any) -> dict[str, Any] | None:
    try:
        message = response["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        return None
    return message if isinstance(message, dict) else None


def _function_name(tool: Any) -> str | None:
    if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
        return tool["function"].get("name")
    return None


def _call_name(call: Any) -> str | None:
    return _function_name(call)
