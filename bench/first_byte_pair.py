"""First byte of the bare gateway and of one feature target, request by request in turn.

    .venv/bin/python bench/first_byte_pair.py [--target all-on|keys|limits-redis|telemetry|bare]
                                              [--requests 300] [--rounds 2] [--redis-delay-us 0]

The feature matrix (runner.py) takes each target's 60 streams back to back, one target after the
other, so a machine whose speed wanders between targets moves the difference (on 2026-12-05 the
bare gateway and its one-target alias, the same code, came out 0.66 ms apart). Here the two
gateways answer alternately, one stream each in turn on a keep-alive connection of their own, so
whatever the machine does falls on both alike. Each stream waits for the other's (about 110 ms
with the mock's 5 ms per chunk), so both start every request from an idle worker and an idle
Redis, as a lightly loaded gateway does. Settings as in runner.py's matrix (bench/README.md);
the mock, both gateways and Redis on 127.0.0.1; standard library and runner.py, run with the gateway's venv.

`--redis-delay-us N` puts a relay between the target and Redis that holds every read for N us
in each direction, as a Redis on another host would (on 127.0.0.1 both ends of a round trip
wake on this machine's cores; a network adds its own time).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from runner import BENCH_API_KEY, REDIS_URI, REQUEST_LIMITS, TOKENS_PER_MINUTE, free_port  # the matrix's settings

ROOT = Path(__file__).resolve().parent.parent
KEY = BENCH_API_KEY
LIMITS = {"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": REQUEST_LIMITS,
          "RATE_LIMIT_TOKENS_PER_MINUTE": TOKENS_PER_MINUTE, "RATE_LIMIT_STORAGE_URI": REDIS_URI}
KEYS = {"AUTH_ENABLE": "true", "AUTH_API_KEYS": KEY, "AUTH_OIDC_ISSUER": ""}
TELEMETRY = {"TELEMETRY_ENABLE": "true"}
TARGETS = {"bare": {}, "keys": KEYS, "limits-redis": LIMITS, "telemetry": TELEMETRY,
           "all-on": {**KEYS, **LIMITS, **TELEMETRY}}
WARM_UP = 20


def delaying_relay(target: int, delay_us: int) -> int:
    """A TCP relay on 127.0.0.1 to `target` that holds every read `delay_us` before passing it on."""
    listener = socket.create_server(("127.0.0.1", 0))

    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                time.sleep(delay_us / 1e6)
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            end.close()

    def accept() -> None:
        while True:
            client, _ = listener.accept()
            server = socket.create_connection(("127.0.0.1", target))
            for end in (client, server):
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=pump, args=(client, server), daemon=True).start()
            threading.Thread(target=pump, args=(server, client), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def wait_until_listening(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.1)


class Stream:
    """One keep-alive connection; `first_byte()` sends a streamed completion and times its first event."""

    def __init__(self, port: int, token: str):
        body = json.dumps({"model": "openai/mock-model-delay-5", "messages": [{"role": "user", "content": "Hi"}],
                           "stream": True}).encode()
        self.request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def first_byte(self) -> float:
        started, first, buffer = time.perf_counter(), None, b""
        self.conn.sendall(self.request)
        while not (b"[DONE]" in buffer and buffer.endswith(b"0\r\n\r\n")):
            chunk = self.conn.recv(65536)
            if not chunk:
                raise RuntimeError("the gateway closed the connection mid-stream")
            if first is None and b"data:" in buffer[-8:] + chunk:
                first = time.perf_counter()
            buffer += chunk
        if not buffer.startswith(b"HTTP/1.1 200") or first is None:
            raise RuntimeError(f"unexpected answer: {buffer[:120]!r}")
        return (first - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=sorted(TARGETS), default="all-on")
    parser.add_argument("--requests", type=int, default=300, help="streams per gateway and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--redis-delay-us", type=int, default=0, help="held per read each way (see above)")
    args = parser.parse_args()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    mock = free_port()
    processes = [start(["node", str(ROOT / "bench" / "mock_provider.js"), str(mock)])]
    try:
        ports = {}
        second = args.target if args.target != "bare" else "bare, a second one"
        for name, extra in (("bare", {}), (second, TARGETS[args.target])):
            port = ports[name] = free_port()
            env = dict(os.environ, SERVER_HOST="127.0.0.1", SERVER_PORT=str(port), WEB_CONCURRENCY="2",
                       OPENAI_API_URL=f"http://127.0.0.1:{mock}/v1", OPENAI_API_KEY="sk-bench", **extra)
            if "RATE_LIMIT_ENABLE" in extra:
                env["RATE_LIMIT_KEY_PREFIX"] = f"bench-first-byte-{os.getpid()}"
                if args.redis_delay_us:
                    env["RATE_LIMIT_STORAGE_URI"] = f"redis://127.0.0.1:{delaying_relay(6379, args.redis_delay_us)}/0"
            if "TELEMETRY_ENABLE" in extra:
                env["TELEMETRY_METRICS_PORT"] = str(free_port())
            processes.append(start([gunicorn, "wsgi:app"], env))
        for port in (mock, *ports.values()):
            wait_until_listening(port)
        time.sleep(2)  # every worker up
        streams = {"bare": Stream(ports["bare"], "sk-bench"),
                   second: Stream(ports[second], KEY if "AUTH_ENABLE" in TARGETS[args.target] else "sk-bench")}
        names = list(streams)
        for _ in range(WARM_UP):
            for name in names:
                streams[name].first_byte()
        for round_ in range(1, args.rounds + 1):
            taken: dict[str, list[float]] = {name: [] for name in names}
            for n in range(args.requests):
                for name in (names if n % 2 else names[::-1]):
                    taken[name].append(streams[name].first_byte())
            bare, other = statistics.median(taken["bare"]), statistics.median(taken[names[-1]])
            print(f"round {round_}: first byte p50 bare {bare:.2f} ms, {names[-1]} {other:.2f} ms, "
                  f"{names[-1]} over bare {other - bare:+.2f} ms ({args.requests} streams each)", flush=True)
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    main()
