"""The worker's metric values (app/telemetry/values.py): the multiprocess files the master sums.

Each case runs in a process of its own (prometheus-client's value class is process-wide), patched by
gevent as a gunicorn worker is, and reads the files back with prometheus-client's own collector.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = """
from gevent import monkey
monkey.patch_all()
import json, os, sys
sys.path.insert(0, {root!r})
os.environ["PROMETHEUS_MULTIPROC_DIR"] = {directory!r}
from app.telemetry import values
assert values.install()
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

def summed():
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path={directory!r})
    return {{sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
             for metric in registry.collect() for sample in metric.samples}}

registry = CollectorRegistry()
responses = Counter("llm_responses", "r", ("status_code",), registry=registry)
duration = Histogram("llm_request_duration", "d", buckets=(10, 100), registry=registry)
"""


def run(directory: Path, body: str) -> dict:
    script = PRELUDE.format(root=str(ROOT), directory=str(directory)) + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_counts_and_observations_reach_the_files_the_master_sums(tmp_path):
    seen = run(tmp_path, """
        for _ in range(3):
            responses.labels("200").inc()
        responses.labels("502").inc(2)
        for ms in (5, 50, 500):
            duration.observe(ms)
        print(json.dumps(summed()))
    """)
    assert seen['llm_responses_total{"status_code": "200"}'] == 3
    assert seen['llm_responses_total{"status_code": "502"}'] == 2
    assert seen['llm_request_duration_bucket{"le": "10.0"}'] == 1
    assert seen['llm_request_duration_bucket{"le": "100.0"}'] == 2
    assert seen['llm_request_duration_bucket{"le": "+Inf"}'] == 3
    assert seen['llm_request_duration_sum{}'] == 555
    assert [path.name.split("_")[0] for path in sorted(tmp_path.glob("*.db"))] == ["counter", "histogram"]


def test_a_forked_child_writes_its_own_file_and_both_add_up(tmp_path):
    """As gunicorn forks workers: what the parent counted stays the parent's, the child counts
    from zero in a file of its own, and the sum is every increment once."""
    seen = run(tmp_path, """
        child = responses.labels("200")
        child.inc(2)
        duration.observe(50)
        fork, waitpid = monkey.get_original("os", ("fork", "waitpid"))  # gevent's would reap the child itself
        pid = fork()
        if pid == 0:
            child.inc(3)
            duration.observe(500)
            os._exit(0)
        waitpid(pid, 0)
        child.inc(10)
        print(json.dumps(summed()))
    """)
    assert seen['llm_responses_total{"status_code": "200"}'] == 15
    assert seen['llm_request_duration_bucket{"le": "+Inf"}'] == 2
    assert seen['llm_request_duration_sum{}'] == 550
    assert len(list(tmp_path.glob("counter_*.db"))) == 2


def test_without_a_directory_an_app_gets_single_process_values(tmp_path):
    """An app made later in the same process without PROMETHEUS_MULTIPROC_DIR (as tests do) counts in memory."""
    seen = run(tmp_path, """
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        assert not values.install()
        other = CollectorRegistry()
        Counter("later", "l", registry=other).inc(4)
        print(json.dumps({"later": other.get_sample_value("later_total")}))
    """)
    assert seen == {"later": 4}
