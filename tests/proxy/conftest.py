"""One live gunicorn gateway for the proxy's end-to-end tests, in front of fake providers.

`provider` plays OpenAI (at /v1) and Anthropic (at /anthropic/v1); `elsewhere` is another host
that no proxied request may ever reach. Both are emptied before each test.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.fake_provider import FakeProvider
from tests.support.live_gateway import GatewayLauncher, LiveGateway
from tests.support.refused import refusing_port

BODY_LIMIT = 1024 * 1024


@dataclass
class ProxySetup:
    gateway: LiveGateway
    provider: FakeProvider
    elsewhere: FakeProvider

    def worker_pid(self) -> int:
        return worker_pid(self.gateway)


def worker_pid(gateway: LiveGateway) -> int:
    """The one gevent worker under gunicorn's master."""
    pid = gateway.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), so a buffer freed again still counts."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


@pytest.fixture(scope="module")
def proxy_setup_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxySetup]:
    provider, elsewhere = FakeProvider().start(), FakeProvider().start()
    launcher = GatewayLauncher(tmp_path_factory.mktemp("gateway"))
    with refusing_port() as nobody:
        gateway = launcher({
            "OPENAI_API_URL": provider.url + "/v1", "OPENAI_API_KEY": "sk-provider-openai",
            "ANTHROPIC_API_URL": provider.url + "/anthropic/v1", "ANTHROPIC_API_KEY": "sk-provider-anthropic",
            "MISTRAL_API_URL": f"http://127.0.0.1:{nobody}/v1", "MISTRAL_API_KEY": "k",  # connections refused
            "CLIENT_TIMEOUT": "1s", "SERVER_MAX_REQUEST_BODY_SIZE": str(BODY_LIMIT),
            "DISALLOWED_MODELS": "gpt-4o-forbidden",
        })
        yield ProxySetup(gateway, provider, elsewhere)
        launcher.stop_all()
    provider.stop()
    elsewhere.stop()


@pytest.fixture
def proxy_setup(proxy_setup_once: ProxySetup) -> ProxySetup:
    for fake in (proxy_setup_once.provider, proxy_setup_once.elsewhere):
        fake.reset()
    return proxy_setup_once


@dataclass
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes


def raw_request(port: int, request: bytes, timeout: float = 10) -> RawReply:
    """Send bytes exactly as given (no client library normalising the path) and read the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock, method=request.split(b" ", 1)[0].decode())
        response.begin()
        body = response.read()
        return RawReply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
