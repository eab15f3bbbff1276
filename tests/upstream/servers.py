"""Servers the outbound tests need beyond a fake provider, each on a port of its own (port 0).

    TrickleServer(response, pause=0.2).start()   answers every request by writing `response`
                                                 one byte every `pause` seconds (its headers too)
    ProxyProcess(tmp_path).start()               a real forward proxy (PyPI `proxy.py`) in a
                                                 subprocess; `.seen()` is every request it forwarded
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.live_gateway import ROOT


class TrickleServer:
    def __init__(self, response: bytes, *, pause: float):
        self.response = response
        self.pause = pause
        self.requests = 0
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        assert self._listener is not None
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> TrickleServer:
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            head = b""
            while b"\r\n\r\n" not in head:
                data = connection.recv(65536)
                if not data:
                    return
                head += data
            self.requests += 1
            for byte in self.response:
                if self._stopping.wait(self.pause):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return  # the client gave up


class ProxyProcess:
    """proxy.py on 127.0.0.1 (port 0, reported through its port file), with the `LoopbackResolver`
    plugin: any host name resolves to 127.0.0.1 (so a target named `*.gateway.invalid` is reached
    only through the proxy) and every request is written to a log."""

    def __init__(self, tmp_path: Path):
        self.port_file = tmp_path / "proxy.port"
        self.log_path = tmp_path / "proxy-requests.log"
        self.output = tmp_path / "proxy.out"
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 30) -> ProxyProcess:
        self.log_path.touch()
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0",
                 "--port-file", str(self.port_file), "--num-acceptors", "1", "--num-workers", "1",
                 "--plugins", "tests.upstream.proxy_plugin.LoopbackResolver"],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={"PATH": "/usr/bin:/bin", "PROXY_REQUEST_LOG": str(self.log_path), "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"proxy.py exited:\n{self.output.read_text(errors='replace')}")
            text = self.port_file.read_text() if self.port_file.exists() else ""
            if text.strip():
                self.port = int(text.split()[0])
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"proxy.py did not start within {ready_timeout}s:\n{self.output.read_text(errors='replace')}")

    def seen(self) -> list[str]:
        """`METHOD host:port` (and the path for plain HTTP) of each request the proxy forwarded."""
        return [line for line in self.log_path.read_text().splitlines() if line]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
