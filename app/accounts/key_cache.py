"""Each worker's copy of the live virtual keys, so a request never waits on the database.

    cache.identify(secret)   -> KeyRecord or None: one SHA-256 and two dict lookups
    cache.record(key_id)     -> KeyRecord or None

How a change reaches every worker and host within 2 s (MAX_AGE):

- A background thread (a greenlet under gunicorn's gevent worker) asks the database once a second
  (INTERVAL) for `accounts_state.keys_version`, one tiny row every key write raises, and reloads
  the live keys only when it moved. Each snapshot remembers when its query started.
- A lookup first checks the snapshot's age. Older than MAX_AGE (the thread is late or failing),
  the lookup refreshes synchronously, once for all waiting requests; if the database cannot
  answer, virtual keys are refused with 503 (and not asked again for a second) rather than served
  from a copy that may still hold a revoked key. Static keys and OIDC do not depend on it.
- A secret the copy does not know makes it look again when the copy is older than 0.1 s, so a
  key created a moment ago works at once (and wrong keys cost at most 10 tiny queries a second).
- Expiry needs no refresh: `expires_at` is compared with the clock on every request.

The thread starts with the first lookup, so building the app (the CLI does) queries nothing.
Clocks are injectable for tests.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable

from app.accounts.database import DATABASE_ERRORS
from app.accounts.store import KeyRecord, KeyStore
from app.errors import ServiceUnavailable

log = logging.getLogger("gateway.accounts")

INTERVAL = 1.0
MAX_AGE = 2.0
RETRY_AFTER_FAILURE = 1.0
MISS_REFRESH_AFTER = 0.1  # an unknown `sk-gw-` key looks again when the copy is older than this


class KeyStoreUnavailable(ServiceUnavailable):
    code = "key_store_unavailable"

    def __init__(self) -> None:
        super().__init__("Virtual keys cannot be checked right now (their database is unreachable); "
                         "try again shortly.", headers={"Retry-After": "1"})


class KeyCache:
    def __init__(self, store: KeyStore, *, interval: float = INTERVAL, max_age: float = MAX_AGE,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.interval = interval
        self.max_age = max_age
        self.clock = clock
        self.version: int | None = None
        self.loaded_at = -math.inf  # when the query behind the current snapshot started
        self.failed_at = -math.inf
        self._by_id: dict[str, KeyRecord] = {}
        self._by_digest: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0

    # -- lookups (the request path) ------------------------------------------------------------
    def identify(self, secret: str) -> KeyRecord | None:
        self._fresh()
        digest = hashlib.sha256(secret.encode()).hexdigest()
        key_id = self._by_digest.get(digest)
        if key_id is None and self.clock() - self.loaded_at > MISS_REFRESH_AFTER:
            # Perhaps a key made a moment ago: look again now rather than at the next tick. A flood
            # of wrong keys costs at most one version query per MISS_REFRESH_AFTER per worker.
            self._fresh(max_age=MISS_REFRESH_AFTER)
            key_id = self._by_digest.get(digest)
        return self._by_id.get(key_id) if key_id is not None else None

    def record(self, key_id: str) -> KeyRecord | None:
        self._fresh()
        return self._by_id.get(key_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def _fresh(self, max_age: float | None = None) -> None:
        max_age = self.max_age if max_age is None else max_age
        if self.clock() - self.loaded_at <= max_age:
            return
        if self._thread is None:
            self.start()
        with self._lock:
            if self.clock() - self.loaded_at <= max_age:
                return  # another request refreshed it while this one waited
            if self.clock() - self.failed_at < RETRY_AFTER_FAILURE:
                raise KeyStoreUnavailable()
            try:
                self._refresh()
            except DATABASE_ERRORS as exc:
                self.failed_at = self.clock()
                log.error("virtual keys refused: their database cannot be read (%s: %s)", type(exc).__name__,
                          " ".join(str(exc).split())[:200])
                raise KeyStoreUnavailable() from None

    # -- refreshing ----------------------------------------------------------------------------
    def refresh(self) -> None:
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        started = self.clock()
        version = self.store.version()
        if version != self.version:
            version, by_id, by_digest = self.store.active_records()
            self._by_id, self._by_digest, self.version = by_id, by_digest, version
        self.loaded_at = started

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="virtual-key-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
                if self._failures:
                    log.info("virtual keys: their database answers again after %d failed refreshes", self._failures)
                    self._failures = 0
            except DATABASE_ERRORS as exc:
                self._failures += 1
                if self._failures in (1, 10) or self._failures % 60 == 0:
                    log.error("virtual keys: refresh %d failed (%s: %s)", self._failures, type(exc).__name__,
                              " ".join(str(exc).split())[:200])
