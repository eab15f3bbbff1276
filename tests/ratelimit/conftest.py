"""Fixtures for the rate-limit tests: the shared Redis (required, never skipped) and throwaway ones."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

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
    """A redis-server started for one test, which the test may kill (the shared one must stay up).

    It listens on a unix socket in the test's directory (no TCP port to pick and race for)."""

    process: subprocess.Popen
    socket: Path

    @property
    def url(self) -> str:
        return f"redis+unix://{self.socket}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a unix socket path must fit in 107 bytes (pytest's tmp_path may not)."""
    path = Path(tempfile.mkdtemp(prefix="gw-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def own_redis(short_dir: Path) -> Iterator[OwnRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("these tests need redis-server on PATH")
    path = short_dir / "redis.sock"
    process = subprocess.Popen([binary, "--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700",
                                "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = OwnRedis(process, path)
    client = redis.Redis(unix_socket_path=str(path), socket_connect_timeout=1)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.RedisError:
            if time.monotonic() > deadline or process.poll() is not None:
                server.kill()
                pytest.fail(f"redis-server did not start on {path}")
            time.sleep(0.05)
    client.close()
    yield server
    server.kill()
