"""Fixtures for the rate-limit tests: the shared Redis (required, never skipped) and throwaway ones."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from tests.support.live_gateway import free_port

SHARED_REDIS = "redis://127.0.0.1:6379/0"


@dataclass
class RedisSpace:
    """A unique key prefix in a Redis server, so concurrent test runs never share counters."""

    url: str
    prefix: str

    def env(self, **settings: str) -> dict[str, str]:
        return {"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_STORAGE_URI": self.url,
                "RATE_LIMIT_KEY_PREFIX": self.prefix, **settings}


@pytest.fixture
def shared_redis() -> Iterator[RedisSpace]:
    """The Redis on 127.0.0.1:6379 that CI provides. Missing Redis is a failure, not a skip."""
    client = redis.Redis.from_url(SHARED_REDIS, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"these tests need Redis on 127.0.0.1:6379 ({exc})")
    space = RedisSpace(SHARED_REDIS, f"gateway-test-{uuid.uuid4().hex}")
    yield space
    keys = list(client.scan_iter(match=f"{space.prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@dataclass
class OwnRedis:
    """A redis-server started for one test, which the test may kill (the shared one must stay up)."""

    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("these tests need redis-server on PATH")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = OwnRedis(process, port)
    client = redis.Redis(port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.RedisError:
            if time.monotonic() > deadline or process.poll() is not None:
                server.kill()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
    client.close()
    yield server
    server.kill()
