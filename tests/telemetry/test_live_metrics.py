"""GET /metrics from a real two-worker gunicorn: one endpoint per host, totals across workers."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live_gateway import LiveGateway, free_port

COUNTED = "llm_gateway_overhead_duration_count"


def telemetry_env(port: int, **extra: str) -> dict[str, str]:
    return {"TELEMETRY_ENABLE": "true", "TELEMETRY_METRICS_PORT": str(port), **extra}


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for_value(port: int, name: str, expected: float, timeout: float = 10, **labels: str) -> float:
    """The count once it reaches `expected` (the last observations land just after the responses)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = value(scrape(port), name, **labels)
        if seen >= expected or time.monotonic() > deadline:
            time.sleep(0.3)  # and stays there: nothing counted twice
            return value(scrape(port), name, **labels)
        time.sleep(0.1)


def get_on_new_connection(url: str) -> requests.Response:
    # Connection: close also spares the SIGTERM at the end a wait for idle keep-alive connections.
    return requests.get(url, headers={"Connection": "close"}, timeout=10)


def access_pids(gateway: LiveGateway, path: str) -> dict[int, int]:
    served: dict[int, int] = {}
    for line in gateway.logs().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "gateway.access" and entry.get("path") == path:
                served[entry["pid"]] = served.get(entry["pid"], 0) + 1
    return served


def spread_requests(gateway: LiveGateway, path: str, *, batch: int = 20, most: int = 200) -> int:
    """Concurrent requests on new connections until both workers have served some; returns how many."""
    made = 0
    with ThreadPoolExecutor(8) as pool:
        while made < most:
            statuses = list(pool.map(lambda _: get_on_new_connection(gateway.url + path).status_code, range(batch)))
            assert statuses == [404] * batch
            made += batch
            time.sleep(0.2)  # access lines are written as the bodies close
            if len(access_pids(gateway, path)) >= 2:
                break
    return made


def test_counts_add_up_across_two_workers_and_survive_a_worker_restart(live_gateway):
    metrics_port = free_port()
    gateway = live_gateway(telemetry_env(metrics_port), workers=2)
    path = "/v1/no-such-endpoint"

    made = spread_requests(gateway, path)
    served = access_pids(gateway, path)
    assert len(served) == 2, f"one worker served all {made} requests: {served}"
    assert sum(served.values()) == made
    labels = {"request_method": "GET", "request_path": "unmatched"}
    assert wait_for_value(metrics_port, COUNTED, made, **labels) == made

    # A worker that exits takes nothing with it, and its replacement does not count twice.
    victim = next(iter(served))
    os.kill(victim, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while gateway.logs().count("Booting worker with pid") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gateway.logs().count("Booting worker with pid") == 3
    assert value(scrape(metrics_port), COUNTED, **labels) == made
    more = spread_requests(gateway, path, batch=10, most=10)
    assert wait_for_value(metrics_port, COUNTED, made + more, **labels) == made + more

    # GET /health is not observed; the metrics endpoint is not the gateway's.
    assert get_on_new_connection(gateway.url + "/health").status_code == 200
    samples = scrape(metrics_port)
    assert value(samples, COUNTED, request_method="GET", request_path="/health") == 0
    assert get_on_new_connection(gateway.url + "/metrics").status_code == 404


def test_server_timing_on_complete_responses(live_gateway):
    gateway = live_gateway(telemetry_env(free_port()))
    response = get_on_new_connection(gateway.url + "/v1/no-such-endpoint")
    assert response.status_code == 404
    assert response.headers["Server-Timing"].startswith("gateway;dur=")


def test_telemetry_off_means_no_port_and_no_header(live_gateway):
    metrics_port = free_port()
    gateway = live_gateway({"TELEMETRY_ENABLE": "false", "TELEMETRY_METRICS_PORT": str(metrics_port)})
    response = get_on_new_connection(gateway.url + "/v1/no-such-endpoint")
    assert response.status_code == 404
    assert "Server-Timing" not in response.headers
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)


def test_busy_metrics_port_stops_startup_with_one_line(live_gateway):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = live_gateway.expect_exit(telemetry_env(port))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (f"inference-gateway: cannot serve metrics on 127.0.0.1:{port} (TELEMETRY_METRICS_PORT): "
            "Address already in use") in result.stderr.splitlines()


def test_private_directory_is_removed_and_an_operators_is_wiped_at_start(live_gateway, tmp_path):
    metrics_port = free_port()
    gateway = live_gateway(telemetry_env(metrics_port))
    get_on_new_connection(gateway.url + "/v1/no-such-endpoint")
    assert gateway.stop() == 0
    private = re.search(r"worker values in (\S+)\)", gateway.logs())[1]
    assert private.startswith(tempfile.gettempdir()) and not os.path.exists(private)

    # PROMETHEUS_MULTIPROC_DIR of the operator's: used, and the last run's values do not come back.
    mine = tmp_path / "metrics"
    mine.mkdir()
    labels = {"request_method": "GET", "request_path": "unmatched"}
    for run in range(2):
        metrics_port = free_port()
        gateway = live_gateway(telemetry_env(metrics_port, PROMETHEUS_MULTIPROC_DIR=str(mine)))
        for _ in range(3):
            get_on_new_connection(gateway.url + "/v1/no-such-endpoint")
        assert wait_for_value(metrics_port, COUNTED, 3, **labels) == 3, f"run {run}"
        assert gateway.stop() == 0
    assert mine.is_dir() and list(mine.glob("*.db"))
