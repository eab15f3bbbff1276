"""A gevent client that opens many streaming chat requests at once (run by bench/streams.py).

    python bench/swarm.py <gateway url> <count> <deadline seconds> <model> <content events per stream>

Needs gevent (the gateway's venv has it). Prints one JSON object: how many streams ended with
`data: [DONE]` with all of the mock's content events (`"content":"tok0 "`...), the failures (a few examples),
the most streams open at the same moment, and the wall time. Bounded: at most `count` requests,
all abandoned at the deadline.
"""

from gevent import monkey

monkey.patch_all()

import http.client
import json
import sys
import time
from urllib.parse import urlsplit

import gevent


def one(host: str, port: int, body: str, events: int, deadline: float) -> tuple[float, float, str | None]:
    started = time.monotonic()
    try:
        conn = http.client.HTTPConnection(host, port, timeout=deadline)
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        whole = all(b'"content":"tok%d ' % i in data for i in range(events))
        if response.status != 200 or not data.endswith(b"data: [DONE]\n\n") or not whole:
            return started, time.monotonic(), f"{response.status}: {data[-200:]!r}"
        return started, time.monotonic(), None
    except (OSError, http.client.HTTPException) as exc:  # reported, not raised: the caller counts them
        return started, time.monotonic(), repr(exc)


def main() -> None:
    url, count, deadline = urlsplit(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    model, events = sys.argv[4], int(sys.argv[5])
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True})
    began = time.monotonic()
    jobs = [gevent.spawn(one, url.hostname, url.port, body, events, deadline) for _ in range(count)]
    gevent.joinall(jobs, timeout=deadline)
    gevent.killall(jobs, block=False)
    results = [job.value for job in jobs if job.value is not None]
    edges = sorted([(s, 1) for s, _, _ in results] + [(e, -1) for _, e, _ in results])
    open_now = peak = 0
    for _, step in edges:
        open_now += step
        peak = max(peak, open_now)
    failures = [error for _, _, error in results if error] + ["unfinished"] * (count - len(results))
    print(json.dumps({"ok": count - len(failures), "failed": len(failures), "examples": failures[:5],
                      "peak_open": peak, "seconds": round(time.monotonic() - began, 2)}))


if __name__ == "__main__":
    main()
