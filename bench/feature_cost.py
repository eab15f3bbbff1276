"""CPU microseconds per request the app itself spends, per feature: a figure a busy machine moves little.

    python bench/feature_cost.py [--targets bare,keys,all-on] [--requests 2000] [--gateway-dir DIR]
    python bench/feature_cost.py --compare OTHER_CHECKOUT     (each target: OTHER, then this one, in turn)
    python bench/feature_cost.py --targets bare,telemetry --profile DIR   (+ cProfile stats per target)

wrk figures move with whatever else runs on the machine. This takes one feature matrix target at
a time (bench/runner.py's settings, the same local OIDC issuer, virtual key and Redis), builds
the app in a process of its own and sends it `--requests` non-stream and then stream requests,
one after another, through the WSGI stack (Flask's test client: every middleware, hook and
storage round trip, but no gunicorn and no gevent), against the same mock provider. It reports
the process's CPU time (user + system, `time.process_time`) per request. The mock, Redis and the
issuer run in processes of their own, so their CPU is not in the figure; what the gateway
spends talking to them is. Compare two checkouts with `--gateway-dir` (e.g. before and after a
change): the figures of one run are comparable; between runs, compare each target's difference
to `bare`. `--compare DIR` measures each target in DIR's checkout and in this one, one right
after the other, so that both see the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import runner

WARM_UP = 200


def child(requests: int, profile: str | None = None, patched: bool = False) -> dict:
    """In the target's own process (cwd = the gateway's checkout, env = the target's settings)."""
    if patched:  # as in gunicorn's gevent worker: Redis limit calls take the worker's pipe (app/redis_pipe.py)
        from gevent import monkey

        monkey.patch_all()
    sys.path.insert(0, os.getcwd())
    logging_sink = open(os.devnull, "w")  # noqa: SIM115 -- the access lines: written, not kept
    sys.stderr = logging_sink
    from app import create_app

    app = create_app()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {os.environ['BENCH_TOKEN']}", "Content-Type": "application/json"}
    model = os.environ["BENCH_MODEL"]
    figures = {}
    profiler = None
    if profile:  # the measured requests only (wall clock: the waits for the mock are in it, in socket reads)
        profiler = _cprofile().Profile()
    for mode, stream in (("non-stream", False), ("stream", True)):
        body = json.dumps({"model": model, "messages": runner.MESSAGES, "stream": stream})
        for n in range(WARM_UP + requests):
            if n == WARM_UP:
                cpu, wall = time.process_time(), time.perf_counter()
                if profiler is not None:
                    profiler.enable()
            response = client.post("/v1/chat/completions", data=body, headers=headers)
            data = response.get_data()
            response.close()  # as gunicorn does: the body's close records telemetry, charges, writes the access line
            if response.status_code != 200 or (stream and not data.endswith(b"[DONE]\n\n")):
                raise RuntimeError(f"{mode}: HTTP {response.status_code} {data[:200]!r}")
        figures[mode] = {"cpu_us": (time.process_time() - cpu) * 1e6 / requests,
                         "wall_us": (time.perf_counter() - wall) * 1e6 / requests}
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{profile}-{mode}.pstats")
    return figures


def _cprofile():
    """The standard cProfile: bench/profile.py (on this process's path) would shadow the `profile` it imports."""
    here = str(Path(__file__).resolve().parent)
    saved = sys.path[:]
    sys.path[:] = [entry for entry in sys.path if entry and str(Path(entry).resolve()) != here]
    try:
        import cProfile
    finally:
        sys.path[:] = saved
    return cProfile


def measure(args: argparse.Namespace, target: runner.Target, checkout: Path) -> dict | None:
    """One target in its own process, in `checkout`; None (and a line saying why) if it failed."""
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as metrics:
        env = {**target.env, "BENCH_TOKEN": target.token, "BENCH_MODEL": target.model,
               "PROMETHEUS_MULTIPROC_DIR": metrics, "PYTHONPATH": str(runner.BENCH)}
        command = [args.python, str(Path(__file__).resolve()), "--child", "--requests", str(args.requests)]
        if args.gevent:
            command.append("--gevent")
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            command += ["--profile", str(Path(args.profile).resolve() / f"{target.name}-{checkout.name}")]
        done = subprocess.run(command,
                              cwd=checkout, env=env, capture_output=True, text=True, timeout=600, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("FEATURE_COST ")), None)
    if line is None:
        print(f"{target.name:<15} failed in {checkout}: {(done.stderr or done.stdout)[-400:]}", flush=True)
        return None
    return json.loads(line.removeprefix("FEATURE_COST "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default=",".join(n for n in runner.MATRIX))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--python", default=os.environ.get("BENCH_PYTHON", sys.executable))
    parser.add_argument("--litellm-python", default="")
    parser.add_argument("--gateway-dir", default=str(runner.ROOT))
    parser.add_argument("--gateway-env", action="append", default=[])
    parser.add_argument("--compare", metavar="DIR", help="another checkout, measured target by target in turn with this one")
    parser.add_argument("--profile", metavar="DIR", help="also write cProfile stats (wall clock) of each target and "
                        "mode to DIR/<target>-<checkout>-<mode>.pstats (the figures then include the profiler's cost)")
    parser.add_argument("--gevent", action="store_true", help="monkey-patch the app's process as gunicorn's gevent "
                        "worker does (Redis limit calls then take app/redis_pipe.py's path; one request at a time, so "
                        "nothing is batched)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("FEATURE_COST " + json.dumps(child(args.requests, args.profile, args.gevent)), flush=True)
        return 0
    runner.OUT.mkdir(exist_ok=True)
    mock = runner.Mock(runner.free_port())
    mock.start()
    checkouts = {"this": args.gateway_dir, **({"other": args.compare} if args.compare else {})}
    results: dict[str, dict] = {label: {} for label in checkouts}
    try:
        targets = runner.build_targets(args, mock.port)
        for name in [t.strip() for t in args.targets.split(",") if t.strip()]:
            target = targets[name]
            if target.prepare is not None:
                target.prepare(target)
                target.prepare = None
            for label in sorted(checkouts):  # "other" first, then "this"
                figures = measure(args, target, Path(checkouts[label]))
                if figures is None:
                    continue
                results[label][name] = figures
                base = results[label].get("bare")
                cells = []
                for mode in ("non-stream", "stream"):
                    us = figures[mode]["cpu_us"]
                    extra = f" ({us - base[mode]['cpu_us']:+5.0f})" if base and name != "bare" else ""
                    cells.append(f"{mode} {us:6.0f} us{extra}")
                where = f" [{label}: {checkouts[label]}]" if args.compare else ""
                print(f"{name:<15} CPU per request: " + "   ".join(cells) + where, flush=True)
    finally:
        runner.Helpers.stop()
        mock.stop()
    (runner.OUT / "feature-cost.json").write_text(json.dumps(results if args.compare else results["this"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
