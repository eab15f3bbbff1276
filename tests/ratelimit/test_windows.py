"""One storage call per request: the token window and the request windows counted together.

The in-process app on a Redis of the test's own (its command counters are the test's alone), and
the same requests on `memory://`, which must answer alike.
"""

from __future__ import annotations

import redis

PROBE = "/openapi.yaml"


def command_counts(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def statuses_and_headers(client, count: int) -> list[tuple[int, str | None, str | None]]:
    answers = []
    for _ in range(count):
        response = client.get(PROBE)
        answers.append((response.status_code, response.headers.get("X-RateLimit-Limit"),
                        response.headers.get("X-RateLimit-Remaining")))
    return answers


def test_each_request_is_one_round_trip_to_redis(make_app, own_redis):
    app = make_app({"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "100/minute;1000/hour",
                    "RATE_LIMIT_TOKENS_PER_MINUTE": "1000", "RATE_LIMIT_STORAGE_URI": own_redis.url,
                    "AUTH_FAILURE_LIMIT": ""})
    client = app.test_client()
    assert client.get(PROBE).status_code == 200  # loads the script
    server = redis.Redis(unix_socket_path=str(own_redis.socket))
    before = command_counts(server)
    answers = statuses_and_headers(client, 10)
    after = command_counts(server)
    calls = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    calls.pop("info", None)
    assert [a[0] for a in answers] == [200] * 10
    assert [a[2] for a in answers] == [str(100 - n) for n in range(2, 12)]  # the minute window's count
    # One EVALSHA per request crosses the network; the GET (token window), INCRBYs (two request
    # windows) and PTTLs run inside it, on the server. No separate reads for the headers.
    assert calls.pop("evalsha") == 10
    assert calls == {"get": 10, "incrby": 20, "pttl": 20}


def test_redis_and_memory_answer_alike(make_app, own_redis):
    settings = {"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "5/minute;3/hour", "AUTH_FAILURE_LIMIT": ""}
    on_redis = statuses_and_headers(make_app({**settings, "RATE_LIMIT_STORAGE_URI": own_redis.url}).test_client(), 5)
    in_memory = statuses_and_headers(make_app({**settings, "RATE_LIMIT_STORAGE_URI": "memory://"}).test_client(), 5)
    assert on_redis == in_memory
    # the smallest window is shown while nothing refuses; then the one that refuses (the hour's)
    assert on_redis == [(200, "5", "4"), (200, "5", "3"), (200, "5", "2"), (429, "3", "0"), (429, "3", "0")]


def test_a_refusal_by_the_hour_window_is_still_counted_in_the_minute_window(make_app, own_redis):
    """As flask-limiter counted: every window up to the refusing one counts the refused request."""
    client = make_app({"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "4/minute;2/hour",
                       "RATE_LIMIT_STORAGE_URI": own_redis.url, "RATE_LIMIT_KEY_PREFIX": "windows",
                       "AUTH_FAILURE_LIMIT": ""}).test_client()
    assert [client.get(PROBE).status_code for _ in range(3)] == [200, 200, 429]
    server = redis.Redis(unix_socket_path=str(own_redis.socket), decode_responses=True)
    counts = {key.split("/")[-1]: int(server.get(key)) for key in server.scan_iter("windows:*")}
    assert counts == {"minute": 3, "hour": 3}
    assert all(0 < server.ttl(key) <= 3600 for key in server.scan_iter("windows:*"))
