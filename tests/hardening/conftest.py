"""One gunicorn gateway and one fake provider shared by a module's tests (starting gunicorn per
test would dominate the run time); tests that need their own settings use `live_gateway`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_provider import FakeProvider, json_reply
from tests.support.live_gateway import GatewayLauncher, LiveGateway

COMPLETION = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


@pytest.fixture(scope="module")
def shared_fake() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(shared_fake: FakeProvider) -> FakeProvider:
    """The module's fake provider, cleared, answering chat completions and proxy calls with 200."""
    shared_fake.reset()
    shared_fake.on("POST", "/v1/chat/completions", json_reply(COMPLETION))
    shared_fake.on("POST", "*", json_reply({"ok": True}))
    return shared_fake


@pytest.fixture(scope="module")
def gateway(shared_fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    launcher = GatewayLauncher(tmp_path_factory.mktemp("hardening"))
    yield launcher({"OPENAI_API_URL": shared_fake.url + "/v1", "OPENAI_API_KEY": "sk-provider-secret"})
    launcher.stop_all()
