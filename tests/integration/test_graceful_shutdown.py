"""SIGTERM lets an in-flight stream finish (gunicorn's graceful timeout is SERVER_WRITE_TIMEOUT)."""

import threading

import requests

from tests.support.fake_provider import Reply, sse_event


def test_in_flight_stream_completes_after_sigterm(live_gateway, fake_provider):
    # The provider holds the rest of the stream behind a gate the test opens only once gunicorn
    # is shutting down: the stream is certainly in flight when SIGTERM arrives.
    gate = threading.Event()
    events = [sse_event({"choices": [{"index": 0, "delta": {"content": f"w{i}"}}]}) for i in range(10)]
    events.append(b"data: [DONE]\n\n")
    fake_provider.on("POST", "/v1/chat/completions", Reply(headers={"Content-Type": "text/event-stream"},
                                                           chunks=events, pauses=[0, gate] + [0] * 9))
    gateway = live_gateway({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk-test",
                            "SERVER_WRITE_TIMEOUT": "15s"})
    received: list[bytes] = []
    first = threading.Event()

    def consume() -> None:
        with requests.post(gateway.url + "/v1/chat/completions", stream=True, timeout=20,
                           headers={"Connection": "close"},
                           json={"model": "openai/m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
                           ) as response:
            for chunk in response.iter_content(None):
                received.append(chunk)
                first.set()

    reader = threading.Thread(target=consume)
    reader.start()
    assert first.wait(15), "the stream never started"
    gateway.process.terminate()
    assert gateway.wait_for_log("Handling signal: term"), gateway.logs()
    gate.set()  # now the provider sends the other ten events
    reader.join(20)
    body = b"".join(received)
    assert body.count(b"data: ") == 11 and body.rstrip().endswith(b"data: [DONE]")
    assert gateway.process.wait(20) == 0
    try:
        requests.get(gateway.url + "/health", timeout=2)
        still_serving = True
    except requests.RequestException:
        still_serving = False
    assert not still_serving
