"""Streams side by side through ONE gevent worker arrive whole, each its own.

The load (1,000 slow streams) is measured in bench/streams.py; this checks correctness: the
provider holds every stream after its first event until all of them are open at once (a worker
that served them one after another would never get there), then each client must get exactly its
own events, in order, and `[DONE]`.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.support.fake_provider import Recorded, Reply, sse_event

STREAMS = 32
EVENTS = 5


def test_concurrent_streams_through_one_worker_arrive_whole(live_gateway, fake_provider):
    all_open = threading.Event()
    opened = 0
    lock = threading.Lock()

    def stream(request: Recorded) -> Reply:
        nonlocal opened
        with lock:
            opened += 1
            if opened == STREAMS:
                all_open.set()
        who = request.json()["messages"][0]["content"]
        chunks = [sse_event({"choices": [{"index": 0, "delta": {"content": f"{who}:{n}"}}]}) for n in range(EVENTS)]
        return Reply(headers={"Content-Type": "text/event-stream"}, chunks=[*chunks, b"data: [DONE]\n\n"],
                     pauses=[0, all_open] + [0] * EVENTS)

    fake_provider.on("POST", "/v1/chat/completions", stream)
    gateway = live_gateway({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk",
                            "SERVER_WRITE_TIMEOUT": "1s"}, workers=1)

    def client(index: int) -> bytes:
        body = {"model": "openai/gpt-4o", "stream": True, "messages": [{"role": "user", "content": f"client-{index}"}]}
        with requests.post(gateway.url + "/v1/chat/completions", json=body, stream=True, timeout=30,
                           headers={"Connection": "close"}) as response:
            assert response.status_code == 200
            return b"".join(response.iter_content(None))

    with ThreadPoolExecutor(max_workers=STREAMS) as pool:
        bodies = list(pool.map(client, range(STREAMS)))
    assert all_open.is_set()  # every stream was open at the same moment
    for index, body in enumerate(bodies):
        expected = b"".join(sse_event({"choices": [{"index": 0, "delta": {"content": f"client-{index}:{n}"}}]})
                            for n in range(EVENTS)) + b"data: [DONE]\n\n"
        assert body == expected, index
