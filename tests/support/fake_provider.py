"""A real HTTP server on 127.0.0.1 that plays an LLM provider in tests.

It records every request it receives (method, path, query, headers, body) and answers by route
with JSON, an SSE stream sent slowly event by event, or a hang. When a client goes away in the
middle of a stream, `aborted` is set, so tests can prove the gateway closed the connection.
A pause before a chunk can be a `threading.Event` instead of seconds: the fake waits until the
test sets it (at most GATE_TIMEOUT), so a test can wait for an event instead of a clock.
It fails on command too: `Reply(drop=True)` closes the connection without answering, `cut=True`
ends a streamed body without its last chunk (a connection lost mid-response), and `Scripted`
answers with a sequence of replies, one per request (the last one repeats).

    fake = FakeProvider().start()
    fake.on("POST", "/v1/chat/completions", json_reply({"id": "x"}))
    fake.on("POST", "/v1/chat/completions", sse_reply([{"choices": []}], delay=0.05))
    fake.on("POST", "/v1/chat/completions", Scripted(json_reply({}, 503), json_reply({"id": "x"})))
    fake.requests[-1].json()
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    raw_path: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


GATE_TIMEOUT = 30.0  # longest wait for a test to open a gate (a pause given as a threading.Event)


@dataclass
class Reply:
    """What the fake answers. `chunks` are written one by one with `delay` seconds before each
    (or `pauses[i]` before chunk i, when given: seconds, or an Event the test sets)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes] | None = None
    delay: float = 0.0
    hang: float = 0.0  # seconds to wait before answering at all
    pauses: list[float | threading.Event] | None = None
    drop: bool = False  # close the connection without answering
    cut: bool = False  # after `chunks`, close the connection without ending the body


def json_reply(payload: Any, status: int = 200, headers: dict[str, str] | None = None, hang: float = 0.0) -> Reply:
    return Reply(status=status, headers={"Content-Type": "application/json", **(headers or {})},
                 body=json.dumps(payload).encode(), hang=hang)


def sse_event(data: Any) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def sse_reply(events: Iterable[Any], *, delay: float = 0.0, done: bool = True, status: int = 200) -> Reply:
    chunks = [sse_event(e) for e in events] + ([b"data: [DONE]\n\n"] if done else [])
    return Reply(status=status, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
                 chunks=chunks, delay=delay)


Handler = Callable[[Recorded], Reply]


class Scripted:
    """A route's replies in order, one per request; the last one repeats. `served` counts the requests."""

    def __init__(self, *replies: Reply | Handler):
        assert replies, "script at least one reply"
        self.replies = list(replies)
        self.served = 0
        self._lock = threading.Lock()

    def __call__(self, recorded: Recorded) -> Reply:
        with self._lock:
            reply = self.replies[min(self.served, len(self.replies) - 1)]
            self.served += 1
        return reply(recorded) if callable(reply) else reply


class _Server(ThreadingHTTPServer):
    # a gateway may open a thousand connections at once (load tests); the default backlog is 5
    request_queue_size = 1024


class FakeProvider:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.routes: dict[tuple[str, str], Reply | Handler] = {}
        self.aborted = threading.Event()
        self.streams_finished = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- set-up ---------------------------------------------------------------------------
    def on(self, method: str, path: str, reply: Reply | Handler) -> FakeProvider:
        """Answer `method path` (path without query; "*" matches any) with a Reply or a function of the request."""
        self.routes[(method.upper(), path)] = reply
        return self

    def reset(self) -> FakeProvider:
        """Forget routes and recorded requests and clear `aborted` (a module-scoped fake between tests)."""
        self.routes.clear()
        self.requests.clear()
        self.aborted.clear()
        self.streams_finished = 0
        return self

    def start(self) -> FakeProvider:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                else:
                    body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                recorded = Recorded(self.command, split.path, parse_qsl(split.query, keep_blank_values=True),
                                    {k.lower(): v for k, v in self.headers.items()}, body, raw_path=self.path)
                with fake._lock:
                    fake.requests.append(recorded)
                fake._answer(self, recorded)

            def _read_chunked(self) -> bytes:
                data = bytearray()  # not bytes +=: a large upload would be copied quadratically
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return bytes(data)
                    data += self.rfile.read(size)
                    self.rfile.readline()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        # a short poll interval: stop() (shutdown) returns within it
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # -- use ------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _route(self, recorded: Recorded) -> Reply:
        reply = self.routes.get((recorded.method, recorded.path)) or self.routes.get((recorded.method, "*"))
        if reply is None:
            return json_reply({"error": {"message": f"fake has no route for {recorded.method} {recorded.path}"}}, 404)
        return reply(recorded) if callable(reply) else reply

    def _answer(self, handler: BaseHTTPRequestHandler, recorded: Recorded) -> None:
        reply = self._route(recorded)
        if reply.hang:
            time.sleep(reply.hang)
        if reply.drop:
            handler.close_connection = True
            return
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            if reply.chunks is None:
                handler.send_header("Content-Length", str(len(reply.body)))
                handler.end_headers()
                if recorded.method != "HEAD":
                    handler.wfile.write(reply.body)
                handler.wfile.flush()
                return
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            handler.wfile.flush()
            for index, chunk in enumerate(reply.chunks):
                pause = reply.pauses[index] if reply.pauses is not None else reply.delay
                if isinstance(pause, threading.Event):
                    pause.wait(GATE_TIMEOUT)
                elif pause:
                    time.sleep(pause)
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                handler.wfile.flush()
            if reply.cut:
                handler.close_connection = True
                return
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
            with self._lock:
                self.streams_finished += 1
        except (BrokenPipeError, ConnectionResetError):
            self.aborted.set()
            handler.close_connection = True
