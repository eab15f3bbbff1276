"""Helpers for the accounts' live tests: a gateway with accounts on, admin calls, chat calls, and
which worker served a request (from its access line)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import requests

from tests.accounts.conftest import ADMIN, ADMIN_KEY
from tests.support.fake_provider import FakeProvider
from tests.support.live_gateway import LiveGateway

CHAT = "/v1/chat/completions"


def completion_reply(prompt: int = 1000, completion: int = 500) -> dict:
    return {"id": "c1", "object": "chat.completion", "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}


def accounts_env(database_url: str, fake: FakeProvider, **extra: str) -> dict[str, str]:
    return {"ACCOUNTS_ENABLE": "true", "DATABASE_URL": database_url, "ADMIN_API_KEY": ADMIN_KEY,
            "AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "", "OPENAI_API_URL": fake.url + "/v1",
            "OPENAI_API_KEY": "sk-provider", **extra}


def admin(gateway: LiveGateway, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, gateway.url + path, headers={**ADMIN, "Connection": "close"}, timeout=20,
                            **kwargs)


def chat(gateway: LiveGateway, secret: str, *, stream: bool = False, model: str = "openai/gpt-4o",
         request_id: str | None = None) -> requests.Response:
    """One chat completion on a new connection (so calls spread over the workers), read to its end."""
    headers = {"Authorization": f"Bearer {secret}", "Connection": "close",
               "X-Request-ID": request_id or uuid.uuid4().hex}
    response = requests.post(gateway.url + CHAT, headers=headers, stream=stream, timeout=20,
                             json={"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
    response.content  # noqa: B018 - the whole body: a stream is charged when it ends
    return response


def new_key(gateway: LiveGateway, **fields: Any) -> dict:
    """Create a key and wait until it works on every worker (a new key reaches each within 2 s)."""
    created = admin(gateway, "POST", "/admin/keys", json=fields)
    assert created.status_code == 201, created.text
    key = created.json()
    deadline = time.monotonic() + 10
    key["probes"] = 0  # the probes that got through: each counts against the key's rpm

    def known() -> bool:  # each call on its own connection, so by either worker
        if requests.get(gateway.url + "/v1/models?provider=nobody", timeout=10, headers={
                "Authorization": f"Bearer {key['secret']}", "Connection": "close"}).status_code == 401:
            return False
        key["probes"] += 1
        return True

    while not all(known() for _ in range(8)):  # eight in a row: every worker has it, not just one
        assert time.monotonic() < deadline, "the new key never worked on every worker"
        time.sleep(0.05)
    return key


def access_lines(gateway: LiveGateway) -> dict[str, dict]:
    """Access lines by request id."""
    found = {}
    for line in gateway.logs().splitlines():
        if line.startswith("{") and '"gateway.access"' in line:
            entry = json.loads(line)
            found[entry["request_id"]] = entry
    return found
