"""A chunked body is read as it arrives: chunks already here come as one piece, nothing is waited for
(app/upstream/arrived.py), against a real server writing exactly the bytes each test scripts."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.upstream.arrived import JOIN_LIMIT, arrived
from tests.support.certificates import self_signed
from tests.support.live_gateway import ROOT
from tests.upstream.test_upstream import provider_at

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
END = b"0\r\n\r\n"
WAIT = 10.0  # how long the server waits for the test to have read a piece (a failure, not a hang)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(n: int, size: int = 40) -> bytes:
    return b"data: " + str(n).encode().ljust(size, b".") + b"\n\n"


class ScriptedServer:
    """Answers one request with `steps`: bytes are written as they are; a threading.Event is waited for."""

    def __init__(self, steps: list[bytes | threading.Event], tls: ssl.SSLContext | None = None):
        self.steps = steps
        self.tls = tls
        self.waited_out = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http{'s' if self.tls else ''}://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        connection, _ = self._listener.accept()
        if self.tls is not None:
            connection = self.tls.wrap_socket(connection, server_side=True)
        with connection, self._listener:
            head = b""
            while b"\r\n\r\n" not in head:
                head += connection.recv(65536)
            for step in self.steps:
                if isinstance(step, threading.Event):
                    self.waited_out |= not step.wait(WAIT)
                else:
                    connection.sendall(step)
            connection.settimeout(WAIT)  # closed with the request body unread, it would be reset:
            while connection.recv(65536):  # drain until the client hangs up
                pass


@pytest.fixture
def read_from():
    responses = []

    def read(server: ScriptedServer) -> Iterator[bytes]:
        provider = provider_at(server.url + "/v1")
        response = provider.request("POST", "/chat/completions", data=b"{}", headers={"Content-Type": "application/json"})
        responses.append(response)
        return provider.iter_body(response)

    yield read
    for response in responses:
        response.close()


def test_events_written_together_come_as_one_piece(read_from):
    events = [event(n) for n in range(20)]
    server = ScriptedServer([HEAD + b"".join(chunk(e) for e in events) + END])
    assert list(read_from(server)) == [b"".join(events)]


def test_events_written_apart_come_one_by_one_each_before_the_next_is_written(read_from):
    read = [threading.Event() for _ in range(3)]
    server = ScriptedServer([HEAD, chunk(event(0)), read[0], chunk(event(1)), read[1], chunk(event(2)), read[2], END])
    pieces = []
    for n, piece in enumerate(read_from(server)):
        pieces.append(piece)
        read[n].set()  # only now does the server write the next event
    assert pieces == [event(0), event(1), event(2)]
    assert not server.waited_out


def test_a_chunk_half_here_is_not_waited_for(read_from):
    rest_may_come = threading.Event()
    second = chunk(event(1))
    server = ScriptedServer([HEAD + chunk(event(0)) + second[:20], rest_may_come, second[20:] + END])
    pieces = read_from(server)
    assert next(pieces) == event(0)  # handed on while the next event is still on its way
    rest_may_come.set()
    assert list(pieces) == [event(1)]
    assert not server.waited_out


def test_a_long_burst_is_joined_in_bounded_pieces(read_from):
    events = [event(n, size=1000) for n in range(200)]  # about 200 KB, written at once
    server = ScriptedServer([HEAD + b"".join(chunk(e) for e in events) + END])
    pieces = list(read_from(server))
    assert b"".join(pieces) == b"".join(events)
    assert len(pieces) < len(events)
    assert max(len(piece) for piece in pieces) < JOIN_LIMIT + len(events[0])
    assert all(piece.endswith(b"\n\n") for piece in pieces)  # whole chunks, never a cut one


# -- over TLS (every real provider), and in a gevent-patched process (the gateway's worker) ----------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def tls_pieces(steps: list[bytes | threading.Event], certificate: tuple[Path, Path]) -> Iterator[bytes]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = ScriptedServer(steps, tls=context)
    response = requests.post(server.url, data=b"{}", stream=True, verify=str(certificate[0]), timeout=WAIT)
    with response:
        yield from arrived(response.raw.read_chunked(decode_content=False), response.raw)


def test_over_tls_events_written_together_come_as_one_piece(certificate):
    events = [event(n) for n in range(20)]
    assert list(tls_pieces([HEAD + b"".join(chunk(e) for e in events) + END], certificate)) == [b"".join(events)]


def test_over_tls_a_chunk_half_here_is_not_waited_for(certificate):
    rest_may_come = threading.Event()
    second = chunk(event(1))
    pieces = tls_pieces([HEAD + chunk(event(0)) + second[:20], rest_may_come, second[20:] + END], certificate)
    assert next(pieces) == event(0)
    rest_may_come.set()
    assert list(pieces) == [event(1)]


@pytest.mark.skipif(os.environ.get("ARRIVED_UNDER_GEVENT") == "1", reason="this is the run under gevent")
def test_the_same_holds_in_a_gevent_patched_process():
    """The gateway's worker reads providers through gevent's sockets (and gevent's TLS)."""
    code = ("from gevent import monkey; monkey.patch_all(); import sys, pytest; "
            f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-p', 'no:xdist', {__file__!r}]))")
    run = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=ROOT, env={**os.environ, "ARRIVED_UNDER_GEVENT": "1"}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
