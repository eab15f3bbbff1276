"""The agent loop: the model calls MCP tools, the gateway runs them and asks the model again.

`app.chat.dispatch` hands a chat call to it explicitly (it is not middleware) after routing,
auth, the model policy and the vision check; `app.chat.tool_loop` hands over how to reach the
provider as callables, so this module knows nothing of providers:

    if loop.applies():                                  # MCP on and at least one tool available
        data = loop.run(body, call_model)               # call_model(body) -> response dict
        events = loop.stream(body, open_stream)         # open_stream(body) -> iterator of parsed
                                                        #   chunk dicts ([DONE] left out)

Each model call gets the client's own `tools` plus the MCP tools (a client tool of the same
name wins). While the model answers with calls to MCP tools only, the calls run (several at
once when there are several), the assistant message and one `role: "tool"` message per call are
appended, and the model is called again, at most `max_iterations` model calls in all. A call to
one of the client's own tools ends the loop: that answer goes back to the client as usual. A
failing tool is an error result the model reads ("Error: ..."), never a failed request.

Streaming: every iteration's events go to the client as they arrive, as one stream with one
`[DONE]` at the end. Streamed tool calls are reassembled by index to be run. The first stream
is opened and its first event read before `stream` returns, so its errors raise to the view
(which answers with the right status); later errors end the stream with one
`data: {"error": {...}}` event. A usage-only chunk the client did not ask for
(`stream_options.include_usage`) is not relayed. Closing the generator (the client hung up)
closes the open provider stream.

Signals: the callables' own meters report usage and the model's tool calls (app.signals).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Any

from app.errors import GatewayError
from app.mcp.catalog import ToolCatalog
from app.mcp.client import ToolResult
from app.server.shutdown import SHUTDOWN
from app.upstream.transport import waiting_for_providers

log = logging.getLogger("gateway.mcp")

CallModel = Callable[[dict[str, Any]], dict[str, Any]]
OpenStream = Callable[[dict[str, Any]], Iterable[dict[str, Any]]]

DONE_EVENT = b"data: [DONE]\n\n"


class AgentLoop:
    def __init__(self, catalog: ToolCatalog, *, max_iterations: int):
        self.catalog = catalog
        self.max_iterations = max(1, max_iterations)

    def applies(self) -> bool:
        """True when MCP is on and at least one tool is available right now."""
        return bool(self.catalog.functions())

    # -- non-streaming -----------------------------------------------------------------------
    def run(self, body: dict[str, Any], call_model: CallModel) -> dict[str, Any]:
        turn = _Turn(self.catalog, body)
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
    def stream(self, body: dict[str, Any], open_stream: OpenStream) -> Iterator[bytes]:
        """Open the first stream and read its first event now (errors raise here); return the
        generator of SSE bytes the view sends."""
        turn = _Turn(self.catalog, body)
        events = _Opened(open_stream(turn.request()))
        return self._events(turn, events, open_stream)

    def _events(self, turn: _Turn, events: _Opened, open_stream: OpenStream) -> Iterator[bytes]:
        options = turn.body.get("stream_options")
        relay_usage_chunk = isinstance(options, dict) and options.get("include_usage") is True
        iteration = 1
        try:
            while True:
                assembled = _StreamedMessage()
                try:
                    for event in events:
                        if not relay_usage_chunk and event.get("choices") == [] and "usage" in event:
                            continue
                        assembled.feed(event)
                        yield b"data: " + json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
                finally:
                    events.close()
                calls = assembled.tool_calls()
                if not turn.all_mcp(calls):
                    break
                if iteration == self.max_iterations:
                    log.warning("MCP agent loop stopped after %d model calls (MCP_MAX_ITERATIONS)", iteration)
                    break
                turn.run_tools(assembled.message(), calls)
                SHUTDOWN.check()  # tools swallow errors: never call the model again past the grace period
                iteration += 1
                events = _Opened(open_stream(turn.request()))
        except GatewayError as exc:
            log.warning("MCP agent stream ended early: %s", exc.message)
            yield b"data: " + json.dumps(exc.envelope()).encode() + b"\n\n"
            return
        except Exception:
            log.exception("MCP agent stream failed")
            error = GatewayError("The stream failed inside the gateway.", code="internal_error")
            yield b"data: " + json.dumps(error.envelope()).encode() + b"\n\n"
            return
        yield DONE_EVENT


class _Opened:
    """A provider stream whose first event has been read (so opening errors surface at once)."""

    def __init__(self, events: Iterable[dict[str, Any]]):
        self._source = iter(events)
        try:
            head = next(self._source)
        except StopIteration:
            self._events: Iterator[dict[str, Any]] = iter(())
        except BaseException:
            self.close()
            raise
        else:
            self._events = chain((head,), self._source)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (event for event in self._events if isinstance(event, dict))

    def close(self) -> None:
        close = getattr(self._source, "close", None)
        if close is not None:
            close()


class _Turn:
    """One client request's conversation as the loop grows it."""

    def __init__(self, catalog: ToolCatalog, body: dict[str, Any]):
        self.catalog = catalog
        self.body = body
        self.messages: list[Any] = list(body.get("messages") or [])
        client_tools = list(body.get("tools") or [])
        client_names = {_function_name(tool) for tool in client_tools}
        mcp_tools = [tool for tool in catalog.functions() if tool["function"]["name"] not in client_names]
        self.mcp_names = frozenset(tool["function"]["name"] for tool in mcp_tools)
        self.tools = client_tools + mcp_tools

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
        results: list[ToolResult | None] = [None] * len(calls)

        def run(index: int) -> None:
            results[index] = self._run_one(calls[index])

        with waiting_for_providers():  # tool servers are outside the gateway, like providers
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

    def feed(self, chunk: dict[str, Any]) -> None:
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            return
        delta = choices[0].get("delta")
        if not isinstance(delta, dict):
            return
        if isinstance(delta.get("content"), str):
            self.content.append(delta["content"])
        parts = delta.get("tool_calls")
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, dict):
                continue
            index = part.get("index") if isinstance(part.get("index"), int) else len(self.calls)
            call = self.calls.setdefault(index, {"id": "", "type": "function",
                                                 "function": {"name": "", "arguments": ""}})
            if part.get("id"):
                call["id"] = part["id"]
            function = part.get("function") if isinstance(part.get("function"), dict) else {}
            if isinstance(function.get("name"), str) and not call["function"]["name"]:
                call["function"]["name"] = function["name"]
            if isinstance(function.get("arguments"), str):
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
