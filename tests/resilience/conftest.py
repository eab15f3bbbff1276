"""Helpers for the resilience tests: configuration files, gateways that read them, upstream counts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import requests

from tests.support.fake_provider import FakeProvider, Recorded

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "hi"}]
# The gateways of these tests give up quickly and never wait long between tries.
QUICK = {"SERVER_WRITE_TIMEOUT": "1s", "CLIENT_TIMEOUT": "3s", "CLIENT_RESPONSE_HEADER_TIMEOUT": "3s"}


def write_config(directory: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def chat(url: str, model: str, *, stream: bool = False, timeout: float = 20, **extra) -> requests.Response:
    return requests.post(url + CHAT, json={"model": model, "messages": USER, "stream": stream, **extra},
                         headers={"Connection": "close"}, timeout=timeout)


def completion(text: str = "hello", model: str = "gpt-4o-mini") -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


def chunk(text: str) -> dict:
    return {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}


def calls_to(fake: FakeProvider, path: str = CHAT) -> list[Recorded]:
    return [r for r in fake.requests if r.path == path]
