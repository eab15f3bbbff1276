"""Profile a target under load with py-spy and print its top frames (for PROFILE.md).

    bash bench/profile.sh [--target gateway] [--seconds 15]

Starts the mock and the target as bench/runner.py does, loads it with wrk at c16 (non-stream,
then stream) and records all its processes with py-spy. Collapsed stacks go to bench/out/;
the top frames by own time and by inclusive time, in microseconds per request, are printed.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import runner

RATE = 200  # samples per second per process


def frame_name(frame: str) -> str | None:
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return None
    function, path = match.groups()
    path = re.sub(r".*/(site-packages|lib/python3\.\d+)/", "", path)
    path = re.sub(rf"^{re.escape(str(runner.ROOT))}/", "", path)
    return f"{function} ({path})"


def top_frames(collapsed: Path, requests: int, count: int) -> str:
    own, inclusive, total = collections.Counter(), collections.Counter(), 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        n = int(samples)
        total += n
        names = [name for frame in stack.split(";") if (name := frame_name(frame))]
        if names:
            own[names[-1]] += n
        for name in set(names):
            inclusive[name] += n
    per_request = 1e6 / RATE / max(requests, 1)  # microseconds of one sample, spread over the requests
    lines = [f"{total} samples, {requests} requests: {total * per_request:.0f} us sampled per request", "",
             "own time (us/request, share):"]
    lines += [f"  {n * per_request:6.0f}  {100 * n / total:4.1f}%  {name}" for name, n in own.most_common(count)]
    lines += ["", "inclusive time (us/request, share):"]
    lines += [f"  {n * per_request:6.0f}  {100 * n / total:4.1f}%  {name}" for name, n in inclusive.most_common(2 * count)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="gateway", choices=["gateway", "minimal", *runner.MATRIX],
                        help="a target of runner.py, e.g. all-on (the feature matrix's are configured as there)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--py-spy", default=str(runner.BENCH / ".venv-tools" / "bin" / "py-spy"))
    parser.add_argument("--python", default=os.environ.get("BENCH_PYTHON", sys.executable))
    parser.add_argument("--litellm-python", default=str(runner.BENCH / ".venv-litellm" / "bin" / "python"))
    parser.add_argument("--gateway-dir", default=str(runner.ROOT))
    parser.add_argument("--gateway-env", action="append", default=[])
    args = parser.parse_args()
    runner.OUT.mkdir(exist_ok=True)
    mock = runner.Mock(runner.free_port())
    mock.start()
    target = runner.build_targets(args, mock.port)[args.target]
    try:
        target.start()
        runner.warm_up(target, seconds=2.0)
        for stream in (False, True):
            mode = "stream" if stream else "non-stream"
            out = runner.OUT / f"profile-{args.target}-{mode}.txt"
            result: dict = {}
            load = threading.Thread(target=lambda into=result, stream=stream: into.update(runner.wrk(
                target, stream=stream, connections=args.connections, seconds=args.seconds + 4)))
            load.start()
            threading.Event().wait(2)
            subprocess.run([args.py_spy, "record", "--pid", str(target.proc.pid), "--subprocesses", "--rate", str(RATE),
                            "--duration", str(int(args.seconds)), "--format", "raw", "--output", str(out)],
                           check=True, capture_output=True, timeout=args.seconds + 60)
            load.join()
            sampled = int(result["requests"] * args.seconds / (args.seconds + 4))
            print(f"\n=== {args.target} {mode} c{args.connections}: {result['rps']:.0f} req/s, "
                  f"{result['cpu_ms_per_request']:.2f} CPU ms/request; stacks in {out}")
            print(top_frames(out, sampled, args.top))
    finally:
        target.stop()
        runner.Helpers.stop()
        mock.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
