"""Start the real `gunicorn wsgi:app` (gevent worker) on a free 127.0.0.1 port, as a user would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
# Settings the tests' own environment must not leak into a gateway under test.
_GATEWAY_PREFIXES = ("SERVER_", "CLIENT_", "AUTH_", "MCP_", "TELEMETRY_", "RATE_LIMIT_", "ALLOWED_MODELS",
                     "DISALLOWED_MODELS", "ENABLE_VISION", "ENVIRONMENT", "PORT", "WEB_CONCURRENCY",
                     "MODELS_CACHE_TTL", "TRUSTED_PROXIES", "ACCOUNTS_", "DATABASE_", "ADMIN_API_KEY", "USAGE_")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gunicorn_command() -> list[str]:
    script = Path(sys.executable).with_name("gunicorn")
    return [str(script), "wsgi:app"] if script.exists() else [sys.executable, "-m", "gunicorn", "wsgi:app"]


def gateway_environ(env: dict[str, str] | None = None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(_GATEWAY_PREFIXES) and not k.endswith(("_API_KEY", "_API_URL"))}
    return {**base, **(env or {})}


@dataclass
class LiveGateway:
    process: subprocess.Popen
    port: int
    log_path: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class GatewayLauncher:
    """What the `live_gateway` fixture yields: call it to start a gateway; all are stopped after the test."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.started: list[LiveGateway] = []

    def __call__(self, env: dict[str, str] | None = None, *, workers: int = 1, port: int | None = None,
                 ready_timeout: float = 30, https_ca: Path | None = None, cwd: Path = ROOT) -> LiveGateway:
        """Start gunicorn; with `https_ca`, the gateway serves TLS and is checked against that CA file.
        `cwd`: gunicorn's working directory (where it finds gunicorn.conf.py and `.env`)."""
        port = port or free_port()
        log_path = self.tmp_path / f"gateway-{port}.log"
        # SERVER_WRITE_TIMEOUT is gunicorn's graceful timeout; idle keep-alive connections left by
        # test clients would otherwise hold every teardown for its 30 s default.
        full_env = gateway_environ({"SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(port),
                                    "WEB_CONCURRENCY": str(workers), "SERVER_WRITE_TIMEOUT": "3s", **(env or {})})
        with open(log_path, "wb") as log:
            process = subprocess.Popen(gunicorn_command(), cwd=cwd, env=full_env, stdout=log,
                                       stderr=subprocess.STDOUT)
        gateway = LiveGateway(process, port, log_path, scheme="https" if https_ca else "http")
        self.started.append(gateway)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{gateway.logs()}")
            try:
                verify = str(https_ca) if https_ca else True
                if requests.get(gateway.url + "/health", timeout=1, verify=verify).status_code == 200:
                    return gateway
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer /health within {ready_timeout}s:\n{gateway.logs()}")

    def expect_exit(self, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
        """Run gunicorn with `env` where start-up must fail; returns the finished process."""
        full_env = gateway_environ({"SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(free_port()), **env})
        return subprocess.run(gunicorn_command(), check=False, cwd=ROOT, env=full_env, capture_output=True, text=True,
                              timeout=timeout)

    def stop_all(self) -> None:
        for gateway in self.started:
            gateway.stop()
