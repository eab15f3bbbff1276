"""The smaller items of issue 20 (item 9), through the real gunicorn gateway:

- a limit storage that accepts connections and never answers costs one timeout, not one on
  every request: the breaker skips it for RATE_LIMIT_STORAGE_BACKOFF (fail open: served; fail
  closed: 503 at once);
- the `model` label of the metrics is bounded (TELEMETRY_MAX_MODEL_LABELS, then `other`);
- a `%0a` in a path cannot forge a line of the development text log;
- urllib3's "Connection pool is full" goes out through the gateway's handler, redacted.

(`Bearer k1<NBSP>` is in test_key_guessing.py.)
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.fake_provider import json_reply, sse_reply
from tests.support.ports import reserved_port

CHAT = "/v1/chat/completions"
COMPLETION = {"id": "c", "object": "chat.completion",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


@pytest.fixture
def silent_storage() -> Iterator[str]:
    """A Redis URL whose server accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    sock.close()


def chat(url: str, model: str = "openai/m", **kwargs) -> requests.Response:
    return requests.post(url + CHAT, json={"model": model, "messages": [{"role": "user", "content": "hi"}], **kwargs},
                         timeout=30)


@pytest.mark.parametrize("fail_open", [True, False])
def test_a_silent_limit_storage_costs_one_timeout_not_one_per_request(live_gateway, fake, silent_storage, fail_open):
    fake.on("POST", "/v1/chat/completions", json_reply(COMPLETION))
    gateway = live_gateway({"OPENAI_API_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk-openai",
                            "RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_TOKENS_PER_MINUTE": "1000",
                            "RATE_LIMIT_STORAGE_URI": silent_storage, "RATE_LIMIT_FAIL_OPEN": str(fail_open).lower(),
                            "RATE_LIMIT_STORAGE_BACKOFF": "60s"})
    first = chat(gateway.url)  # pays the storage's timeout (2 s), and opens the breaker
    assert first.status_code == (200 if fail_open else 503)
    started = time.monotonic()
    answers = [chat(gateway.url) for _ in range(5)]
    elapsed = time.monotonic() - started
    assert [a.status_code for a in answers] == [200 if fail_open else 503] * 5
    if not fail_open:
        assert answers[0].json()["error"]["code"] == "rate_limit_storage_unavailable"
    # each would wait for the storage's 2 s socket timeout (twice with the token budget) without the breaker
    assert elapsed < 2.0, elapsed


def scrape(port: int) -> list[tuple[str, dict[str, str]]]:
    samples = []
    for line in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines():
        if line.startswith("llm_") and "{" in line:
            name, _, rest = line.partition("{")
            labels = dict(part.split("=", 1) for part in rest.partition("}")[0].split(",") if "=" in part)
            samples.append((name, {k: v.strip('"') for k, v in labels.items()}))
    return samples


def test_the_model_label_is_bounded(live_gateway, fake):
    fake.on("POST", "/v1/chat/completions", sse_reply([{"id": "c", "choices": [{"index": 0, "delta": {"content": "x"}}]},
                                                       {"id": "c", "choices": [], "usage": COMPLETION["usage"]}]))
    port = reserved_port()
    gateway = live_gateway({"OPENAI_API_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk-openai",
                            "TELEMETRY_ENABLE": "true", "TELEMETRY_METRICS_PORT": str(port),
                            "TELEMETRY_MAX_MODEL_LABELS": "3"})
    for n in range(30):
        assert chat(gateway.url, f"openai/made-up-{uuid.uuid4().hex[:8]}-{n}", stream=True).status_code == 200
    samples = scrape(port)
    models = {labels["model"] for _, labels in samples if "model" in labels}
    assert len(models) == 4 and "other" in models, models
    series = [s for s in samples if s[0].startswith("llm_time_to_first_token")]
    assert len(series) <= 4 * 25  # a histogram's buckets, sum and count per label, not per made-up name


def test_a_line_break_in_a_path_cannot_forge_a_text_log_line(live_gateway, fake):
    gateway = live_gateway({"OPENAI_API_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk-openai",
                            "ENVIRONMENT": "development"})
    forged = "12:00:00 ERROR   gateway.auth: admin key accepted"
    requests.get(gateway.url + "/v1/models%0a" + forged.replace(" ", "%20") + "%0d%0a", timeout=10)
    requests.get(gateway.url + "/health", timeout=10)  # a later line: the one before is complete
    lines = gateway.logs().splitlines()
    assert not any(line.startswith(forged) for line in lines)
    assert any("/v1/models\\n12:00:00" in line for line in lines)


def test_urllib3_pool_warnings_go_through_the_redacting_handler(live_gateway, fake):
    fake.on("POST", "/v1/chat/completions", json_reply(COMPLETION, hang=0.3))
    gateway = live_gateway({"OPENAI_API_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk-openai",
                            "CLIENT_MAX_IDLE_CONNS_PER_HOST": "1",
                            "GROQ_API_KEY": "127.0.0.1"})  # a "secret" that urllib3's line happens to hold
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: chat(gateway.url).status_code, range(6)))
    assert statuses == [200] * 6
    requests.get(gateway.url + "/health", timeout=10)
    pool_lines = [line for line in gateway.logs().splitlines() if "Connection pool is full" in line]
    assert pool_lines, gateway.logs()[-2000:]
    for line in pool_lines:
        entry = json.loads(line)  # the gateway's format, not a bare line from Python's last resort
        assert entry["logger"] == "urllib3.connectionpool"
        assert "127.0.0.1" not in line and "[REDACTED]" in line
