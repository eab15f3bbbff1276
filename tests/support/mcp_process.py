"""Run the FastMCP test server (tests/support/mcp_server.py) as a subprocess on 127.0.0.1.

    server = MCPServerProcess(port).start()   # returns once it accepts connections
    server.url                                 # http://127.0.0.1:PORT/mcp
    server.stop(); server.start()              # same port: a server that goes down and comes back
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.live_gateway import ROOT, free_port


class MCPServerProcess:
    def __init__(self, port: int | None = None, *, log_dir: Path | None = None):
        self.port = port or free_port()
        self.log_path = (log_dir or Path("/tmp")) / f"mcp-server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self, ready_timeout: float = 20) -> MCPServerProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "tests.support.mcp_server", str(self.port)],
                                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"MCP test server exited:\n{self.log_path.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"MCP test server did not listen within {ready_timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
