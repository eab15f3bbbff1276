"""The benchmark runner: starts the mock and each target in turn on 127.0.0.1, measures with wrk.

    python bench/runner.py [--targets mock,minimal,litellm,gateway] [--quick]
    python bench/runner.py --render bench/out/results.json      (RESULTS.md from a saved run)

Normally started by `bash bench/run.sh`, which finds the Pythons and installs what is missing.
Standard library only. Everything it starts is on 127.0.0.1, bounded in time, and stopped at the
end (its own process groups only). Raw output goes to bench/out/ (git-ignored); the report to
bench/RESULTS.md.

Targets, each measured the same way (see bench/README.md for what every figure means):
    mock      wrk straight at the mock provider (the floor; shows the mock is not the bottleneck)
    minimal   bench/minimal.py, a ~30-line Flask passthrough on the same stack (the ceiling)
    litellm   the LiteLLM proxy (PyPI litellm[proxy]), the peer users would pick instead
    gateway   this project: gunicorn wsgi:app (gevent, 2 workers)
    alias     the same gateway, the model named through a one-target alias of its configuration file
              (GATEWAY_CONFIG): what routing through an alias costs against the direct provider/model
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
POST_LUA = BENCH / "post.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")

CONCURRENCIES = (16, 64)
MODES = ("non-stream", "stream")
RUNS = 2
TTFB_REQUESTS = 50
TTFB_DELAY_MS = 5
SOAK_MARKS = (10_000, 100_000)
WRK_THREADS = 2
MESSAGES = [{"role": "user", "content": "Say hello in twenty tokens."}]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- processes

def descendants(root: int) -> list[int]:
    """root and every process below it (gunicorn master + workers, uvicorn parent + children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def memory_kb(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) in kB summed over pids, from /proc/<pid>/smaps_rollup."""
    rss = pss = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return rss, pss


@dataclass
class Target:
    name: str
    label: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    port: int
    model: str  # the model name a client sends for the plain mock model
    delay_model: str  # ... and for the mock model with TTFB_DELAY_MS per chunk
    startup_timeout: float = 60.0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    token: str = "sk-bench"  # the bearer credential every request carries
    prepare: Callable[[Target], None] | None = None  # runs once before the first start (issuer, database, key)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    def body(self, *, stream: bool, model: str | None = None) -> str:
        return json.dumps({"model": model or self.model, "messages": MESSAGES, "stream": stream}, separators=(",", ":"))

    def start(self) -> None:
        if self.prepare is not None:
            self.prepare(self)
            self.prepare = None
        self.log_path = OUT / f"{self.name}.log"
        handle = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        handle.close()
        deadline = time.monotonic() + self.startup_timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            status, text = post(self.url, self.body(stream=False), timeout=5, token=self.token)
            if status == 200:
                return
            last = f"HTTP {status}: {text[:200]}"
            if status == 404 and self.name == "gateway":
                self.stop()
                raise RuntimeError("the gateway answers 404 on POST /v1/chat/completions (not built on this branch yet)")
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {self.startup_timeout:.0f} s ({last}); see {self.log_path}")

    def pids(self) -> list[int]:
        assert self.proc is not None
        return descendants(self.proc.pid)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: the group is ours alone
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        # children that outlived their parent (uvicorn's spawn workers) are still in the group
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def post(url: str, body: str, *, timeout: float, token: str = "sk-bench") -> tuple[int, str]:
    request = urllib.request.Request(url, data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


# --------------------------------------------------------------------------- measuring

class MemorySampler:
    """Samples RSS and PSS of a target's processes every `interval` seconds; keeps the peak."""

    def __init__(self, target: Target, interval: float = 0.5):
        self.target, self.interval = target, interval
        self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, pss = memory_kb(self.target.pids())
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def wrk(target: Target, *, stream: bool, connections: int, seconds: float, limit: int = 0) -> dict:
    """One wrk run; returns its figures plus the target's CPU time and peak memory over the run."""
    env = dict(os.environ, BENCH_BODY=target.body(stream=stream), BENCH_THREADS=str(WRK_THREADS),
               BENCH_LIMIT=str(limit), BENCH_TOKEN=target.token)
    argv = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
            "-s", str(POST_LUA), target.url]
    pids = target.pids()
    cpu_before = cpu_ticks(pids)
    with MemorySampler(target) as sampler:
        done = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=seconds + 60)
    cpu_ms = (cpu_ticks(pids) - cpu_before) * 1000 / CLK_TCK
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result (exit {done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    figures = json.loads(line.removeprefix("BENCH_JSON "))
    requests = figures["requests"]
    errors = sum(figures[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return {
        "mode": "stream" if stream else "non-stream", "connections": connections, "requests": requests,
        "rps": requests / (figures["duration_us"] / 1e6), "p50_ms": figures["p50_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000, "errors": errors, "status_errors": figures["status_errors"],
        "cpu_ms_per_request": cpu_ms / requests if requests else None,
        "peak_rss_mb": sampler.peak_rss / 1024, "peak_pss_mb": sampler.peak_pss / 1024, "wrk": figures,
    }


def first_bytes(target: Target, *, requests: int = TTFB_REQUESTS) -> dict:
    """Sequential streamed requests on one keep-alive connection, TTFB_DELAY_MS between chunks.
    Time to first byte = request sent -> the first `data:` of the first event arrives."""
    body = target.body(stream=True, model=target.delay_model).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer {target.token}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    samples: list[float] = []
    totals: list[float] = []
    with socket.create_connection(("127.0.0.1", target.port), timeout=10) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(requests):
            started = time.perf_counter()
            conn.sendall(head + body)
            buffer, first = b"", None
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    raise RuntimeError(f"{target.name} closed the connection mid-stream")
                if first is None and b"data:" in (buffer[-8:] + chunk):
                    first = time.perf_counter()
                buffer += chunk
                if b"[DONE]" in buffer and buffer.endswith(b"0\r\n\r\n"):
                    break
            if not buffer.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{target.name} answered {buffer[:80]!r}")
            samples.append((first - started) * 1000)
            totals.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"requests": requests, "p50_ms": statistics.median(samples), "mean_ms": statistics.fmean(samples),
            "p90_ms": samples[int(len(samples) * 0.9) - 1], "min_ms": samples[0],
            "stream_total_p50_ms": statistics.median(totals)}


def idle_memory(target: Target, settle: float = 2.0) -> dict:
    time.sleep(settle)
    rss, pss = memory_kb(target.pids())
    return {"rss_mb": rss / 1024, "pss_mb": pss / 1024, "processes": len(target.pids())}


def warm_up(target: Target, seconds: float) -> None:
    for stream in (False, True):
        wrk(target, stream=stream, connections=16, seconds=seconds)


def log_row(name: str, run: int, row: dict) -> None:
    log(f"{name} run {run} {row['mode']:<10} c{row['connections']:<3} {row['rps']:8.0f} req/s  "
        f"p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:8.2f} ms  errors {row['errors']}  "
        f"cpu {row['cpu_ms_per_request'] or 0:.2f} ms/req  peak PSS {row['peak_pss_mb']:.0f} MB")


def measure_group(group: list[Target], *, seconds: float, ttfb_requests: int, running: set[str],
                  restart: bool = False) -> dict[str, dict]:
    """Everything for the targets of a group, each figure RUNS times.

    The targets of a group run side by side (an idle one costs nothing) and take turns cell by
    cell, in A B / B A order from one run to the next, so that a shared, noisy machine drifts
    over both alike and their ratio stays fair. Targets named in `running` are already up.
    `restart`: every other target is started afresh (and warmed up) for each run, so that what
    one process happened to get (where its memory and its workers landed) does not stay with its
    target for every run: two instances of the same gateway have differed by 5% for a whole run."""
    results: dict[str, dict] = {}
    live: list[Target] = []
    try:
        for target in group:
            try:
                if target.name not in running:
                    log(f"{target.name}: starting")
                    began = time.monotonic()
                    target.start()
                    results[target.name] = {"startup_s": time.monotonic() - began}
                else:
                    results[target.name] = {"startup_s": 0.0}
            except (RuntimeError, OSError) as exc:
                log(f"{target.name}: NOT MEASURED: {exc}")
                results[target.name] = {"label": target.label, "error": str(exc), "runs": []}
                continue
            results[target.name].update(label=target.label, idle=[], runs=[], ttfb=[], processes=len(target.pids()),
                                        idle_cold=idle_memory(target, settle=1.0))
            warm_up(target, seconds=min(2.0, seconds))
            live.append(target)
        for run in range(1, RUNS + 1):
            if restart and run > 1:
                live = restarted(live, running, results, seconds)
            order = live if run % 2 else live[::-1]
            for target in order:
                results[target.name]["idle"].append(idle_memory(target))
                results[target.name]["runs"].append([])
            for stream in (False, True):
                for connections in CONCURRENCIES:
                    for target in order:
                        row = wrk(target, stream=stream, connections=connections, seconds=seconds)
                        results[target.name]["runs"][-1].append(row)
                        log_row(target.name, run, row)
            for target in order:
                ttfb = first_bytes(target, requests=ttfb_requests)
                results[target.name]["ttfb"].append(ttfb)
                log(f"{target.name} run {run} first byte ({TTFB_DELAY_MS} ms/chunk): p50 {ttfb['p50_ms']:.2f} ms  "
                    f"mean {ttfb['mean_ms']:.2f} ms")
    finally:
        for target in group:
            if target.name not in running:
                target.stop()
    return results


def restarted(targets: list[Target], running: set[str], results: dict[str, dict], seconds: float) -> list[Target]:
    """Each of `targets` stopped, started afresh and warmed up (those in `running` left alone); one
    that does not come back is left out from here on, its error kept with its runs."""
    kept = []
    for target in targets:
        if target.name not in running:
            target.stop()
            try:
                target.start()
            except (RuntimeError, OSError) as exc:
                log(f"{target.name}: NOT RESTARTED, left out of the later runs: {exc}")
                results[target.name]["error"] = f"not restarted after run {len(results[target.name]['runs'])}: {exc}"
                continue
            warm_up(target, seconds=min(2.0, seconds))
        kept.append(target)
    return kept


def soak(target: Target, *, marks: tuple[int, ...], chunk_seconds: float = 5.0, budget_s: float = 300.0) -> list[dict]:
    """RSS and PSS of a fresh target after each mark of requests (half non-stream, half stream, c16).
    Bounded: stops at `budget_s` and says so in the last point."""
    log(f"{target.name}: soak to {marks[-1]:,} requests")
    target.start()
    points, served, deadline = [], 0, time.monotonic() + budget_s
    try:
        for mark in marks:
            while served < mark and time.monotonic() < deadline:
                left = mark - served
                for stream, share in ((False, (left + 1) // 2), (True, left // 2)):
                    if share > 0:
                        served += wrk(target, stream=stream, connections=16, seconds=chunk_seconds, limit=share)["requests"]
            point = {"requests": served, "mark": mark, **idle_memory(target, settle=1.0)}
            points.append(point)
            log(f"{target.name} after {served:,} requests: RSS {point['rss_mb']:.1f} MB  PSS {point['pss_mb']:.1f} MB")
            if served < mark:
                log(f"{target.name}: soak stopped at its {budget_s:.0f} s budget")
                break
    finally:
        target.stop()
    return points


# --------------------------------------------------------------------------- targets

def build_targets(args: argparse.Namespace, mock_port: int) -> dict[str, Target]:
    upstream = f"http://127.0.0.1:{mock_port}/v1"
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
                "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    py_bin = Path(os.path.abspath(args.python)).parent  # not resolve(): a venv's python is a symlink
    targets = {}
    port = free_port()
    targets["mock"] = Target("mock", "mock provider (direct)", [], BENCH, base_env, mock_port,
                             "mock-model", "mock-model-delay-5")
    port = free_port()
    targets["minimal"] = Target(
        "minimal", "minimal Flask passthrough",
        [str(py_bin / "gunicorn"), "-k", "gevent", "-w", "2", "--worker-connections", "2000", "--keep-alive", "120",
         "-b", f"127.0.0.1:{port}", "minimal:app"],
        BENCH, {**base_env, "MINIMAL_UPSTREAM": upstream}, port, "mock-model", "mock-model-delay-5")
    port = free_port()
    config = OUT / "litellm-config.yaml"
    config.write_text(litellm_config(upstream))
    targets["litellm"] = Target(
        "litellm", "LiteLLM proxy",
        [str(Path(os.path.abspath(args.litellm_python)).parent / "litellm"), "--config", str(config), "--host", "127.0.0.1",
         "--port", str(port), "--num_workers", "2", "--timeout_worker_healthcheck", "120"],
        OUT, {**base_env, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
              "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true"},
        port, "mock-model", "mock-model-delay-5", startup_timeout=180)
    port = free_port()
    gateway_env = {**base_env, "SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(port), "WEB_CONCURRENCY": "2",
                   "OPENAI_API_URL": upstream, "OPENAI_API_KEY": "sk-bench"}
    for item in args.gateway_env:
        key, _, value = item.partition("=")
        gateway_env[key] = value
    targets["gateway"] = Target(
        "gateway", "this gateway", [str(py_bin / "gunicorn"), "wsgi:app"], Path(args.gateway_dir), gateway_env, port,
        "openai/mock-model", "openai/mock-model-delay-5")
    port = free_port()
    config = OUT / "gateway-alias.yaml"
    config.write_text("aliases:\n"
                      "  mock-alias: {targets: [openai/mock-model]}\n"
                      "  mock-alias-delay-5: {targets: [openai/mock-model-delay-5]}\n")
    targets["alias"] = Target(
        "alias", "this gateway, through a one-target alias", [str(py_bin / "gunicorn"), "wsgi:app"],
        Path(args.gateway_dir), {**gateway_env, "SERVER_PORT": str(port), "GATEWAY_CONFIG": str(config)}, port,
        "mock-alias", "mock-alias-delay-5")
    targets.update(feature_targets(args, gateway_env, py_bin))
    return targets


# The feature matrix (--matrix): the gateway with one feature on at a time, all of them, and the bare
# gateway they are compared with. Limits are high enough never to refuse; the Redis targets count under
# a key prefix of their own, so nothing is shared with another run or the test suite.
MATRIX = ("bare", "bare-again", "keys", "oidc", "limits-memory", "limits-redis", "telemetry", "all-on", "virtual-keys", "alias",
          "keys-redis", "virtual-keys-pg")
MATRIX_TARGETS = "mock,minimal+" + "+".join(MATRIX)
BENCH_API_KEY = "sk-bench-static-key-0123456789"
REQUEST_LIMITS = "100000000/minute;1000000000/hour"  # two windows, like the default 60/minute;1000/hour
TOKENS_PER_MINUTE = "1000000000"
REDIS_URI = os.environ.get("BENCH_REDIS_URI", "redis://127.0.0.1:6379/0")
OIDC_AUDIENCE = "inference-gateway-bench"
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+pg8000://postgres@127.0.0.1:5432")
VIRTUAL_KEY_LIMITS = ["--rpm", "10000000", "--tpm", "1000000000", "--budget-usd", "1000000", "--budget-period", "month"]


class Helpers:
    """Processes the feature targets need besides the mock (the OIDC issuer); stopped at the end."""

    procs: ClassVar[list[subprocess.Popen]] = []

    @classmethod
    def stop(cls) -> None:
        for proc in cls.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        cls.procs.clear()


def start_oidc_issuer(python: str) -> tuple[str, str]:
    """bench/oidc_issuer.py: (issuer URL, a token valid for a day)."""
    handle = (OUT / "oidc-issuer.log").open("ab")
    proc = subprocess.Popen([python, str(BENCH / "oidc_issuer.py"), OIDC_AUDIENCE], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=handle, text=True, start_new_session=True)
    handle.close()
    Helpers.procs.append(proc)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        raise RuntimeError("the OIDC issuer did not start; see bench/out/oidc-issuer.log")
    found = json.loads(line)
    return found["url"], found["token"]


def feature_targets(args: argparse.Namespace, gateway_env: dict[str, str], py_bin: Path) -> dict[str, Target]:
    run_id = f"{os.getpid()}-{int(time.time())}"
    keys = {"AUTH_ENABLE": "true", "AUTH_API_KEYS": BENCH_API_KEY, "AUTH_OIDC_ISSUER": ""}
    limits = {"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": REQUEST_LIMITS}
    redis = {**limits, "RATE_LIMIT_TOKENS_PER_MINUTE": TOKENS_PER_MINUTE, "RATE_LIMIT_STORAGE_URI": REDIS_URI}
    database = OUT / "bench-accounts.db"
    features: dict[str, tuple[str, dict[str, str]]] = {
        "bare": ("this gateway, every feature off (default settings)", {}),
        "bare-again": ("the same bare gateway, a second instance: how far two identical ones differ here", {}),
        "keys": ("API keys (AUTH_API_KEYS)", keys),
        "oidc": ("OIDC tokens from a local issuer", {"AUTH_ENABLE": "true", "AUTH_OIDC_CLIENT_ID": OIDC_AUDIENCE}),
        "limits-memory": ("request limits, memory://", limits),
        "limits-redis": ("request + token limits, Redis",
                         {**redis, "RATE_LIMIT_KEY_PREFIX": f"bench-limits-{run_id}"}),
        "telemetry": ("telemetry (Prometheus multiprocess)", {"TELEMETRY_ENABLE": "true"}),
        "all-on": ("all on: API keys + Redis request and token limits + telemetry",
                   {**keys, **redis, "RATE_LIMIT_KEY_PREFIX": f"bench-all-{run_id}", "TELEMETRY_ENABLE": "true"}),
        "virtual-keys": ("virtual keys (ACCOUNTS_ENABLE, SQLite)",
                         {"AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "", "ACCOUNTS_ENABLE": "true",
                          "DATABASE_URL": f"sqlite:///{database}"}),
        # issue 16's comparison: a virtual key with rpm, tpm and a budget on PostgreSQL + Redis
        # against a static key with request and token limits on the same Redis
        "keys-redis": ("API keys + request and token limits, Redis",
                       {**keys, **redis, "RATE_LIMIT_KEY_PREFIX": f"bench-keys-{run_id}"}),
        "virtual-keys-pg": ("a virtual key with rpm, tpm and a budget, PostgreSQL + Redis",
                            {"AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": "", "ACCOUNTS_ENABLE": "true",
                             "DATABASE_URL": f"{POSTGRES_URL}/bench_{run_id.replace('-', '_')}",
                             "RATE_LIMIT_STORAGE_URI": REDIS_URI, "RATE_LIMIT_KEY_PREFIX": f"bench-vk-{run_id}"}),
    }
    targets = {}
    for name, (label, extra) in features.items():
        port = free_port()
        env = {**gateway_env, **extra, "SERVER_PORT": str(port)}
        if env.get("TELEMETRY_ENABLE") == "true":
            env["TELEMETRY_METRICS_PORT"] = str(free_port())
        token = BENCH_API_KEY if "AUTH_API_KEYS" in extra else "sk-bench"
        targets[name] = Target(name, label, [str(py_bin / "gunicorn"), "wsgi:app"], Path(args.gateway_dir), env, port,
                               "openai/mock-model", "openai/mock-model-delay-5", token=token)
    python = str(py_bin / "python")

    def with_issuer(target: Target) -> None:
        url, target.token = start_oidc_issuer(python)
        target.env["AUTH_OIDC_ISSUER"] = url

    def with_virtual_key(target: Target, limits: tuple[str, ...] = ()) -> None:
        """A fresh database, migrated, with one key made by the CLI as an operator would."""
        if target.env["DATABASE_URL"].startswith("sqlite:"):  # not another target's file (it may restart)
            for stale in OUT.glob(database.name + "*"):
                stale.unlink()
        flask = [python, "-m", "flask", "--app", "wsgi"]
        for argv in (flask + ["db", "upgrade"], flask + ["keys", "create", "--name", "bench", *limits]):
            done = subprocess.run(argv, cwd=target.cwd, env=target.env, capture_output=True, text=True, timeout=120,
                                  check=False)
            if done.returncode != 0:
                said = [ln for ln in (done.stderr + done.stdout).splitlines() if not ln.startswith("{")]  # not log lines
                raise RuntimeError(f"{' '.join(argv[2:])} failed: {' / '.join(said)[-300:]}")
        target.token = json.loads(done.stdout)["secret"]

    def with_limited_virtual_key_on_postgres(target: Target) -> None:
        """A fresh PostgreSQL database (dropped at the end is not needed: one per run, named for it)."""
        name = target.env["DATABASE_URL"].rsplit("/", 1)[1]
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", f"CREATE DATABASE {name}"],
                       check=True, capture_output=True, timeout=60)
        with_virtual_key(target, tuple(VIRTUAL_KEY_LIMITS))

    targets["oidc"].prepare = with_issuer
    targets["virtual-keys"].prepare = with_virtual_key
    targets["virtual-keys-pg"].prepare = with_limited_virtual_key_on_postgres
    return targets


def litellm_config(upstream: str) -> str:
    entries = "".join(
        f"  - model_name: {name}\n    litellm_params:\n      model: openai/{name}\n"
        f"      api_base: {upstream}\n      api_key: sk-bench\n"
        for name in ("mock-model", "mock-model-delay-5"))
    return f"model_list:\n{entries}litellm_settings:\n  telemetry: false\n"


def command_line(target: Target) -> str:
    """How to start a target by hand (for RESULTS.md), paths relative to the repo."""
    settings = " ".join(f"{k}={shlex.quote(v.replace(str(ROOT) + '/', ''))}" for k, v in target.env.items()
                        if k not in ("PATH", "HOME", "LANG", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"))
    argv = " ".join(str(a).replace(str(ROOT) + "/", "") for a in target.argv)
    where = str(target.cwd.relative_to(ROOT)) if target.cwd.is_relative_to(ROOT) and target.cwd != ROOT else "."
    return f"(cd {where} && {settings} {argv})"


class Mock:
    def __init__(self, port: int):
        self.port = port
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        handle = (OUT / "mock.log").open("ab")
        self.proc = subprocess.Popen(["node", str(BENCH / "mock_provider.js"), str(self.port)], stdout=handle,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        handle.close()
        for _ in range(100):
            if post(f"http://127.0.0.1:{self.port}/v1/chat/completions", '{"model":"m"}', timeout=2)[0] == 200:
                return
            time.sleep(0.1)
        raise RuntimeError("mock provider did not start; see bench/out/mock.log")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


# --------------------------------------------------------------------------- versions

def versions(args: argparse.Namespace) -> dict:
    def run(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "n/a"

    script = ("import importlib.metadata as m, platform, sys\n"
              "names = sys.argv[1:]\n"
              "def v(n):\n try: return m.version(n)\n except m.PackageNotFoundError: return 'n/a'\n"
              "print(' '.join([platform.python_version()] + [v(n) for n in names]))")
    gateway_pkgs = ["gunicorn", "gevent", "flask", "requests", "urllib3"]
    found = run([args.python, "-c", script, *gateway_pkgs]).split()
    result = dict(zip(["python", *gateway_pkgs], found))
    if Path(args.litellm_python).exists():
        lite = run([args.litellm_python, "-c", script, "litellm", "uvicorn", "fastapi"]).split()
        result.update(zip(["litellm_python", "litellm", "uvicorn", "fastapi"], lite))
    result["wrk"] = run(["wrk", "-v"]).split(" [")[0]
    result["node"] = run(["node", "--version"])
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "n/a")
    result["machine"] = f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}"
    return result


# --------------------------------------------------------------------------- report

TARGETS = {"alias_vs_gateway": 0.97, "rps_vs_minimal": 0.95, "first_byte_overhead_ms": 3.0, "nonstream_vs_litellm": 8.0,
           "stream_vs_litellm": 15.0, "idle_pss_mb": 120.0, "rss_growth": 1.1}


def row_of(result: dict, run: int, mode: str, connections: int) -> dict | None:
    for row in result["runs"][run] if run < len(result["runs"]) else []:
        if row["mode"] == mode and row["connections"] == connections:
            return row
    return None


def mean_rps(result: dict | None, mode: str, connections: int) -> float | None:
    if not result or not result.get("runs"):
        return None
    values = [r["rps"] for i in range(len(result["runs"])) if (r := row_of(result, i, mode, connections))]
    return statistics.fmean(values) if values else None


def mean_cpu(result: dict | None, mode: str, connections: int) -> float | None:
    if not result or not result.get("runs"):
        return None
    values = [r["cpu_ms_per_request"] for i in range(len(result["runs"]))
              if (r := row_of(result, i, mode, connections)) and r["cpu_ms_per_request"]]
    return statistics.fmean(values) if values else None


def paired_first_bytes(result: dict | None, bare: dict | None) -> list[float]:
    """A target's first-byte p50 minus the bare gateway's, run by run (ms)."""
    if not result or not bare or not result.get("ttfb") or not bare.get("ttfb"):
        return []
    return [t["p50_ms"] - b["p50_ms"] for t, b in zip(result["ttfb"], bare["ttfb"], strict=False)]


def paired_ratios(result: dict | None, bare: dict | None, mode: str, connections: int) -> list[float]:
    """Each run's RPS over the bare gateway's in the same run (taken next to each other in time)."""
    if not result or not bare or not result.get("runs"):
        return []
    out = []
    for i in range(len(result["runs"])):
        row, ref = row_of(result, i, mode, connections), row_of(bare, i, mode, connections)
        if row and ref and row["rps"] and ref["rps"]:
            out.append(row["rps"] / ref["rps"])
    return out


def ratios(data: dict) -> dict:
    res = data["results"]
    out: dict = {"vs_minimal": {}, "vs_litellm": {}, "cpu_vs_minimal": {}, "cpu_vs_litellm": {},
                 "alias_vs_gateway": {}, "alias_cpu_vs_gateway": {}}
    gw = res.get("gateway")
    alias = res.get("alias")
    for mode in MODES:
        for c in CONCURRENCIES:
            key = f"{mode} c{c}"
            g = mean_rps(gw, mode, c)
            for other, slot in (("minimal", "vs_minimal"), ("litellm", "vs_litellm")):
                o = mean_rps(res.get(other), mode, c)
                out[slot][key] = g / o if g and o else None
                gc, oc = mean_cpu(gw, mode, c), mean_cpu(res.get(other), mode, c)
                out[f"cpu_{slot}"][key] = gc / oc if gc and oc else None
            a, ac, gc = mean_rps(alias, mode, c), mean_cpu(alias, mode, c), mean_cpu(gw, mode, c)
            out["alias_vs_gateway"][key] = a / g if a and g else None
            out["alias_cpu_vs_gateway"][key] = ac / gc if ac and gc else None
    if gw and res.get("mock") and gw.get("ttfb") and res["mock"].get("ttfb"):
        out["first_byte_overhead_ms"] = [g["p50_ms"] - d["p50_ms"] for g, d in zip(gw["ttfb"], res["mock"]["ttfb"])]
    for name in ("minimal", "litellm"):
        if res.get(name) and res.get("mock") and res[name].get("ttfb"):
            out[f"{name}_first_byte_overhead_ms"] = [
                t["p50_ms"] - d["p50_ms"] for t, d in zip(res[name]["ttfb"], res["mock"]["ttfb"])]
    soaks = data.get("soak", {}).get("gateway")
    if soaks:
        out["rss_growth"] = [s[-1]["rss_mb"] / s[0]["rss_mb"] for s in soaks if len(s) >= 2 and s[-1]["requests"] >= s[-1]["mark"]]
    return out


def verdicts(data: dict, r: dict) -> list[tuple[str, str, str]]:
    """(target, measured, met / missed / not measured)."""
    def judge(ok: bool | None) -> str:
        return "not measured" if ok is None else ("met" if ok else "**missed**")

    rows = []
    for mode in MODES:
        for c in CONCURRENCIES:
            v = r["vs_minimal"].get(f"{mode} c{c}")
            rows.append((f">= {TARGETS['rps_vs_minimal']}x minimal RPS, {mode} c{c}", fmt(v, "x"),
                         judge(None if v is None else v >= TARGETS["rps_vs_minimal"])))
    if data["results"].get("alias", {}).get("runs"):
        for mode in MODES:
            for c in CONCURRENCIES:
                v = r["alias_vs_gateway"].get(f"{mode} c{c}")
                need = TARGETS["alias_vs_gateway"]
                rows.append((f">= {need}x the direct provider/model RPS through a one-target alias, {mode} c{c}",
                             fmt(v, "x"),
                             judge(None if v is None else v >= TARGETS["alias_vs_gateway"])))
    overhead = r.get("first_byte_overhead_ms")
    rows.append((f"first-byte overhead <= {TARGETS['first_byte_overhead_ms']:g} ms over direct (p50, each run)",
                 " / ".join(fmt(x, " ms") for x in overhead) if overhead else "n/a",
                 judge(None if not overhead else max(overhead) <= TARGETS["first_byte_overhead_ms"])))
    for mode, need in (("non-stream", TARGETS["nonstream_vs_litellm"]), ("stream", TARGETS["stream_vs_litellm"])):
        for c in CONCURRENCIES:
            v = r["vs_litellm"].get(f"{mode} c{c}")
            rows.append((f">= {need:g}x LiteLLM RPS, {mode} c{c}", fmt(v, "x"), judge(None if v is None else v >= need)))
    gw = data["results"].get("gateway")
    idle = [i["pss_mb"] for i in gw.get("idle", [])] if gw else []
    rows.append((f"idle PSS of the gateway (2 workers) <= {TARGETS['idle_pss_mb']:g} MB",
                 " / ".join(fmt(x, " MB") for x in idle) if idle else "n/a",
                 judge(None if not idle else max(idle) <= TARGETS["idle_pss_mb"])))
    growth = r.get("rss_growth")
    rows.append((f"RSS after 100k requests <= {TARGETS['rss_growth']}x RSS after 10k",
                 " / ".join(fmt(x, "x") for x in growth) if growth else "n/a",
                 judge(None if not growth else max(growth) <= TARGETS["rss_growth"])))
    return rows


def fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def both(result: dict, mode: str, c: int, key: str, digits: int = 1) -> str:
    values = [row_of(result, i, mode, c) for i in range(len(result["runs"]))]
    return " / ".join("n/a" if v is None or v[key] is None else f"{v[key]:.{digits}f}" for v in values)


def render(data: dict) -> str:
    res, r = data["results"], ratios(data)
    lines = ["# Benchmark results", ""]
    lines += [f"Run {data['started']} → {data['finished']} UTC, {data['elapsed_s']:.0f} s in all, by `{data['command']}`.",
              f"Load average at start / end: {data['loadavg_start']} / {data['loadavg_end']}.", ""]
    if data.get("note"):
        lines += [f"> {data['note']}", ""]
    lines += ["How each figure is taken is in [README.md](README.md). Every figure is given twice (run 1 / run 2).",
              (f"wrk: {WRK_THREADS} threads, 10 s timeout; {', '.join(f'c{c}' for c in CONCURRENCIES)} for "
               f"{data['seconds']:g} s each; non-stream = one JSON chat.completion, stream = 20 SSE chunks + usage "
               f"chunk + [DONE] with no delay."), ""]
    lines += ["## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in verdicts(data, r)]
    lines += ["", "## Ratios (mean of the two runs)", "",
              ("RPS ratios are what the targets are about; CPU per request (lower is better) is the same comparison "
               "seen through the figure a busy machine moves least."), "",
              "| | RPS gateway / minimal | RPS gateway / LiteLLM | CPU per request gateway / minimal | CPU per request gateway / LiteLLM |",
              "|---|---|---|---|---|"]
    for mode in MODES:
        for c in CONCURRENCIES:
            k = f"{mode} c{c}"
            lines.append(f"| {k} | {fmt(r['vs_minimal'].get(k), 'x')} | {fmt(r['vs_litellm'].get(k), 'x')} | "
                         f"{fmt(r['cpu_vs_minimal'].get(k), 'x')} | {fmt(r['cpu_vs_litellm'].get(k), 'x')} |")
    if res.get("alias", {}).get("runs"):
        lines += ["", "| | RPS alias / direct provider/model | CPU per request alias / direct |", "|---|---|---|"]
        for mode in MODES:
            for c in CONCURRENCIES:
                k = f"{mode} c{c}"
                lines.append(f"| {k} | {fmt(r['alias_vs_gateway'].get(k), 'x')} | "
                             f"{fmt(r['alias_cpu_vs_gateway'].get(k), 'x')} |")
    lines.append("")
    for name in ("gateway", "minimal", "litellm"):
        key = "first_byte_overhead_ms" if name == "gateway" else f"{name}_first_byte_overhead_ms"
        if r.get(key):
            lines.append(f"- {res[name]['label']}: stream first-byte overhead over direct (p50): "
                         + " / ".join(fmt(x, " ms") for x in r[key]))
    lines += ["", "## Throughput and latency", "",
              "| target | mode | conc | RPS | p50 ms | p99 ms | errors | CPU ms/req | peak RSS MB | peak PSS MB |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("mock", "minimal", "gateway", "alias", "litellm"):
        result = res.get(name)
        if not result:
            continue
        if result.get("error"):
            lines.append(f"| {name} | — | — | not measured: {result['error']} | | | | | | |")
            continue
        for mode in MODES:
            for c in CONCURRENCIES:
                lines.append(f"| {result['label']} | {mode} | {c} | {both(result, mode, c, 'rps', 0)} | "
                             f"{both(result, mode, c, 'p50_ms', 2)} | {both(result, mode, c, 'p99_ms', 2)} | "
                             f"{both(result, mode, c, 'errors', 0)} | {both(result, mode, c, 'cpu_ms_per_request', 2)} | "
                             f"{both(result, mode, c, 'peak_rss_mb', 0)} | {both(result, mode, c, 'peak_pss_mb', 0)} |")
    lines += ["", f"## Stream time to first byte ({data['ttfb_requests']} sequential requests, {TTFB_DELAY_MS} ms per chunk)", "",
              "| target | p50 ms | mean ms | p90 ms | whole stream p50 ms |", "|---|---|---|---|---|"]
    for name in ("mock", "minimal", "gateway", "alias", "litellm"):
        result = res.get(name)
        if result and result.get("ttfb"):
            t = result["ttfb"]
            lines.append(f"| {result['label']} | " + " | ".join(
                " / ".join(f"{x[k]:.2f}" for x in t) for k in ("p50_ms", "mean_ms", "p90_ms", "stream_total_p50_ms")) + " |")
    lines += ["", "## Memory", "",
              "| target | processes | idle after start: RSS / PSS MB | idle, warm (run 1 / run 2): RSS MB | PSS MB | peak under load: RSS MB | PSS MB |",
              "|---|---|---|---|---|---|---|"]
    for name in ("mock", "minimal", "gateway", "alias", "litellm"):
        result = res.get(name)
        if not result or not result.get("runs"):
            continue
        peaks = [(max(x["peak_rss_mb"] for x in run), max(x["peak_pss_mb"] for x in run)) for run in result["runs"]]
        cold = result["idle_cold"]
        lines.append(f"| {result['label']} | {result['processes']} | {cold['rss_mb']:.0f} / {cold['pss_mb']:.0f} | "
                     + " / ".join(f"{i['rss_mb']:.0f}" for i in result["idle"]) + " | "
                     + " / ".join(f"{i['pss_mb']:.0f}" for i in result["idle"]) + " | "
                     + " / ".join(f"{p[0]:.0f}" for p in peaks) + " | " + " / ".join(f"{p[1]:.0f}" for p in peaks) + " |")
    soaks = data.get("soak", {})
    if soaks:
        lines += ["", "## Memory over many requests (fresh start each run; half non-stream, half stream, c16)", "",
                  "| target | run | requests | RSS MB | PSS MB |", "|---|---|---|---|---|"]
        for name, runs in soaks.items():
            for i, points in enumerate(runs, 1):
                for p in points:
                    lines.append(f"| {res[name]['label'] if name in res else name} | {i} | {p['requests']:,} | "
                                 f"{p['rss_mb']:.1f} | {p['pss_mb']:.1f} |")
    profile = BENCH / "PROFILE.md"
    if profile.exists():
        lines += ["", "## Profile", "", ("Where the gateway spends its time, and what to fix: [PROFILE.md](PROFILE.md) "
                                          "(py-spy, kept by hand; `bash bench/profile.sh` takes a new one).")]
    lines += ["", "## Versions", ""] + [f"- {k}: {v}" for k, v in data["versions"].items()]
    lines += ["", "## Commands", "", "```"] + data["commands"] + ["```", ""]
    return "\n".join(lines)


MATRIX_BEGIN = "<!-- feature-matrix: written by `python bench/runner.py --matrix` -->"
MATRIX_END = "<!-- /feature-matrix -->"
# target -> (compared with, at least this RPS ratio in both modes); the targets
MATRIX_NEEDS = {"bare": ("minimal", 1.0), "bare-again": ("bare", None), "keys": ("bare", 0.95), "oidc": ("bare", 0.95),
                "limits-memory": ("bare", 0.95), "limits-redis": ("bare", 0.95), "telemetry": ("bare", 0.95),
                "all-on": ("bare", 0.85), "virtual-keys": ("keys", 0.90), "alias": ("bare", 0.97),
                "keys-redis": ("bare", None), "virtual-keys-pg": ("keys-redis", 0.90)}
ALL_ON_FIRST_BYTE_MS = 0.5  # all-on's first-byte p50 at most this above the bare gateway's
MATRIX_IDLE_PSS_MB = 100.0  # the bare gateway, 2 workers


def matrix_rows(data: dict) -> list[dict]:
    """One row per measured target of the matrix: RPS, ratios, CPU, first byte, verdict."""
    res = data["results"]
    c = max(data.get("concurrencies") or CONCURRENCIES)

    def first_byte(name: str) -> float | None:
        t = res.get(name, {}).get("ttfb")
        return statistics.fmean(x["p50_ms"] for x in t) if t else None

    bare_ttfb = first_byte("bare")
    rows = []
    for name in ("minimal", *MATRIX):
        result = res.get(name)
        if not result:
            continue
        row = {"name": name, "label": result.get("label", name), "error": result.get("error"), "c": c}
        if not result.get("runs"):
            rows.append(row)
            continue
        base, need = MATRIX_NEEDS.get(name, ("bare", None))
        for mode in MODES:
            rps, ref = mean_rps(result, mode, c), mean_rps(res.get(base), mode, c)
            bare = mean_rps(res.get("bare"), mode, c)
            row[mode] = {"rps": rps, "cpu": mean_cpu(result, mode, c),
                         "vs_bare": rps / bare if rps and bare else None,
                         "vs_base": rps / ref if rps and ref else None}
        ttfb = first_byte(name)
        row["first_byte_ms"] = ttfb
        row["first_byte_vs_bare_ms"] = ttfb - bare_ttfb if ttfb is not None and bare_ttfb is not None else None
        row["idle_pss_mb"] = max((i["pss_mb"] for i in result.get("idle", [])), default=None)
        checks: list[bool | None] = []
        notes = []
        if need is not None:
            for mode in MODES:
                v = row[mode]["vs_base"]
                checks.append(None if v is None else v >= need)
            notes.append(f">= {need:g}x {base}")
        if name == "all-on":
            v = row["first_byte_vs_bare_ms"]
            checks.append(None if v is None else v <= ALL_ON_FIRST_BYTE_MS)
            notes.append(f"first byte <= bare + {ALL_ON_FIRST_BYTE_MS:g} ms")
        if name == "bare":
            v = row["idle_pss_mb"]
            checks.append(None if v is None else v <= MATRIX_IDLE_PSS_MB)
            notes.append(f"idle PSS <= {MATRIX_IDLE_PSS_MB:g} MB")
        if not checks:
            row["verdict"] = "reference"
        elif any(x is None for x in checks):
            row["verdict"] = "not measured"
        else:
            row["verdict"] = "met" if all(checks) else "**missed**"
        row["need"] = ", ".join(notes)
        rows.append(row)
    return rows


def render_matrix(data: dict) -> str:
    rows = matrix_rows(data)
    c = max(data.get("concurrencies") or CONCURRENCIES)
    lines = [MATRIX_BEGIN, "## Feature matrix", "",
             (f"Run {data['started']} → {data.get('finished', '?')} UTC by `{data['command']}`; load average at start / "
             f"end: {data['loadavg_start']} / {data.get('loadavg_end', '?')}."), ""]
    if data.get("note"):
        lines += [f"> {data['note']}", ""]
    lines += [(f"The gateway with one feature on at a time, and all of them, against the bare gateway (every "
               f"feature off) and the minimal passthrough. All run side by side and take turns cell by cell "
               f"(order reversed every other run), each started afresh for every run; bare-again, a second "
               f"bare gateway, shows how far two identical ones differ on this machine; wrk c{c}, {data['seconds']:g} s per cell, "
               f"{data.get('runs', 2)} runs; figures are the mean of the runs. CPU ms/request is summed over master and workers "
               f"(lower is better; a busy machine moves it least). First byte: p50 of {data['ttfb_requests']} "
               f"sequential streams, minus the bare gateway's. Targets: every feature alone >= 0.95x bare, "
               f"all on >= 0.85x bare with first byte <= bare + {ALL_ON_FIRST_BYTE_MS:g} ms, virtual keys >= 0.90x "
               f"static keys, an alias >= 0.97x the plain model, bare >= 1.0x minimal with idle PSS <= "
               f"{MATRIX_IDLE_PSS_MB:g} MB. How each target is configured: bench/README.md."), "",
              ("| target | RPS non-stream | RPS stream | vs bare (non-stream / stream) | CPU ms/req (non-stream / stream) "
              "| first byte vs bare | idle PSS MB | target | verdict |"),
              "|---|---:|---:|---|---|---:|---:|---|---|"]
    for row in rows:
        if row.get("error") or "stream" not in row:
            lines.append(f"| {row['name']} | not measured: {row.get('error')} | | | | | | | |")
            continue
        ns, st = row["non-stream"], row["stream"]
        lines.append(f"| {row['name']}: {row['label']} | {fmt(ns['rps'], '', 0)} | {fmt(st['rps'], '', 0)} | "
                     f"{fmt(ns['vs_bare'], 'x')} / {fmt(st['vs_bare'], 'x')} | {fmt(ns['cpu'])} / {fmt(st['cpu'])} | "
                     f"{fmt(row['first_byte_vs_bare_ms'], ' ms')} | {fmt(row['idle_pss_mb'], '', 0)} | "
                     f"{row['need'] or '—'} | {row['verdict']} |")
    ratios_to_base = [r for r in rows if r.get("stream") and MATRIX_NEEDS.get(r["name"], ("bare",))[0] != "bare"]
    if ratios_to_base:
        lines.append("")
        for row in ratios_to_base:
            base = MATRIX_NEEDS[row["name"]][0]
            lines.append(f"- {row['name']} / {base} RPS: {fmt(row['non-stream']['vs_base'], 'x')} non-stream, "
                         f"{fmt(row['stream']['vs_base'], 'x')} stream")
    res = data["results"]
    lines += ["", ("Each run's ratio to the bare gateway of the same run, and their median (less moved than the "
                   "mean by a machine whose speed wanders between cells); the same for the first byte (p50 minus "
                   "the bare gateway's p50 of the same run, in ms; the verdict above takes the mean):"), "",
              ("| target | vs bare per run, non-stream | median | vs bare per run, stream | median "
               "| first byte vs bare per run | median |"), "|---|---|---:|---|---:|---|---:|"]
    for row in rows:
        if "stream" not in row or row["name"] == "bare":
            continue
        cells = []
        for mode in MODES:
            paired = paired_ratios(res.get(row["name"]), res.get("bare"), mode, c)
            cells += [" ".join(f"{x:.2f}" for x in paired) or "—",
                      f"{statistics.median(paired):.2f}x" if paired else "—"]
        firsts = paired_first_bytes(res.get(row["name"]), res.get("bare"))
        cells += [" ".join(f"{x:+.2f}" for x in firsts) or "—", f"{statistics.median(firsts):+.2f}" if firsts else "—"]
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    lines += ["", "Commands:", "", "```"] + data.get("commands", []) + ["```", MATRIX_END]
    return "\n".join(lines)


def matrix_summary(data: dict) -> str:
    lines = ["", "=" * 78, f"FEATURE MATRIX (mean of {data.get('runs', 2)} runs)", "=" * 78,
             f"{'target':<15}{'RPS ns':>9}{'RPS st':>9}{'vs bare':>15}{'CPU ms/req':>13}{'1st byte':>10}  verdict"]
    for row in matrix_rows(data):
        if "stream" not in row:
            lines.append(f"{row['name']:<15}not measured: {row.get('error')}")
            continue
        ns, st = row["non-stream"], row["stream"]
        lines.append(f"{row['name']:<15}{fmt(ns['rps'], '', 0):>9}{fmt(st['rps'], '', 0):>9}"
                     f"{fmt(ns['vs_bare'], '') + '/' + fmt(st['vs_bare'], ''):>15}"
                     f"{fmt(ns['cpu']) + '/' + fmt(st['cpu']):>13}{fmt(row['first_byte_vs_bare_ms'], ''):>10}  "
                     f"{row['verdict'].strip('*')} {row['need']}")
    lines.append(f"\nReport: {data.get('report', BENCH / 'RESULTS.md')} (Feature matrix)   raw: {OUT / 'matrix.json'}")
    return "\n".join(lines)


def summary(data: dict) -> str:
    r = ratios(data)
    lines = ["", "=" * 78, f"SUMMARY (mean of {data.get('runs', 2)} runs)", "=" * 78]
    lines.append(f"{'':<22}" + "".join(f"{m + ' c' + str(c):>16}" for m in MODES for c in CONCURRENCIES))
    for name in ("mock", "minimal", "gateway", "alias", "litellm"):
        result = data["results"].get(name)
        if not result or not result.get("runs"):
            if result:
                lines.append(f"{name:<22}not measured: {result.get('error')}")
            continue
        lines.append(f"{name + ' RPS':<22}" + "".join(f"{fmt(mean_rps(result, m, c), '', 0):>16}" for m in MODES for c in CONCURRENCIES))
    lines.append(f"{'gateway/minimal':<22}" + "".join(f"{fmt(r['vs_minimal'].get(f'{m} c{c}'), 'x'):>16}" for m in MODES for c in CONCURRENCIES))
    lines.append(f"{'gateway/LiteLLM':<22}" + "".join(f"{fmt(r['vs_litellm'].get(f'{m} c{c}'), 'x'):>16}" for m in MODES for c in CONCURRENCIES))
    lines.append(f"{'CPU/req gw/minimal':<22}" + "".join(f"{fmt(r['cpu_vs_minimal'].get(f'{m} c{c}'), 'x'):>16}" for m in MODES for c in CONCURRENCIES))
    if data["results"].get("alias", {}).get("runs"):
        lines.append(f"{'alias/direct RPS':<22}" + "".join(f"{fmt(r['alias_vs_gateway'].get(f'{m} c{c}'), 'x'):>16}" for m in MODES for c in CONCURRENCIES))
        lines.append(f"{'CPU/req alias/direct':<22}" + "".join(f"{fmt(r['alias_cpu_vs_gateway'].get(f'{m} c{c}'), 'x'):>16}" for m in MODES for c in CONCURRENCIES))
    lines.append("")
    for target, measured, verdict in verdicts(data, r):
        lines.append(f"  [{verdict.strip('*'):>12}] {target}: {measured}")
    lines.append(f"\nFull report: {data.get('report', BENCH / 'RESULTS.md')}   raw: {OUT / 'results.json'}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default=None,
                        help="comma list of groups; the targets of a group joined by + take turns run by run "
                             "(default mock,minimal+gateway+alias,litellm; with --matrix, all the matrix's)")
    parser.add_argument("--matrix", action="store_true",
                        help=f"the feature matrix: --targets {MATRIX_TARGETS} at c64, no soak; writes only "
                             "the 'Feature matrix' section of RESULTS.md")
    parser.add_argument("--concurrencies", default=None, help="comma list of wrk connection counts (default 16,64; "
                                                               "--matrix: 64)")
    parser.add_argument("--soak", default="gateway", help="targets whose RSS is taken after 10k and 100k requests ('' for none)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs of every cell (default {RUNS}; the order of "
                        "the targets is reversed every other run); more runs, less noise on a shared machine")
    parser.add_argument("--ttfb-requests", type=int, default=TTFB_REQUESTS)
    parser.add_argument("--quick", action="store_true", help="2 s runs, 10 first-byte requests, soak to 2k/5k: checks the harness")
    parser.add_argument("--python", default=os.environ.get("BENCH_PYTHON", sys.executable),
                        help="python of the gateway's venv (gunicorn is taken from beside it)")
    parser.add_argument("--litellm-python", default=str(BENCH / ".venv-litellm" / "bin" / "python"))
    parser.add_argument("--gateway-dir", default=str(ROOT), help="checkout of the gateway to run (default: this repo)")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="KEY=VALUE", help="extra gateway setting")
    parser.add_argument("--note", default=os.environ.get("BENCH_NOTE", ""), help="a line for the top of RESULTS.md")
    parser.add_argument("--render", metavar="JSON", help="only write RESULTS.md from a saved results.json")
    parser.add_argument("--results", default=str(BENCH / "RESULTS.md"))
    args = parser.parse_args()
    globals()["RUNS"] = max(1, args.runs)  # measure_group and the soak read it

    def stop_cleanly(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through every `finally`, which stops what we started

    signal.signal(signal.SIGTERM, stop_cleanly)
    signal.signal(signal.SIGINT, stop_cleanly)  # also when started in the background, where SIGINT is ignored

    if args.render:
        data = json.loads(Path(args.render).read_text())
        data["report"] = args.results
        write_report(data, Path(args.results))
        return 0

    global CONCURRENCIES
    if args.matrix:
        args.targets, args.soak = args.targets or MATRIX_TARGETS, ""
        CONCURRENCIES = (64,)
    args.targets = args.targets or "mock,minimal+gateway+alias,litellm"
    if args.concurrencies:
        CONCURRENCIES = tuple(int(c) for c in args.concurrencies.split(","))
    marks = SOAK_MARKS
    if args.quick:
        args.seconds, args.ttfb_requests, marks = 2.0, 10, (2_000, 5_000)
    if not shutil.which("wrk"):
        print("wrk is not installed (bash bench/run.sh installs it)", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    for stale in OUT.glob("*.log"):
        stale.unlink()
    started = time.time()
    data: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)), "seconds": args.seconds,
                  "ttfb_requests": args.ttfb_requests, "soak_marks": list(marks),
                  "loadavg_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
                  "command": os.environ.get("BENCH_COMMAND", "python bench/runner.py " + " ".join(sys.argv[1:])),
                  "note": args.note, "results": {}, "soak": {}, "versions": versions(args),
                  "matrix": args.matrix, "concurrencies": list(CONCURRENCIES), "runs": RUNS}
    mock = Mock(free_port())
    mock.start()
    targets = build_targets(args, mock.port)
    # The mock "target" is the mock process itself, measured the same way.
    targets["mock"].proc = mock.proc
    commands = [f"node bench/mock_provider.js {mock.port}"]
    try:
        for spec in [t.strip() for t in args.targets.split(",") if t.strip()]:
            group = [targets[name] for name in spec.split("+")]
            try:
                data["results"].update(measure_group(group, seconds=args.seconds, ttfb_requests=args.ttfb_requests,
                                                     running={"mock"}, restart=args.matrix))
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                log(f"{spec}: NOT MEASURED: {exc}")
                for target in group:
                    data["results"][target.name] = {"label": target.label, "error": str(exc), "runs": []}
            commands += [command_line(target) for target in group if target.name != "mock"]  # after any prepare
        for name in [t.strip() for t in args.soak.split(",") if t.strip()]:
            if not data["results"].get(name, {}).get("runs"):
                continue
            try:
                data["soak"][name] = [soak(targets[name], marks=marks) for _ in range(RUNS)]
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                log(f"{name}: soak NOT MEASURED: {exc}")
                targets[name].stop()
    finally:
        for name, target in targets.items():
            if name != "mock":
                target.stop()
        Helpers.stop()
        mock.stop()
    commands += [
        f"BENCH_BODY='<body>' wrk -t{WRK_THREADS} -c<16|64> -d{args.seconds:g}s --timeout 10s -s bench/post.lua <url>",
        "# body: {\"model\": <model>, \"messages\": [...], \"stream\": <false|true>}; model mock-model, openai/mock-model for the gateway, mock-alias through the alias",
        ("# every request carries Authorization: Bearer <BENCH_TOKEN>: sk-bench, or the target's credential (the static "
        "key; the issuer's token; the virtual key made by `flask --app wsgi keys create --name bench`)"),
        "# soak: same, c16, with BENCH_LIMIT=<requests left> in 5 s slices until 10k, then 100k",
        f"# first byte: {args.ttfb_requests} sequential POSTs with model mock-model-delay-{TTFB_DELAY_MS} on one keep-alive connection",
    ]
    data["commands"] = commands
    data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    data["elapsed_s"] = time.time() - started
    data["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    data["report"] = args.results
    (OUT / ("matrix.json" if args.matrix else "results.json")).write_text(json.dumps(data, indent=1))
    write_report(data, Path(args.results))
    return 0


def write_report(data: dict, path: Path) -> None:
    """A matrix run rewrites only the Feature matrix section of RESULTS.md; any other run rewrites the rest and
    keeps the matrix section that is there."""
    global CONCURRENCIES
    CONCURRENCIES = tuple(data.get("concurrencies") or CONCURRENCIES)
    old = path.read_text() if path.exists() else ""
    start, end = old.find(MATRIX_BEGIN), old.find(MATRIX_END)
    kept = old[start:end + len(MATRIX_END)] if 0 <= start < end else ""
    if data.get("matrix"):
        section = render_matrix(data)
        text = old.replace(kept, section) if kept else (old.rstrip() + "\n\n" + section + "\n" if old else section + "\n")
        path.write_text(text)
        print(matrix_summary(data))
    else:
        text = render(data)
        if kept:
            text = text.rstrip() + "\n\n" + kept + "\n"
        path.write_text(text)
        print(summary(data))


if __name__ == "__main__":
    sys.exit(main())
