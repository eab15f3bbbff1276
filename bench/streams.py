"""Many slow streams at once through ONE gevent worker: do they all finish, side by side?

    python bench/streams.py [--streams 1000] [--delay-ms 200] [--deadline 60] [--python .venv/bin/python]

Starts the mock provider (node bench/mock_provider.js) and the gateway (gunicorn wsgi:app, one
gevent worker, its provider pool sized to the streams), then bench/swarm.py opens every stream
at once. Each stream is 20 content events `--delay-ms` apart, a usage event and `[DONE]` (about
4 s at the default). Prints one JSON line and exits 0 when every stream arrived whole and at least
half were open at the same moment (one after another would take streams x 4 s), else 1.

Bounded: at most 5,000 streams, everything abandoned at the deadline, everything it started
stopped at the end; all on 127.0.0.1. Logs go to bench/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from runner import BENCH, OUT, ROOT, Mock, Target, free_port, log

MAX_STREAMS = 5000
CONTENT_EVENTS = 20  # the mock's content chunks per stream (then usage and [DONE])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--delay-ms", type=int, default=200, help="pause between a stream's events")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds before every stream is abandoned")
    parser.add_argument("--python", default=os.environ.get("BENCH_PYTHON", str(ROOT / ".venv" / "bin" / "python")),
                        help="python of the gateway's venv (gunicorn and gevent are taken from it)")
    args = parser.parse_args()
    if not 1 <= args.streams <= MAX_STREAMS:
        parser.error(f"--streams must be 1 to {MAX_STREAMS}")
    OUT.mkdir(exist_ok=True)
    python = Path(os.path.abspath(args.python))
    mock = Mock(free_port())
    mock.start()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
           "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    port = free_port()
    gateway = Target("gateway-streams", "this gateway, one worker", [str(python.parent / "gunicorn"), "wsgi:app"], ROOT,
                     {**env, "SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(port), "WEB_CONCURRENCY": "1",
                      "WORKER_CONNECTIONS": str(max(2000, args.streams + 100)),
                      "CLIENT_MAX_IDLE_CONNS_PER_HOST": str(args.streams), "SERVER_WRITE_TIMEOUT": "1s",
                      "OPENAI_API_URL": f"http://127.0.0.1:{mock.port}/v1", "OPENAI_API_KEY": "sk-bench",
                      "LOG_LEVEL": "warning"},
                     port, "openai/mock-model", "openai/mock-model-delay-5")
    try:
        gateway.start()
        log(f"{args.streams} streams, {args.delay_ms} ms between events, deadline {args.deadline:g} s")
        run = subprocess.run([str(python), str(BENCH / "swarm.py"), f"http://127.0.0.1:{port}", str(args.streams),
                              str(args.deadline), f"openai/mock-model-delay-{args.delay_ms}", str(CONTENT_EVENTS)],
                             capture_output=True, text=True, timeout=args.deadline + 30, check=False)
    finally:
        gateway.stop()
        mock.stop()
    if run.returncode != 0:
        print(run.stderr[-2000:], file=sys.stderr)
        return 1
    result = json.loads(run.stdout)
    result["streams"] = args.streams
    print(json.dumps(result))
    return 0 if result["failed"] == 0 and result["peak_open"] >= args.streams // 2 else 1


if __name__ == "__main__":
    sys.exit(main())
