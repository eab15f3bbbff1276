"""One storage call per request: the token window and the request windows counted together.

The in-process app on a Redis of the test's own (its command counters are the test's alone), and
the same requests on `memory://`, which must answer alike.
"""

from __future__ import annotations

import pytest
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


# -- memory:// in the process's own dict (MemoryLimitWindows) ----------------------------------------

class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def memory_windows(request_limits: str, tokens: int | None, clock: Clock):
    from limits import RateLimitItemPerMinute, parse_many
    from limits.storage import MemoryStorage

    from app.limit_windows import LimitWindows, MemoryLimitWindows

    storage = MemoryStorage()
    items, token_item = parse_many(request_limits), RateLimitItemPerMinute(tokens) if tokens else None
    opened = LimitWindows.open(storage, items, token_item)
    assert isinstance(opened, MemoryLimitWindows)  # memory:// takes the dict, not limits' storage
    return MemoryLimitWindows(storage, items, token_item, clock=clock), LimitWindows(storage, items, token_item)


def summary(tally) -> tuple:
    shown = tally.tokens or tally.shown
    return tally.refused, bool(tally.tokens), str(shown.item), shown.count


def test_memory_windows_count_as_limits_storage_does_and_end_on_time():
    clock = Clock()
    windows, step_by_step = memory_windows("3/minute;5/hour", None, clock)
    answers = [summary(windows.count("ip:a")) for _ in range(7)]
    assert answers == [summary(step_by_step.count("ip:a")) for _ in range(7)]
    assert answers == [(False, False, "3 per 1 minute", 1), (False, False, "3 per 1 minute", 2),
                       (False, False, "3 per 1 minute", 3), (True, False, "3 per 1 minute", 4),
                       (True, False, "3 per 1 minute", 5), (True, False, "3 per 1 minute", 6),
                       (True, False, "3 per 1 minute", 7)]
    assert windows.count("ip:b").refused is False  # another subject has windows of its own
    first = windows.count("ip:a").shown
    assert first.reset == clock.now + 60
    clock.now += 60  # the minute window has ended: counting starts again; the hour's goes on
    again = windows.count("ip:a")
    assert summary(again) == (False, False, "3 per 1 minute", 1) and again.shown.reset == clock.now + 60
    assert windows.count("ip:a").shown.count == 2
    # the hour window counted the 3 requests the minute window let through, and these 3
    assert summary(windows.count("ip:a")) == (True, False, "5 per 1 hour", 6)


def test_memory_token_window_refuses_once_used_up_and_spends_no_request():
    clock = Clock()
    windows, _ = memory_windows("100/minute", 50, clock)
    windows.charge("sub:k", 30, failed=pytest.fail)
    assert windows.count("sub:k").refused is False
    windows.charge("sub:k", 25, failed=pytest.fail)
    refused = windows.count("sub:k")
    assert refused.refused and refused.tokens.count == 55 and refused.tokens.reset == clock.now + 60
    assert windows.count("sub:k").tokens is not None
    clock.now += 61
    assert windows.count("sub:k").shown.count == 1  # a new minute; the refused requests were not counted


def test_ended_memory_windows_are_swept_out():
    clock = Clock()
    windows, _ = memory_windows("10/minute", None, clock)
    for n in range(100):
        windows.count(f"ip:{n}")
    assert len(windows.windows) == 100
    clock.now += 61
    windows.count("ip:new")
    assert list(windows.windows) == [next(iter(windows.windows))] and len(windows.windows) == 1


def test_redis_window_keys_are_the_ones_limits_writes(own_redis):
    """Workers of earlier releases (and flask-limiter) count in the same keys: they must not move."""
    from limits import RateLimitItemPerMinute, parse_many
    from limits.storage import RedisStorage

    from app.limit_windows import SCOPE, TOKENS_NAMESPACE, LimitWindows

    items, tokens = parse_many("100/minute;1000/hour;5/2 seconds"), RateLimitItemPerMinute(70)
    storage = RedisStorage(own_redis.url)
    windows = LimitWindows.open(storage, items, tokens)
    server = redis.Redis(unix_socket_path=str(own_redis.socket), decode_responses=True)
    for subject in ("sub:key-1", "ip:10.0.0.1", "ip:2001:db8::/64", "sub:a/b"):
        server.flushdb()
        assert not windows.count(subject).refused
        windows.charge(subject, 12, failed=pytest.fail)
        expected = [tokens.key_for(TOKENS_NAMESPACE, subject)] + [item.key_for(subject, SCOPE) for item in items]
        assert set(server.keys("*")) == {storage.prefixed_key(key) for key in expected}
        assert int(server.get(storage.prefixed_key(expected[0]))) == 12
