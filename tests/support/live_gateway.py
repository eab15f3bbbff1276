"""Start the real `gunicorn wsgi:app` (gevent worker) on 127.0.0.1, as a user would.

    gateway = GatewayLauncher(tmp_path)({"OPENAI_API_KEY": "..."}, workers=1)
    gateway.url, gateway.port, gateway.logs(), gateway.stop()

Port: gunicorn binds port 0 itself (SERVER_PORT=0) and the harness reads the port it took from
gunicorn's own `Listening at: http://127.0.0.1:PORT` line; nothing picks a port, lets it go and
hopes. The listening socket is gunicorn's, so it behaves as in production: kept across a HUP,
handed to the new master on a USR2 re-exec (GUNICORN_FD). (`--bind fd://N` and LISTEN_FDS do not
survive a USR2 in gunicorn 27: the re-executed master looks for the descriptor number the first
one had already closed, and exits with EBADF.)

Events, not sleeps: gunicorn's output goes through a pipe to a reader thread, which copies it to
`log_path` and notes the `Listening at` line the moment it is written. Readiness is then one
GET /health: the listening socket holds the connection until a worker accepts it, so the answer
comes as soon as a worker serves. The gateways a launcher started are stopped with SIGQUIT
(gunicorn's quick shutdown) when the test is over; `stop()` is SIGTERM, the graceful one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.support.ports import reserved_port

ROOT = Path(__file__).resolve().parents[2]
# Settings the tests' own environment must not leak into a gateway under test.
_GATEWAY_PREFIXES = ("SERVER_", "CLIENT_", "AUTH_", "MCP_", "TELEMETRY_", "RATE_LIMIT_", "ALLOWED_MODELS",
                     "DISALLOWED_MODELS", "ENABLE_", "ENVIRONMENT", "PORT", "WEB_CONCURRENCY",
                     "MODELS_CACHE_TTL", "TRUSTED_PROXIES", "OIDC_", "EXPOSE_MCP", "LOG_LEVEL", "DEBUG_",
                     "WORKER_CONNECTIONS", "ACCOUNTS_", "DATABASE_", "ADMIN_API_KEY", "USAGE_")
_LISTENING = re.compile(r"Listening at: \w+://(\[[^\]]+\]|[^:\s]+):(\d+)")

# For tests not yet moved to port 0 or ReservedPort-style ports: a held port, never a freed one.
free_port = reserved_port


def gunicorn_command() -> list[str]:
    script = Path(sys.executable).with_name("gunicorn")
    return [str(script), "wsgi:app"] if script.exists() else [sys.executable, "-m", "gunicorn", "wsgi:app"]


def gateway_environ(env: dict[str, str] | None = None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(_GATEWAY_PREFIXES) and not k.endswith(("_API_KEY", "_API_URL"))}
    return {**base, **(env or {})}


class _Output:
    """Copies gunicorn's output to the log file, line by line, and notes where it listens."""

    def __init__(self, process: subprocess.Popen, log_path: Path):
        self.log_path = log_path
        self.address: tuple[str, int] | None = None
        self.listening = threading.Event()  # set at the Listening line, or when the output ends
        self.ended = threading.Event()
        self.text = ""
        self._new_line = threading.Condition()
        self._thread = threading.Thread(target=self._copy, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _copy(self, stream) -> None:
        with open(self.log_path, "ab") as log:
            for line in iter(stream.readline, b""):
                log.write(line)
                log.flush()
                decoded = line.decode(errors="replace")
                if self.address is None and (found := _LISTENING.search(decoded)):
                    self.address = (found.group(1).strip("[]"), int(found.group(2)))
                    self.listening.set()
                with self._new_line:
                    self.text += decoded
                    self._new_line.notify_all()
        stream.close()
        with self._new_line:
            self.ended.set()
            self._new_line.notify_all()
        self.listening.set()

    def wait_for(self, text: str, timeout: float) -> bool:
        """Wait until `text` appears in the output; False if it ended or `timeout` passed first."""
        with self._new_line:
            return self._new_line.wait_for(lambda: text in self.text or self.ended.is_set(), timeout) \
                and text in self.text

    def drain(self, timeout: float = 10) -> None:
        self.ended.wait(timeout)


@dataclass
class LiveGateway:
    process: subprocess.Popen
    port: int
    log_path: Path
    scheme: str = "http"
    host: str = "127.0.0.1"  # the address gunicorn bound (0.0.0.0 with $PORT)
    output: _Output | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def logs(self) -> str:
        if self.output is not None and self.process.poll() is not None:
            self.output.drain()  # everything the processes wrote before they exited
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 20) -> bool:
        """Wait for a line holding `text` (an event, e.g. "Handling signal: term"); False on timeout."""
        assert self.output is not None
        return self.output.wait_for(text, timeout)

    def stop(self, timeout: float = 20, sig: signal.Signals = signal.SIGTERM) -> int:
        """Stop gunicorn (SIGTERM: graceful) and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.output is not None:
            self.output.drain()
        return self.process.returncode


class GatewayLauncher:
    """What the `live_gateway` fixture yields: call it to start a gateway; all are stopped after the test."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.started: list[LiveGateway] = []

    def __call__(self, env: dict[str, str] | None = None, *, workers: int = 1, ready_timeout: float = 30,
                 https_ca: Path | None = None, cwd: Path = ROOT) -> LiveGateway:
        """Start gunicorn; with `https_ca`, the gateway serves TLS and is checked against that CA file.
        `cwd`: gunicorn's working directory (where it finds gunicorn.conf.py and `.env`)."""
        log_path = self.tmp_path / f"gateway-{len(self.started) + 1}.log"
        # SERVER_WRITE_TIMEOUT is gunicorn's graceful timeout; idle keep-alive connections left by
        # test clients would otherwise hold a SIGTERM for its 30 s default.
        full_env = gateway_environ({"SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0", "WEB_CONCURRENCY": str(workers),
                                    "SERVER_WRITE_TIMEOUT": "3s", **(env or {})})
        # A process group of its own: a master re-executed by USR2 (or a stray worker) is found and
        # stopped with it after the test.
        process = subprocess.Popen(gunicorn_command(), cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        output = _Output(process, log_path)
        gateway = LiveGateway(process, 0, log_path, scheme="https" if https_ca else "http", output=output)
        self.started.append(gateway)
        if not output.listening.wait(ready_timeout):
            raise RuntimeError(f"gunicorn did not listen within {ready_timeout}s:\n{gateway.logs()}")
        if output.address is None:
            process.wait(10)
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{gateway.logs()}")
        gateway.host, gateway.port = output.address
        try:
            # Queued by the listening socket until a worker accepts it: no polling needed.
            answer = requests.get(gateway.url + "/health", timeout=ready_timeout, headers={"Connection": "close"},
                                  verify=str(https_ca) if https_ca else True)
        except requests.RequestException as exc:
            output.ended.wait(5)  # a worker that failed to boot takes the master down: show why
            raise RuntimeError(f"gunicorn did not answer /health ({exc!r}); exit status "
                               f"{process.poll()}:\n{gateway.logs()}") from None
        if answer.status_code != 200:
            raise RuntimeError(f"/health answered {answer.status_code}:\n{gateway.logs()}")
        return gateway

    def expect_exit(self, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
        """Run gunicorn with `env` where start-up must fail; returns the finished process. One that
        starts after all is stopped (its whole process group) and fails the test."""
        full_env = gateway_environ({"SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0", **env})
        process = subprocess.Popen(gunicorn_command(), cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise AssertionError(f"gunicorn did not exit within {timeout}s:\n{stdout}{stderr}") from None
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def stop_all(self) -> None:
        """After the test: gunicorn's quick shutdown (SIGQUIT); nothing is left to finish gracefully.
        Whatever else is left in a gateway's process group (a master re-executed by USR2) goes too."""
        for gateway in self.started:
            gateway.stop(sig=signal.SIGQUIT)
            for sig in (signal.SIGQUIT, signal.SIGKILL):
                try:
                    os.killpg(gateway.process.pid, sig)
                except ProcessLookupError:
                    break
                if gateway.output is not None and gateway.output.ended.wait(10):
                    break  # every process that held the output pipe is gone
