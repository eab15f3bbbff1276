"""1,000 slow streams at once through ONE gevent worker: all of them finish (bounded in count and time)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.chat.conftest import QUICK_STOP
from tests.support.fake_provider import sse_reply
from tests.support.live_gateway import ROOT

STREAMS = 1000
PAUSE = 1.0  # between the provider's events: each stream lasts ~4 s


def test_a_thousand_slow_streams_through_one_worker(live_gateway, fake_provider):
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "x"}}]}
    fake_provider.on("POST", "/v1/chat/completions", sse_reply([chunk] * 3, delay=PAUSE))
    gateway = live_gateway({"OPENAI_API_URL": fake_provider.url + "/v1", "OPENAI_API_KEY": "sk",
                            "CLIENT_MAX_IDLE_CONNS_PER_HOST": str(STREAMS), "CLIENT_TIMEOUT": "20s",
                            **QUICK_STOP}, workers=1)
    run = subprocess.run([sys.executable, "-m", "tests.chat.swarm", gateway.url, str(STREAMS), "25"],
                         cwd=ROOT, capture_output=True, text=True, timeout=40, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["failed"] == 0, result
    assert result["ok"] == STREAMS
    assert fake_provider.streams_finished == STREAMS
    # they really ran side by side: one after another would take STREAMS * 4 s
    assert result["peak_open"] >= STREAMS // 2, result
