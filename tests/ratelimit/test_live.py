"""The real gunicorn (gevent) gateway over HTTP: limits shared by workers and hosts, fail modes."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.support.live_gateway import LiveGateway


def fetch(url: str, path: str = "/openapi.yaml") -> requests.Response:
    """One request on a fresh connection, so the kernel may hand it to any worker."""
    return requests.get(url + path, headers={"Connection": "close"}, timeout=10)


def fetch_all(urls: list[str]) -> list[int]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return [response.status_code for response in pool.map(fetch, urls)]


def rate_limit_log(gateway: LiveGateway) -> list[dict]:
    lines = [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]
    return [entry for entry in lines if entry.get("logger") == "gateway.ratelimit"]


def started(gateway: LiveGateway, workers: int) -> LiveGateway:
    """Wait until every worker has built its app (each logs its rate-limit line), not just the first."""
    deadline = time.monotonic() + 20
    while sum("rate limits on" in entry["message"] for entry in rate_limit_log(gateway)) < workers:
        assert time.monotonic() < deadline, f"{workers} workers did not start:\n{gateway.logs()}"
        time.sleep(0.05)
    return gateway


def served_by(gateway: LiveGateway) -> dict[int, list[int]]:
    """The statuses each worker answered, by pid, from the access lines."""
    served: dict[int, list[int]] = {}
    for line in gateway.logs().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "gateway.access" and entry.get("path") == "/openapi.yaml":
                served.setdefault(entry["pid"], []).append(entry["status"])
    return served


def test_two_workers_and_two_gateways_share_one_limit_exactly(live_gateway, shared_redis):
    env = shared_redis.env(RATE_LIMIT_DEFAULT="20/minute")
    first = started(live_gateway(env, workers=2), 2)
    second = started(live_gateway(env, workers=2), 2)

    statuses = fetch_all([first.url, second.url] * 15)  # 30 concurrent requests, 4 processes
    assert statuses.count(200) == 20
    assert statuses.count(429) == 10

    for gateway in (first, second):
        refused = fetch(gateway.url)
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["type"] == "rate_limit_error" and "20 per 1 minute" in error["message"]
        assert refused.headers["X-RateLimit-Limit"] == "20"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert int(refused.headers["X-RateLimit-Reset"]) > 0
        assert fetch(gateway.url, "/health").status_code == 200  # never limited


def test_memory_storage_counts_per_worker(live_gateway):
    """The documented default: each worker has its own counters, so two workers allow up to twice the limit."""
    gateway = started(live_gateway({"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "5/minute"}, workers=2), 2)

    def each_worker_refused() -> bool:
        served = served_by(gateway)
        return len(served) == 2 and all(429 in answers for answers in served.values())

    statuses: list[int] = []
    while len(statuses) < 400 and not each_worker_refused():
        statuses += fetch_all([gateway.url] * 20)  # new connections, so the kernel may pick either worker
    deadline = time.monotonic() + 10  # the access lines are written as the responses close
    while sum(map(len, served_by(gateway).values())) < len(statuses) and time.monotonic() < deadline:
        time.sleep(0.05)
    served = served_by(gateway)
    assert len(served) == 2, f"one worker served all {len(statuses)} requests"
    assert [answers.count(200) for answers in served.values()] == [5, 5]  # each worker counted its own 5
    assert statuses.count(200) == 10


def test_redis_stopped_mid_run_gives_the_configured_fail_mode(live_gateway, own_redis):
    env = {"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_STORAGE_URI": own_redis.url, "RATE_LIMIT_DEFAULT": "100/minute"}
    fail_open = live_gateway(env)
    fail_closed = live_gateway({**env, "RATE_LIMIT_FAIL_OPEN": "false"})
    served = [fetch(gateway.url) for gateway in (fail_open, fail_closed)]
    assert [r.status_code for r in served] == [200, 200]
    assert [r.headers["X-RateLimit-Remaining"] for r in served] == ["99", "98"]  # one counter in Redis

    own_redis.kill()

    assert [fetch(fail_open.url).status_code for _ in range(5)] == [200] * 5
    refused = fetch(fail_closed.url)
    assert refused.status_code == 503
    assert refused.headers["Content-Type"] == "application/json"
    assert refused.json()["error"]["type"] == "service_unavailable"
    assert fetch(fail_closed.url, "/health").status_code == 200

    fail_open.stop()
    alarms = [entry for entry in rate_limit_log(fail_open) if entry["level"] == "error"]
    assert len(alarms) == 1  # loud, but one line per 10 s, not one per request
    assert alarms[0]["level"] == "error" and "serving WITHOUT rate limits" in alarms[0]["message"]


def test_authenticated_subjects_are_counted_apart_from_each_other(live_gateway, shared_redis):
    env = shared_redis.env(RATE_LIMIT_DEFAULT="3/minute", AUTH_ENABLE="true",
                           AUTH_API_KEYS="alpha-key-0001,beta-key-0002", AUTH_OIDC_ISSUER="")
    gateway = live_gateway(env)

    def send(key: str) -> int:
        return requests.get(gateway.url + "/openapi.yaml", headers={"x-api-key": key, "Connection": "close"},
                            timeout=10).status_code

    assert [send("alpha-key-0001") for _ in range(4)] == [200, 200, 200, 429]
    assert send("beta-key-0002") == 200  # same address, its own budget
