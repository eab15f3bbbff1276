"""HTTP/1.1 over a raw socket, for requests that `requests` refuses to send (malformed,
half-sent, trickled) and for watching when the gateway closes a connection."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(port: int, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_response(sock: socket.socket) -> RawResponse:
    """One response (1xx responses skipped); the body by Content-Length, else until the close."""
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed before a complete response: {buffer[:200]!r}")
            buffer += data
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if status >= 200:
            break
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(buffer) < length:
            data = sock.recv(65536)
            if not data:
                break
            buffer += data
        return RawResponse(status, headers, buffer[:length])
    while data := sock.recv(65536):
        buffer += data
    return RawResponse(status, headers, buffer)


def exchange(port: int, data: bytes, timeout: float = 10) -> RawResponse:
    """Send `data` on a new connection and read the answer."""
    with connect(port, timeout) as sock:
        sock.sendall(data)
        return read_response(sock)


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Read until the peer closes or `seconds` pass: (closed, what arrived meanwhile)."""
    deadline = time.monotonic() + seconds
    received = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return True, received
        if not data:
            return True, received
        received += data
    return False, received


def assert_envelope(response: RawResponse, status: int) -> dict[str, Any]:
    """The gateway's JSON error envelope with `status`, never an HTML page."""
    assert response.status == status, (response.status, response.body[:300])
    assert response.headers.get("content-type") == "application/json", response.headers
    error = response.json()["error"]
    assert error["message"] and error["type"]
    return error
