"""A gevent client that opens many streaming chat requests at once (run as a subprocess).

    python -m tests.chat.swarm <gateway url> <count> <deadline seconds>

Prints one JSON object: how many streams ended with `data: [DONE]`, the failures (a few
examples), the most streams open at the same moment, and the wall time.
"""

from gevent import monkey

monkey.patch_all()

import http.client
import json
import sys
import time
from urllib.parse import urlsplit

import gevent

BODY = json.dumps({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True})


def one(host: str, port: int, deadline: float) -> tuple[float, float, str | None]:
    started = time.monotonic()
    try:
        conn = http.client.HTTPConnection(host, port, timeout=deadline)
        conn.request("POST", "/v1/chat/completions", BODY, {"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        conn.close()
        if response.status != 200 or not body.endswith(b"data: [DONE]\n\n"):
            return started, time.monotonic(), f"{response.status}: {body[-200:]!r}"
        return started, time.monotonic(), None
    except (OSError, http.client.HTTPException) as exc:  # reported, not raised: the test counts them
        return started, time.monotonic(), repr(exc)


def main() -> None:
    url, count, deadline = urlsplit(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    began = time.monotonic()
    jobs = [gevent.spawn(one, url.hostname, url.port, deadline) for _ in range(count)]
    gevent.joinall(jobs, timeout=deadline)
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
