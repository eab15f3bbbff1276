"""MCP sessions follow gunicorn's workers: each worker initializes its servers as it starts, before
any request reaches it, and ends the session (DELETE) as it exits."""

from __future__ import annotations

import signal
import subprocess

import requests

from tests.mcp.conftest import eventually
from tests.mcp.fake_mcp import fake_mcp_server
from tests.support.fake_provider import Reply
from tests.support.live_gateway import ROOT, free_port, gateway_environ, gunicorn_command

WORKERS = 2


def methods(fake) -> list[str]:
    return [r.json().get("method") if r.method == "POST" else r.method for r in list(fake.requests)]


def test_workers_connect_at_start_and_close_their_sessions_at_exit(fake_provider, tmp_path):
    fake_mcp_server(fake_provider, tools_pages=[["lookup"]])
    fake_provider.on("DELETE", "/mcp", Reply(status=200))
    port = free_port()
    log_path = tmp_path / "gateway.log"
    env = gateway_environ({"SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(port), "WEB_CONCURRENCY": str(WORKERS),
                           "SERVER_WRITE_TIMEOUT": "5s", "MCP_ENABLE": "true", "MCP_EXPOSE": "true",
                           "MCP_SERVERS": fake_provider.url + "/mcp"})
    with open(log_path, "wb") as log:
        # started by hand: the live_gateway fixture would send its readiness requests first
        process = subprocess.Popen(gunicorn_command(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # No request has been sent to the gateway, yet every worker has opened its session.
        eventually(lambda: methods(fake_provider).count("tools/list") >= WORKERS, timeout=30)
        assert methods(fake_provider).count("initialize") == WORKERS
        assert process.poll() is None
        # So the very first request already sees the tools.
        listing = requests.get(f"http://127.0.0.1:{port}/v1/mcp/tools", timeout=10).json()["data"]
        assert [tool["name"] for tool in listing] == ["mcp_lookup"]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    deletes = [r for r in fake_provider.requests if r.method == "DELETE"]
    assert len(deletes) == WORKERS, log_path.read_text()
    assert {r.headers["mcp-session-id"] for r in deletes} == {"s-123"}
    assert process.returncode == 0
    assert "Traceback" not in log_path.read_text()
