"""Reloads and upgrades under load lose nothing: every call answered, every stream complete.

A few clients call the live gateway back to back (non-stream calls and ~1.5 s streams, see
tests/support/steady_load.py) while the test drives gunicorn's master as the README's runbook
does. gunicorn runs as deploy/inference-gateway.service starts it: in the settings directory
(its `.env` is what a reload re-reads), with the unit's options (`--config`, `--pid`) and
environment (PYTHONPATH to the code). SIGTERM letting in-flight streams finish is
tests/integration/test_graceful_shutdown.py.
"""

from __future__ import annotations

import os
import shlex
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests.support.fake_provider import Recorded, Reply, json_reply, sse_reply
from tests.support.gateway_log import access_lines
from tests.support.gunicorn_master import GunicornMaster, alive, parent_of
from tests.support.live_gateway import LiveGateway
from tests.support.polling import wait_for
from tests.support.steady_load import Call, SteadyLoad
from tests.support.systemd_unit import gunicorn_options, service_settings, unit_text

STREAM_EVENTS = 12
COMPLETION = {"id": "c1", "object": "chat.completion", "model": "m",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]}


def answer(recorded: Recorded) -> Reply:
    if recorded.json().get("stream"):
        return sse_reply([{"choices": [{"index": 0, "delta": {"content": f"w{i}"}}]} for i in range(STREAM_EVENTS)],
                         delay=0.12)
    return json_reply(COMPLETION)


@pytest.fixture
def masters():
    """Stops, after the test, the masters a test upgraded to (no child of the test any more)."""
    started: list[GunicornMaster] = []
    yield started
    for master in started:
        master.stop()


def start_gateway(live_gateway, fake, tmp_path: Path, masters: list[GunicornMaster]) -> tuple[LiveGateway, GunicornMaster]:
    """gunicorn as deploy/inference-gateway.service starts it: its working directory, environment,
    options and pid file; the test's directories stand in for /etc/... and /run/..."""
    service = service_settings(unit_text(config_dir=tmp_path / "etc", run_dir=tmp_path / "run"))
    config_dir, pidfile = Path(service["WorkingDirectory"][0]), Path(service["PIDFile"][0])
    config_dir.mkdir()
    pidfile.parent.mkdir()  # systemd's RuntimeDirectory=
    (config_dir / ".env").write_text("DISALLOWED_MODELS=\n")
    fake.on("POST", "/v1/chat/completions", answer)
    env = {**dict(value.split("=", 1) for value in service["Environment"]),
           "GUNICORN_CMD_ARGS": shlex.join(gunicorn_options(service["ExecStart"][0])),
           "OPENAI_API_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk-test",
           "SERVER_WRITE_TIMEOUT": "20s"}  # longer than any stream: a draining worker finishes them all
    gateway = live_gateway(env, workers=2, cwd=config_dir)
    master = GunicornMaster(pidfile)
    masters.append(master)
    assert master.pid == gateway.process.pid
    return gateway, master


def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "etc" / ".env"


