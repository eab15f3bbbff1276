"""SIGTERM lets an in-flight stream finish (gunicorn's graceful timeout is SERVER_WRITE_TIMEOUT)."""

import threading
import time

import requests

from tests.support.fake_provider import sse_reply


def test_in_flight_stream_completes_after_sigterm(live_gateway, fake_provider):
    events = [{"choices": [{"index": 0, "delta": {"content": f"w{i}"}}]} for i in range(10)]
    fake_provider.on("POST", "/v1/chat/completions", sse_reply(events, delay=0.25))
    gateway = live_gateway({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk-test",
                            "SERVER_WRITE_TIMEOUT": "15s"})
    received: list[bytes] = []
    first = threading.Event()

    def consume() -> None:
        with requests.post(gateway.url + "/v1/chat/completions", stream=True, timeout=10,
                           headers={"Connection": "close"},
                           json={"model": "openai/m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
                           ) as response:
            for chunk in response.iter_content(None):
                received.append(chunk)
                first.set()

    reader = threading.Thread(target=consume)
    reader.start()
    assert first.wait(10), "the stream never started"
    started = time.monotonic()
    gateway.process.terminate()  # SIGTERM while ~2 s of the stream are still to come
    reader.join(20)
    body = b"".join(received)
    assert body.count(b"data: ") == 11 and body.rstrip().endswith(b"data: [DONE]")
    assert gateway.process.wait(20) == 0
    assert time.monotonic() - started >= 1.5  # it waited for the stream instead of cutting it
    try:
        requests.get(gateway.url + "/health", timeout=2)
        still_serving = True
    except requests.RequestException:
        still_serving = False
    assert not still_serving
