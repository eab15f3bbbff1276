"""Fixtures for the deployment tests: a real nginx in front of a live gateway."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.nginx_proxy import NginxProxy


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[..., NginxProxy]]:
    """Call with the gateway's port (and optional `changes`) to start nginx from deploy/nginx.conf."""
    started: list[NginxProxy] = []
    numbers = itertools.count()

    def start(upstream_port: int, **kwargs: Any) -> NginxProxy:
        started.append(NginxProxy.start(tmp_path / f"nginx-{next(numbers)}", upstream_port=upstream_port, **kwargs))
        return started[-1]

    yield start
    for proxy in started:
        proxy.stop()


def eventually(check: Callable[[], Any], timeout: float = 10, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy (log lines are written after the response)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def access_lines(log_text: str) -> list[dict]:
    """The gateway's JSON access lines (a line still being written is left for the next look)."""
    found = []
    for line in log_text.splitlines():
        if line.startswith('{"') and '"logger": "gateway.access"' in line:
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found
