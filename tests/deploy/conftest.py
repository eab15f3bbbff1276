"""Fixtures for the deployment tests: a real nginx in front of a live gateway."""

from __future__ import annotations

import itertools
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