def chat(gateway: LiveGateway, model: str) -> int:
    response = requests.post(gateway.url + "/v1/chat/completions", headers={"Connection": "close"}, timeout=15,
                             json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    return response.status_code


def ended_after(line: dict, moment: datetime) -> bool:
    return datetime.fromisoformat(line["time"]) > moment


def assert_nothing_lost(calls: list[Call], signalled_at: float) -> None:
    failures = [call for call in calls if not call.ok]
    assert failures == [], f"{len(failures)} of {len(calls)} calls failed: {failures[:3]}"
    streams = [call for call in calls if call.kind == "stream"]
    assert any(call.spans(signalled_at) for call in streams), "no stream was in flight at the signal"
    after = [call for call in calls if call.started > signalled_at]
    assert {call.kind for call in after} == {"json", "stream"}, "the load did not go on after the signal"


def test_hup_rereads_settings_and_replaces_workers_without_losing_a_call(live_gateway, fake_provider, tmp_path,
                                                                      masters):
    gateway, master = start_gateway(live_gateway, fake_provider, tmp_path, masters)
    assert chat(gateway, "openai/retired") == 200

    load = SteadyLoad(gateway.url, stream_events=STREAM_EVENTS).start()
    load.wait_until(lambda calls: len(calls) >= 6 and load.streams_in_flight >= 2)
    settings_file(tmp_path).write_text("DISALLOWED_MODELS=openai/retired\n")
    signalled_at, signalled_wall = time.monotonic(), datetime.now(UTC)
    old_workers = master.reload()

    wait_for(lambda: not any(alive(pid) for pid in old_workers), 60, "the old workers to drain")
    drained_at = time.monotonic()
    new_workers = master.workers()
    assert len(new_workers) == 2 and not new_workers & old_workers
    load.wait_until(lambda calls: sum(call.started > drained_at for call in calls) >= 6)
    calls = load.stop()

    assert_nothing_lost(calls, signalled_at)
    # Streams the old workers were sending when told to go finished after the signal.
    assert any(line["pid"] in old_workers and line["status"] == 200 and ended_after(line, signalled_wall)
               for line in access_lines(gateway.logs()) if line["path"] == "/v1/chat/completions")
    assert master.pid == gateway.process.pid  # same master, new workers
    assert chat(gateway, "openai/retired") == 403  # the new .env is in force


def test_usr2_then_term_upgrades_the_master_without_losing_a_call(live_gateway, fake_provider, tmp_path, masters):
    gateway, master = start_gateway(live_gateway, fake_provider, tmp_path, masters)
    old_master, old_workers = master.pid, master.workers()

    def served_by(new_master: int) -> bool:
        # A call answered by one of the new master's workers: the new generation is up. The load's
        # clients keep their connections to the old workers, so probe on new connections.
        requests.get(gateway.url + "/health", headers={"Connection": "close"}, timeout=10)
        return any(parent_of(line["pid"]) == new_master for line in access_lines(gateway.logs()))

    load = SteadyLoad(gateway.url, stream_events=STREAM_EVENTS).start()
    load.wait_until(lambda calls: len(calls) >= 6 and load.streams_in_flight >= 2)
    settings_file(tmp_path).write_text("DISALLOWED_MODELS=openai/retired\n")
    new_master = master.upgrade(ready=lambda pid: served_by(pid) and load.streams_in_flight >= 2)
    stopped_at, stopped_wall = master.old_master_stopped_at
    done_at = time.monotonic()
    load.wait_until(lambda calls: sum(call.started > done_at for call in calls) >= 6)
    calls = load.stop()

    assert_nothing_lost(calls, stopped_at)
    assert gateway.process.wait(5) == 0  # the old master left cleanly ...
    assert new_master != old_master and master.pid == new_master  # ... and the pid file names its heir
    assert not any(alive(pid) for pid in old_workers)
    assert any(line["pid"] in old_workers and line["status"] == 200 and ended_after(line, stopped_wall)
               for line in access_lines(gateway.logs()) if line["path"] == "/v1/chat/completions")
    assert chat(gateway, "openai/retired") == 403  # the new master read the new .env
    assert chat(gateway, "openai/m") == 200


def test_quit_would_cut_streams_which_is_why_an_upgrade_ends_the_old_master_with_term(
        live_gateway, fake_provider, tmp_path, masters):
    """nginx's graceful QUIT is gunicorn's TERM; gunicorn's QUIT is a quick shutdown."""
    gateway, master = start_gateway(live_gateway, fake_provider, tmp_path, masters)
    load = SteadyLoad(gateway.url, stream_events=STREAM_EVENTS, json_clients=0, stream_clients=2).start()
    load.wait_until(lambda calls: load.streams_in_flight >= 2)
    quit_at = time.monotonic()
    os.kill(master.pid, signal.SIGQUIT)
    gateway.process.wait(30)
    calls = load.stop()
    cut = [call for call in calls if call.spans(quit_at) and not call.ok]
    assert cut, "QUIT let the streams in flight finish"
