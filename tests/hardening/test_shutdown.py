"""SIGTERM: SERVER_WRITE_TIMEOUT is the grace period. Requests in flight may finish within it;
whatever still runs at its end is ended with a clear error (a stream's last event says the
server is stopping), and the worker exits on its own before gunicorn's master kills it
(issue 20, item 8)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.hardening.raw_http import closed_within, connect, read_response
from tests.support.fake_provider import Reply, sse_event, sse_reply
from tests.support.live_gateway import LiveGateway
from tests.support.mcp_process import MCPServerProcess

CHAT = "/v1/chat/completions"
GRACE = 2.0
DELTA = {"choices": [{"index": 0, "delta": {"content": "w"}}]}


def provider_env(fake, **extra: str) -> dict[str, str]:
    return {"OPENAI_API_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk-provider-secret",
            "SERVER_WRITE_TIMEOUT": f"{GRACE:g}s", **extra}


class Stream:
    """A streaming chat request read in a thread; `events` are the SSE data payloads so far."""

    def __init__(self, gateway: LiveGateway):
        self.events: list[str] = []
        self.arrived: list[float] = []
        self.ended_at: float | None = None
        self.first = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(gateway,), daemon=True)
        self._thread.start()

    def _read(self, gateway: LiveGateway) -> None:
        with requests.post(gateway.url + CHAT, stream=True, timeout=60,
                           json={"model": "openai/m", "stream": True,
                                 "messages": [{"role": "user", "content": "x"}]}) as response:
            for line in response.iter_lines():
                if line.startswith(b"data: "):
                    self.events.append(line[6:].decode())
                    self.arrived.append(time.monotonic())
                    self.first.set()
        self.ended_at = time.monotonic()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream never ended"


def stop(gateway: LiveGateway) -> float:
    gateway.process.terminate()
    return time.monotonic()


def assert_cut_with_shutdown_event(stream: Stream, stopped_at: float) -> None:
    assert stream.ended_at is not None
    assert GRACE * 0.75 <= stream.ended_at - stopped_at < GRACE + 8  # ended at the end of the grace period
    last = json.loads(stream.events[-1])
    assert last["error"]["code"] == "server_shutting_down"
    assert last["error"]["type"] == "service_unavailable"
    assert "SERVER_WRITE_TIMEOUT" in last["error"]["message"]
    assert "[DONE]" not in stream.events
    assert sum("server_shutting_down" in event for event in stream.events) == 1


def assert_exited_on_its_own(gateway: LiveGateway, stopped_at: float) -> None:
    assert gateway.process.wait(GRACE + 15) == 0
    logs = gateway.logs()
    assert "SIGKILL" not in logs and "graceful timeout" not in logs.lower(), logs[-2000:]
    assert "Traceback" not in logs


def test_a_stream_still_sending_at_the_end_of_the_grace_period_ends_with_an_error_event(live_gateway, fake_provider):
    fake_provider.on("POST", CHAT, sse_reply([DELTA] * 80, delay=0.25))  # 20 s of stream
    gateway = live_gateway(provider_env(fake_provider))
    stream = Stream(gateway)
    assert stream.first.wait(10)
    stopped_at = stop(gateway)
    stream.join(GRACE + 15)
    assert_cut_with_shutdown_event(stream, stopped_at)
    assert sum(1 for at in stream.arrived if at > stopped_at + 0.5) >= 3  # it kept streaming meanwhile
    assert_exited_on_its_own(gateway, stopped_at)


def test_a_stream_waiting_on_a_silent_provider_is_ended_too(live_gateway, fake_provider):
    chunks = [sse_event(DELTA), sse_event(DELTA)]
    fake_provider.on("POST", CHAT, Reply(headers={"Content-Type": "text/event-stream"}, chunks=chunks,
                                         pauses=[0, 30]))
    gateway = live_gateway(provider_env(fake_provider))
    stream = Stream(gateway)
    assert stream.first.wait(10)
    stopped_at = stop(gateway)
    stream.join(GRACE + 15)
    assert_cut_with_shutdown_event(stream, stopped_at)
    assert_exited_on_its_own(gateway, stopped_at)


def test_a_stream_that_ends_within_the_grace_period_is_not_cut(live_gateway, fake_provider):
    fake_provider.on("POST", CHAT, sse_reply([DELTA] * 4, delay=0.25))
    gateway = live_gateway(provider_env(fake_provider, SERVER_WRITE_TIMEOUT="10s"))
    stream = Stream(gateway)
    assert stream.first.wait(10)
    stopped_at = stop(gateway)
    stream.join(20)
    assert stream.events[-1] == "[DONE]" and len(stream.events) == 5
    assert_exited_on_its_own(gateway, stopped_at)


def test_a_request_waiting_on_the_provider_gets_503_at_the_end_of_the_grace_period(live_gateway, fake_provider):
    fake_provider.on("POST", CHAT, Reply(hang=30, body=b"{}", headers={"Content-Type": "application/json"}))
    gateway = live_gateway(provider_env(fake_provider))
    result: dict = {}

    def call() -> None:
        response = requests.post(gateway.url + CHAT, timeout=60,
                                 json={"model": "openai/m", "messages": [{"role": "user", "content": "x"}]})
        result.update(status=response.status_code, type=response.headers.get("Content-Type"),
                      body=response.json(), at=time.monotonic())

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    while not fake_provider.requests:
        time.sleep(0.05)
    stopped_at = stop(gateway)
    caller.join(GRACE + 15)
    assert result["status"] == 503 and result["type"] == "application/json"
    assert result["body"]["error"]["code"] == "server_shutting_down"
    assert GRACE * 0.75 <= result["at"] - stopped_at < GRACE + 8
    assert_exited_on_its_own(gateway, stopped_at)


def test_idle_keep_alive_connections_are_closed_at_once_and_do_not_hold_the_shutdown(live_gateway):
    gateway = live_gateway({"SERVER_WRITE_TIMEOUT": "30s"})
    with connect(gateway.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert read_response(sock).status == 200
        stopped_at = stop(gateway)
        closed, received = closed_within(sock, 10)
    assert closed and received == b""
    assert gateway.process.wait(30) == 0
    assert time.monotonic() - stopped_at < 10  # not the 30 s grace period


@pytest.fixture(scope="module")
def mcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MCPServerProcess]:
    server = MCPServerProcess(log_dir=tmp_path_factory.mktemp("mcp")).start()
    yield server
    server.stop()


def test_an_mcp_agent_stream_is_ended_with_an_error_event_too(live_gateway, fake_provider, mcp_server):
    fake_provider.on("POST", CHAT, sse_reply([DELTA] * 80, delay=0.25))
    gateway = live_gateway(provider_env(fake_provider, MCP_ENABLE="true", MCP_EXPOSE="true",
                                                    MCP_SERVERS=mcp_server.url))
    deadline = time.monotonic() + 15
    while not requests.get(gateway.url + "/v1/mcp/tools", timeout=5).json().get("data"):  # the agent loop applies
        assert time.monotonic() < deadline, "the MCP tools never showed up"
        time.sleep(0.1)
    stream = Stream(gateway)
    assert stream.first.wait(10)
    assert "tools" in fake_provider.requests[-1].json()  # it went through the agent loop
    stopped_at = stop(gateway)
    stream.join(GRACE + 15)
    assert_cut_with_shutdown_event(stream, stopped_at)
    assert_exited_on_its_own(gateway, stopped_at)
