"""A real nginx (Debian's package) in front of a live gateway, run by a test as its own process.

    proxy = NginxProxy.start(tmp_path, upstream_port=gateway.port)
    requests.get(proxy.url + "/health")
    proxy.access_log()      # the JSON lines deploy/nginx.conf's log_format writes
    proxy.stop()

What runs is the shipped `deploy/nginx.conf`, with only its addresses swapped (`SWAPS`: the
listen address, the gateway's address, the log directory); `changes` lets a test add a variant
on top (a short proxy_read_timeout, ignoring a header) and says so at the call. The file is
included in a minimal main configuration as Debian's /etc/nginx/nginx.conf would include it.

nginx runs in the foreground (`daemon off`), with its pid, error log and temporary files in
the test's directory. Its listening socket is bound to port 0 here and handed to nginx in the
`NGINX` environment variable, nginx's own way of inheriting sockets (binary upgrades), so no
port is guessed. A missing nginx binary raises: tests that need nginx fail, never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONF = ROOT / "deploy" / "nginx.conf"
# What deploy/nginx.conf says where a real host would differ; each appears exactly once.
SWAPS = {"listen": "listen 80;", "upstream": "server 127.0.0.1:8080;", "logs": "/var/log/nginx/"}

_MAIN_CONF = """\
{user}worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/inference-gateway.conf;
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if not found:
        raise RuntimeError("nginx is not installed (Debian: apt-get install -y nginx); .ci/run installs it")
    return found


def shipped_conf(*, listen_port: int, upstream_port: int, log_dir: Path,
                 changes: dict[str, str] | None = None) -> str:
    """deploy/nginx.conf with its addresses swapped for this test's, plus `changes` (old text -> new)."""
    text = SHIPPED_CONF.read_text()
    replacements = {SWAPS["listen"]: f"listen 127.0.0.1:{listen_port};",
                    SWAPS["upstream"]: f"server 127.0.0.1:{upstream_port};",
                    SWAPS["logs"]: f"{log_dir}/",
                    **(changes or {})}
    for old, new in replacements.items():
        if text.count(old) != 1:
            raise AssertionError(f"deploy/nginx.conf should contain {old!r} exactly once")
        text = text.replace(old, new)
    return text


@dataclass
class NginxProxy:
    process: subprocess.Popen
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, directory: Path, *, upstream_port: int, changes: dict[str, str] | None = None,
              ready_timeout: float = 20) -> NginxProxy:
        binary = nginx_binary()
        directory.mkdir(parents=True, exist_ok=True)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(511)
        port = listener.getsockname()[1]
        (directory / "inference-gateway.conf").write_text(
            shipped_conf(listen_port=port, upstream_port=upstream_port, log_dir=directory, changes=changes))
        # Run as root (a CI container), nginx would hand its workers to `nobody`, who cannot
        # enter the test's private temporary directory.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        (directory / "nginx.conf").write_text(_MAIN_CONF.format(user=user, dir=directory))
        command = [binary, "-e", str(directory / "error.log"), "-p", str(directory),
                   "-c", str(directory / "nginx.conf"), "-g", "daemon off;"]
        with open(directory / "nginx.out", "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, pass_fds=(listener.fileno(),),
                                       env={**os.environ, "NGINX": f"{listener.fileno()};"})
        listener.close()  # nginx holds its own copy
        proxy = cls(process, port, directory)
        proxy.wait_ready(ready_timeout)
        return proxy

    def wait_ready(self, timeout: float) -> None:
        """nginx answers (any status: the gateway behind it may be down on purpose)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n{self.errors()}")
            try:
                requests.get(self.url + "/health", timeout=2, headers={"Connection": "close"})
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not answer within {timeout}s:\n{self.errors()}")

    def errors(self) -> str:
        parts = [self.directory / "nginx.out", self.directory / "error.log"]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())

    def access_log(self) -> list[dict]:
        path = self.directory / "inference-gateway.access.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # nginx's fast shutdown
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
