"""A steady, bounded load on a live gateway: a few clients calling back to back, every call counted.

    load = SteadyLoad(gateway.url, stream_events=12).start()
    load.wait_until(lambda calls: len(calls) >= 10 and load.streams_in_flight >= 2)
    ... signal gunicorn ...
    calls = load.stop()
    assert [c for c in calls if not c.ok] == []

Each client thread keeps one `requests.Session` (keep-alive, as SDK clients do). JSON clients
make non-stream chat calls, stream clients stream. A call fails when it raises, answers another
status than 200, or (a stream) misses an event or the closing `[DONE]`. Bounded in time and
count: `max_seconds` and `max_calls` stop every client even if the test never calls `stop()`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests


@dataclass(frozen=True)
class Call:
    kind: str  # "json" or "stream"
    started: float  # time.monotonic()
    ended: float
    ok: bool
    detail: str = ""

    def spans(self, moment: float) -> bool:
        return self.started < moment < self.ended


class SteadyLoad:
    def __init__(self, url: str, *, stream_events: int, json_clients: int = 2, stream_clients: int = 3,
                 model: str = "openai/m", max_seconds: float = 90, max_calls: int = 3000):
        self.url = url + "/v1/chat/completions"
        self.stream_events = stream_events  # data events a complete stream carries, [DONE] excluded
        self.kinds = ["json"] * json_clients + ["stream"] * stream_clients
        self.body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        self.max_seconds, self.max_calls = max_seconds, max_calls
        self.calls: list[Call] = []
        self.streams_in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> SteadyLoad:
        deadline = time.monotonic() + self.max_seconds
        for kind in self.kinds:
            thread = threading.Thread(target=self._client, args=(kind, deadline), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Call]:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        with self._lock:
            return list(self.calls)

    def wait_until(self, condition: Callable[[list[Call]], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                calls = list(self.calls)
            if condition(calls):
                return
            time.sleep(0.02)
        raise AssertionError(f"load did not reach the expected state within {timeout}s: {len(calls)} calls")

    # -- the clients ------------------------------------------------------------------------
    def _client(self, kind: str, deadline: float) -> None:
        call = self._stream if kind == "stream" else self._json
        with requests.Session() as session:
            while not self._stop.is_set() and time.monotonic() < deadline:
                with self._lock:
                    if len(self.calls) >= self.max_calls:
                        return
                started = time.monotonic()
                try:
                    ok, detail = call(session)
                except requests.RequestException as exc:
                    ok, detail = False, f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self.calls.append(Call(kind, started, time.monotonic(), ok, detail))

    def _json(self, session: requests.Session) -> tuple[bool, str]:
        response = session.post(self.url, json=self.body, timeout=30)
        if response.status_code != 200:
            return False, f"status {response.status_code}: {response.text[:200]}"
        return bool(response.json().get("choices")), ""

    def _stream(self, session: requests.Session) -> tuple[bool, str]:
        with session.post(self.url, json={**self.body, "stream": True}, stream=True, timeout=30) as response:
            if response.status_code != 200:
                return False, f"status {response.status_code}: {response.text[:200]}"
            with self._lock:
                self.streams_in_flight += 1
            try:
                body = b"".join(response.iter_content(None))
            finally:
                with self._lock:
                    self.streams_in_flight -= 1
        events = [event for event in body.split(b"\n\n") if event.strip()]
        complete = len(events) == self.stream_events + 1 and events[-1] == b"data: [DONE]"
        return complete, "" if complete else f"incomplete stream: {len(events)} events, last {events[-1:]!r}"
