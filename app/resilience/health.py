"""Provider health for the whole host: each worker's view of its deployments, merged.

    health = app.extensions["gateway.health"]
    health.snapshot()     # what GET /health/providers answers (and the console shows)
    health.ready()        # what GET /health/ready answers: is any deployment usable?

Per deployment (every deployment of the configuration file, every catalog provider with a key,
and a keyless one, Ollama, once its URL is set: `Providers.configured()`):

    state           circuit_open   its circuit is open (cooldown running) in at least one worker
                    up / down      else: whether the latest outcome (a request's try, or the active
                                   check) succeeded; a 429 or a refused key counts as a failure
                    unknown        nothing tried yet
    circuit         the worst circuit across workers (open > half_open > closed), and in how many
                    workers it is open
    last_error      message, status and time of the latest failure; last_success_at likewise
    latency_p50_ms  median time to the first bytes (headers; a stream's first event; a whole
                    non-stream body) over the last WINDOW seconds; error_rate, requests and
                    failures over the same tries
    in_flight       requests being served by it now; last_check: the latest active check

Each worker publishes its view on the host's board (board.py) once a second when it changed, so
another worker's numbers are at most about a second old; the serving worker adds its own live
view. With HEALTH_CHECK_INTERVAL set, one worker per host (the board's lock) lists every
deployment's models that often; the check feeds `state` and `last_check`, never the breakers.

`ready()` is false while no deployment is usable: each one is circuit_open, or down with its
latest failure more recent than the breaker's cooldown. After the cooldown a deployment counts
as usable again, so a host taken out of rotation comes back and traffic can find out.
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.errors import GatewayError
from app.resilience.board import HostBoard
from app.resilience.state import WINDOW, Upstreams

if TYPE_CHECKING:
    from app.providers.provider import Provider

log = logging.getLogger("gateway.health")

EXTENSION_KEY = "gateway.health"
PUBLISH_INTERVAL = 1.0
READY_CACHE = 1.0  # seconds /health/ready reuses its answer
_CIRCUIT_ORDER = {"closed": 0, "half_open": 1, "open": 2}


class Health:
    def __init__(self, upstreams: Upstreams, deployments: Iterable[Provider], *, check_interval: float = 0.0,
                 wall: Callable[[], float] = time.time):
        self.upstreams = upstreams
        self.deployments = list(deployments)  # the configured ones, in the order shown
        self.check_interval = check_interval
        self.wall = wall
        self.cooldown = upstreams.settings.cooldown
        self.board: HostBoard | None = None
        self._published = -1
        self._ready: tuple[float, bool] = (-1.0, False)  # (until, answer): a public probe reads the board once a second
        self._next_check = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._checking: threading.Thread | None = None

    # -- the views ---------------------------------------------------------------------------------
    def own_view(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "at": self.wall(), "deployments": self.upstreams.view()}

    def views(self) -> list[dict[str, Any]]:
        own = self.own_view()
        return [own, *(self.board.views(besides=own["pid"]) if self.board is not None else ())]

    def snapshot(self) -> dict[str, Any]:
        views = self.views()
        now = self.wall()
        return {"object": "list", "window_seconds": WINDOW, "workers": len(views),
                "data": [public(merge(p.id, p.spec.id, views, now, self.cooldown)) for p in self.deployments]}

    def ready(self) -> bool:
        until, answer = self._ready
        if time.monotonic() < until:
            return answer
        views = self.views()
        now = self.wall()
        answer = any(usable(merge(p.id, p.spec.id, views, now, self.cooldown), now) for p in self.deployments)
        self._ready = (time.monotonic() + READY_CACHE, answer)
        return answer

    # -- the worker's background work ---------------------------------------------------------------
    def start(self) -> None:
        """In a gunicorn worker (app.lifecycle): publish on the host's board; run the active checks."""
        if self._thread is not None:
            return
        self.board = HostBoard.for_master(os.getppid())
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="provider-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self.board is not None:
            self.board.withdraw(os.getpid())

    def _run(self) -> None:
        self.publish()  # at once: the other workers count this one from its start
        while not self._stop.wait(PUBLISH_INTERVAL):
            try:
                if self.check_interval and self.wall() >= self._next_check and self._may_check():
                    self._next_check = self.wall() + self.check_interval
                    self._check_in_background()
                self.publish()
            except Exception:
                log.exception("provider health: publishing failed")

    def _check_in_background(self) -> None:
        """The checks in a thread of their own (a greenlet under gevent): a slow deployment must not
        hold up publishing; a round still running when the next is due is not doubled."""
        if self._checking is not None and self._checking.is_alive():
            return
        self._checking = threading.Thread(target=self.check_all, name="provider-health-check", daemon=True)
        self._checking.start()

    def _may_check(self) -> bool:
        return self.board is None or self.board.try_checker_lock()

    def publish(self) -> None:
        version = self.upstreams.version
        if self.board is not None and version != self._published:
            self.board.publish(os.getpid(), self.own_view())
            self._published = version

    def check_all(self) -> None:
        """The active check: every deployment's model list, once."""
        for provider in self.deployments:
            if self._stop.is_set():
                return
            started = time.perf_counter()
            try:
                provider.list_models()
            except GatewayError as exc:
                error: str | None = exc.message
            except Exception:
                log.exception("provider health: checking %s failed inside the gateway", provider.id)
                continue
            else:
                error = None
            self.upstreams[provider.id].checked(error is None, (time.perf_counter() - started) * 1000, error)


