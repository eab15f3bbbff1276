"""One gunicorn gateway and one fake provider shared by the live chat tests of a module.

The gateway routes `openai/*` to the fake, refuses `openai/forbidden`, has vision on, a 2 s
CLIENT_TIMEOUT (so a 504 and a mid-stream stall are quick to provoke), and `groq/*` pointed at a
port that refuses connections (502).
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.support.fake_provider import FakeProvider
from tests.support.live_gateway import GatewayLauncher, LiveGateway
from tests.support.refused import refusing_port

CLIENT_TIMEOUT = 2.0
# keep-alive connections of the SDKs would otherwise hold gunicorn's shutdown for graceful_timeout
QUICK_STOP = {"SERVER_WRITE_TIMEOUT": "1s"}


@pytest.fixture(scope="module")
def shared_fake() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(shared_fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    launcher = GatewayLauncher(tmp_path_factory.mktemp("chat-gateway"))
    with refusing_port() as nobody:
        yield launcher({
            "OPENAI_API_URL": shared_fake.url + "/v1", "OPENAI_API_KEY": "sk-provider-secret",
            "MISTRAL_API_URL": shared_fake.url + "/mistral", "MISTRAL_API_KEY": "sk-mistral",
            "GROQ_API_URL": f"http://127.0.0.1:{nobody}/v1", "GROQ_API_KEY": "gsk",
            "ENABLE_VISION": "true", "DISALLOWED_MODELS": "openai/forbidden",
            "CLIENT_TIMEOUT": f"{CLIENT_TIMEOUT}s", **QUICK_STOP,
        })
        launcher.stop_all()


@pytest.fixture
def fake(shared_fake: FakeProvider) -> FakeProvider:
    """The module's fake provider, with no routes, no recorded requests and `aborted` clear."""
    return shared_fake.reset()


@pytest.fixture
def sdk(gateway: LiveGateway) -> Iterator[openai.OpenAI]:
    """The real OpenAI SDK pointed at the gateway (no retries: every status is seen as sent)."""
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="client-key-never-forwarded", max_retries=0,
                       timeout=20) as client:
        yield client
