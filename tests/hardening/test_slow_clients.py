"""Slow clients cannot hold the gateway: an incomplete request ends after SERVER_READ_TIMEOUT,
an idle keep-alive connection after SERVER_IDLE_TIMEOUT, and clients still sending their
request never take the place of requests ready to be served (issue 20, item 1)."""

from __future__ import annotations

import socket
import statistics
import threading
import time

import pytest
import requests

from tests.hardening.raw_http import assert_envelope, closed_within, connect, read_response

CHAT = "/v1/chat/completions"
HEAD = b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n"


@pytest.fixture(scope="module")
def gateway(shared_fake, tmp_path_factory):
    """SERVER_READ_TIMEOUT=1s and a long SERVER_IDLE_TIMEOUT, so that the two cannot be confused."""
    from tests.support.live_gateway import GatewayLauncher

    launcher = GatewayLauncher(tmp_path_factory.mktemp("slow-clients"))
    yield launcher({"OPENAI_API_URL": shared_fake.url + "/v1", "OPENAI_API_KEY": "sk-provider-secret",
                    "SERVER_READ_TIMEOUT": "1s", "SERVER_IDLE_TIMEOUT": "8s"})
    launcher.stop_all()


INCOMPLETE = {
    "headers never finished": b"GET /health HTTP/1.1\r\nHost: gw\r\nX-Slow: a",
    "body shorter than its Content-Length": (b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: gw\r\n"
                                             b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mo"),
    "chunked body that stalls": (b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json"
                                 b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"mod\r\n"),
}


@pytest.mark.parametrize("data", INCOMPLETE.values(), ids=INCOMPLETE.keys())
def test_an_incomplete_request_gets_408_after_the_read_timeout(gateway, fake, data):
    started = time.monotonic()
    with connect(gateway.port) as sock:
        sock.sendall(data)
        response = read_response(sock)  # the socket's own timeout (10 s) fails the test if it never comes
        closed, _ = closed_within(sock, 10)
    assert_envelope(response, 408)
    assert "SERVER_READ_TIMEOUT" in response.json()["error"]["message"]
    assert closed and time.monotonic() - started >= 0.9
    assert not fake.requests


def test_trickling_bytes_does_not_extend_the_read_timeout(gateway):
    """A byte every 0.2 s keeps every single read short; the request as a whole still has 1 s."""
    request = b"GET /health HTTP/1.1\r\nHost: gw\r\nX-Slow: " + b"a" * 200
    started = time.monotonic()
    with connect(gateway.port) as sock:
        received = b""
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            sock.settimeout(0.2)
            try:
                received += sock.recv(65536)
            except TimeoutError:
                continue
            if received:
                break
        sock.settimeout(10)
        ended = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408 "), received[:100]
    assert ended < 8  # 1 s expected; the 200 bytes would have taken 40 s


def test_a_connection_that_sends_nothing_is_closed_after_the_read_timeout(gateway):
    with connect(gateway.port) as sock:
        closed, received = closed_within(sock, 5)  # SERVER_READ_TIMEOUT=1s, not SERVER_IDLE_TIMEOUT=8s
    assert closed and received == b""  # nothing was asked, nothing is answered


def test_an_idle_keep_alive_connection_waits_for_the_idle_timeout_not_the_read_timeout(gateway):
    with connect(gateway.port) as sock:
        sock.sendall(HEAD)
        assert read_response(sock).status == 200
        closed_early, _ = closed_within(sock, 3)  # three times SERVER_READ_TIMEOUT
        assert not closed_early
        sock.sendall(HEAD)  # a second request after 3 s idle is served
        assert read_response(sock).status == 200
        idle_since = time.monotonic()
        closed, received = closed_within(sock, 40)
        idle_for = time.monotonic() - idle_since
    assert closed and received == b""
    assert 7 <= idle_for < 40  # SERVER_IDLE_TIMEOUT=8s


def test_pipelined_requests_are_all_served(gateway):
    with connect(gateway.port) as sock:
        sock.sendall(HEAD * 2 + HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        closed, received = closed_within(sock, 10)
    assert closed and received.count(b"HTTP/1.1 200 OK\r\n") == 3


class Slowloris:
    """`count` connections that send a request head one byte per second, until stopped."""

    def __init__(self, port: int, count: int):
        self.sockets = [connect(port) for _ in range(count)]
        self.sent = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def _trickle(self) -> None:
        head = b"GET /health HTTP/1.1\r\nHost: gw\r\nX-Slow: " + b"a" * 4000
        while not self._stop.is_set() and self.sent < len(head):
            for sock in self.sockets:
                try:
                    sock.sendall(head[self.sent:self.sent + 1])
                except OSError:
                    self.failures += 1
            self.sent += 1
            self._stop.wait(1)

    def __enter__(self) -> Slowloris:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()

    def all_still_open(self) -> bool:
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                if sock.recv(1, socket.MSG_PEEK) == b"":
                    return False
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
        return self.failures == 0


def test_slowloris_does_not_stop_health_from_answering(live_gateway, capsys):
    """150 slow connections against one worker with WORKER_CONNECTIONS=100 (issue 20's attack):
    /health keeps answering quickly while every attacking connection is still held open."""
    gateway = live_gateway({"WEB_CONCURRENCY": "1", "WORKER_CONNECTIONS": "100"})
    session = requests.Session()
    with Slowloris(gateway.port, 150) as attack:
        while attack.sent < 3:  # every connection has started its request
            time.sleep(0.1)
        latencies = []
        for _ in range(20):
            started = time.perf_counter()
            response = requests.get(gateway.url + "/health", timeout=5)  # a new connection each time
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200
            assert session.get(gateway.url + "/health", timeout=5).status_code == 200  # and a kept-alive one
            time.sleep(0.1)
        assert attack.all_still_open()  # the attack was real: all 150 connections were held meanwhile
    with capsys.disabled():
        print(f"\n/health under 150 slowloris connections: median {statistics.median(latencies) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms over {len(latencies)} requests")
    assert statistics.median(latencies) < 0.1
    assert max(latencies) < 1.0


def test_worker_connections_still_bounds_requests_served_at_once(live_gateway, fake):
    """With WORKER_CONNECTIONS=2 and two 2-second streams running, a third request waits for a slot."""
    from tests.support.fake_provider import sse_reply

    fake.on("POST", CHAT, sse_reply([{"choices": [{"index": 0, "delta": {"content": "x"}}]}] * 8, delay=0.25))
    gateway = live_gateway({"OPENAI_API_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk-provider-secret",
                            "WEB_CONCURRENCY": "1", "WORKER_CONNECTIONS": "2"})
    streaming = threading.Barrier(3)

    def stream() -> None:
        with requests.post(gateway.url + CHAT, stream=True, timeout=30,
                           json={"model": "openai/m", "stream": True,
                                 "messages": [{"role": "user", "content": "x"}]}) as response:
            chunks = response.iter_content(None)
            next(chunks)
            streaming.wait(10)
            for _ in chunks:
                pass

    threads = [threading.Thread(target=stream) for _ in range(2)]
    for thread in threads:
        thread.start()
    streaming.wait(10)  # both streams hold a slot, with 1.75 s still to go
    started = time.monotonic()
    assert requests.get(gateway.url + "/health", timeout=30).status_code == 200
    waited = time.monotonic() - started
    for thread in threads:
        thread.join(30)
    assert waited >= 1.0  # it was served only when a stream had ended