def merge(deployment: str, kind: str, views: list[dict[str, Any]], now: float, cooldown: float) -> dict[str, Any]:
    """One deployment's health from every worker's view."""
    seen = [view["deployments"][deployment] for view in views
            if isinstance(view.get("deployments"), dict) and deployment in view["deployments"]]
    samples = [sample for one in seen for sample in one.get("samples", ()) if sample[0] >= now - WINDOW]
    latencies = [ms for _, ms, ok in samples if ok]
    failures = sum(1 for *_, ok in samples if not ok)
    circuits = [one.get("circuit", "closed") for one in seen]
    circuit = max(circuits, key=lambda c: _CIRCUIT_ORDER.get(c, 0), default="closed")
    errors = [(one["last_error_at"], one["last_error"]) for one in seen if one.get("last_error_at")]
    last_error_at, last_error = max(errors, key=lambda pair: pair[0], default=(None, None))
    last_ok_at = max((one["last_ok_at"] for one in seen if one.get("last_ok_at")), default=None)
    checks = [one["check"] for one in seen if one.get("check")]
    check = max(checks, key=lambda c: c["at"], default=None)
    outcomes = [(at, ok) for at, ok in ((last_ok_at, True), (last_error_at, False)) if at]
    if check is not None:
        outcomes.append((check["at"], check["ok"]))
    if circuit == "open":
        state = "circuit_open"
    elif outcomes:
        state = "up" if max(outcomes, key=lambda pair: pair[0])[1] else "down"
    else:
        state = "unknown"
    return {
        "id": deployment, "kind": kind, "state": state, "circuit": circuit,
        "circuit_open_workers": circuits.count("open"),
        "last_error": None if last_error is None else {**last_error, "at": _iso(last_error_at)},
        "last_success_at": _iso(last_ok_at),
        "latency_p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "error_rate": round(failures / len(samples), 4) if samples else None,
        "requests": len(samples), "failures": failures,
        "in_flight": sum(one.get("in_flight", 0) for one in seen),
        "last_check": None if check is None else {**check, "at": _iso(check["at"])},
        "_cooldown": cooldown,
        "_failed_at": max([at for at, ok in outcomes if not ok], default=None),
    }


def usable(health: dict[str, Any], now: float) -> bool:
    if health["state"] == "circuit_open":
        return False
    if health["state"] == "down":
        cooldown = health["_cooldown"]
        return health["_failed_at"] is None or now - health["_failed_at"] >= cooldown
    return True


def public(health: dict[str, Any]) -> dict[str, Any]:
    """A merged entry without its internal fields."""
    return {k: v for k, v in health.items() if not k.startswith("_")}


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
