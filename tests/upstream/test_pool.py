"""The pool follows WORKER_CONNECTIONS: a worker's full load of concurrent calls to one provider
keeps every connection for reuse ("Connection pool is full" is never logged)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.config import ConfigError, Settings
from app.providers.provider import Providers
from app.upstream.sessions import pool_size
from tests.support.fake_provider import Recorded, Reply, json_reply

CONCURRENT = 48


def burst(fake_provider, **env: str) -> list[str]:
    """CONCURRENT calls in flight at once (the fake answers only when all have arrived); the
    urllib3 warnings they caused."""
    arrived = threading.Barrier(CONCURRENT)

    def answer(request: Recorded) -> Reply:
        arrived.wait(timeout=20)
        return json_reply({"data": []})

    fake_provider.on("GET", "/v1/models", answer)
    provider = Providers(Settings.from_environ({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "k",
                                               **env})).lookup("openai")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("urllib3.connectionpool")
    logger.addHandler(handler)
    try:
        with ThreadPoolExecutor(CONCURRENT) as pool:
            bodies = list(pool.map(lambda _: provider.read_body(provider.request("GET", "/models")), range(CONCURRENT)))
    finally:
        logger.removeHandler(handler)
    assert bodies == [b'{"data": []}'] * CONCURRENT
    return records


def test_default_pool_keeps_every_connection_of_a_burst(fake_provider):
    assert not [r for r in burst(fake_provider, WORKER_CONNECTIONS=str(CONCURRENT)) if "pool is full" in r]


def test_a_pool_smaller_than_the_load_discards_connections(fake_provider):
    # what the old default of 20 did under a worker's load: the contrast that shows the test can fail
    assert [r for r in burst(fake_provider, CLIENT_MAX_IDLE_CONNS_PER_HOST="4") if "pool is full" in r]


@pytest.mark.parametrize(("env", "expected"), [
    ({}, 2000),
    ({"WORKER_CONNECTIONS": "500"}, 500),
    ({"CLIENT_MAX_IDLE_CONNS_PER_HOST": "64"}, 64),
    ({"CLIENT_MAX_IDLE_CONNS": "32", "CLIENT_MAX_IDLE_CONNS_PER_HOST": "64"}, 32),
])
def test_pool_size(env, expected):
    assert pool_size(Settings.from_environ(env)) == expected


def test_a_negative_pool_size_stops_start_up():
    with pytest.raises(ConfigError, match="CLIENT_MAX_IDLE_CONNS_PER_HOST"):
        Settings.from_environ({"CLIENT_MAX_IDLE_CONNS_PER_HOST": "-1"})
