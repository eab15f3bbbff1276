"""CPU per limit call to Redis: redis-py against the worker's pipe (app/redis_pipe.py), under gevent.

    python bench/redis_calls.py [--calls 20000] [--concurrency 1,32] [--redis 127.0.0.1:6379]

Runs the rate-limit script (app/limit_windows.py's COUNT_SCRIPT, two request windows) from
`--concurrency` greenlets in one monkey-patched process, as a gevent worker's requests would, first
through a redis-py client (a pool of connections, one per greenlet waiting) and then through one
RedisPipe, in turn, twice. Reports this process's CPU time and the wall time per call. Redis's own
CPU is not in the figure. Keys live under `bench-redis-calls:` and expire within the hour.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # after the patch, as in the gevent worker
import sys
import time
from pathlib import Path

import gevent
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.limit_windows import COUNT_SCRIPT
from app.redis_pipe import RedisPipe

ARGS = ["0", "0", "100000000", "60", "1000000000", "3600"]  # no blocked check, no token window; 100M/minute, 1G/hour


def keys(n: int) -> list[str]:
    return ["", f"bench-redis-calls:minute:{n % 50}", f"bench-redis-calls:hour:{n % 50}"]


def timed(call, calls: int, concurrency: int) -> tuple[float, float]:
    def caller() -> None:
        for n in range(calls // concurrency):
            call(n)

    cpu, wall = time.process_time(), time.perf_counter()
    gevent.joinall([gevent.spawn(caller) for _ in range(concurrency)], raise_error=True)
    done = calls // concurrency * concurrency
    return (time.process_time() - cpu) / done * 1e6, (time.perf_counter() - wall) / done * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--redis", default="127.0.0.1:6379")
    args = parser.parse_args()
    host, port = args.redis.rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port), socket_timeout=2, socket_connect_timeout=2)
    script = client.register_script(COUNT_SCRIPT)
    sha = client.script_load(COUNT_SCRIPT)
    pipe = RedisPipe((host, int(port)))
    ways = {"redis-py": lambda n: script(keys=keys(n), args=ARGS),
            "pipe": lambda n: pipe.call("EVALSHA", sha, 3, *keys(n), *ARGS)}
    print(f"{'concurrency':>11}  {'client':<9}{'CPU us/call':>12}{'wall us/call':>13}")
    for concurrency in (int(c) for c in args.concurrency.split(",")):
        for _ in range(2):
            for name, call in ways.items():
                cpu, wall = timed(call, args.calls, concurrency)
                print(f"{concurrency:>11}  {name:<9}{cpu:>12.1f}{wall:>13.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
