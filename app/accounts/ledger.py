"""The usage ledger's writer: rows wait in a bounded buffer and are written in batches, off the
request path, by one background thread (a greenlet under gevent) per worker process.

    writer.add(row, spend_deltas)  called as a response closes; never blocks, never raises
    writer.flush()                 write everything now (SIGTERM: gunicorn's worker_exit hook calls
                                   flush_all(), so a graceful stop or restart loses no row)

Every USAGE_FLUSH_INTERVAL (1 s) the thread writes up to BATCH_ROWS rows, and the spend deltas that
came with them, in one transaction. When the database fails, the batch goes back to the buffer
and is tried again on the next tick; requests never notice. An error line is logged at most
every 10 s with the counts. The buffer holds at most USAGE_BUFFER_ROWS rows (10,000): past that
the oldest rows are dropped and counted (`dropped`).

What a `kill -9` of a worker loses: the rows in its buffer, that is the calls that ended in the
last USAGE_FLUSH_INTERVAL (plus a batch being written, whose transaction then rolls back), or
up to USAGE_BUFFER_ROWS rows if the database was already failing. Budgets lose nothing on Redis
(charged there as each call ends) and in the database counter (charged directly).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import insert

from app.accounts.database import DATABASE_ERRORS, Database
from app.accounts.key_limits import Alarm
from app.accounts.models import UsageRecord
from app.accounts.spend import SpendDelta, add_to_row

log = logging.getLogger("gateway.accounts")

BATCH_ROWS = 500


class LedgerWriter:
    def __init__(self, database: Database, *, interval: float = 1.0, max_rows: int = 10_000,
                 batch_rows: int = BATCH_ROWS, on_written: Callable[[int], None] | None = None):
        self.database = database
        self.interval = interval
        self.max_rows = max_rows
        self.batch_rows = batch_rows
        self.on_written = on_written
        self.written = 0
        self.failures = 0
        self.dropped = 0
        self._buffer: deque[tuple[dict[str, Any], Sequence[SpendDelta]]] = deque()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._alarm = Alarm()

    def __len__(self) -> int:
        return len(self._buffer)

    def add(self, row: dict[str, Any], spend: Sequence[SpendDelta] = ()) -> None:
        self._buffer.append((row, spend))
        self._trim()
        if self._thread is None:
            self.start()

    def _trim(self) -> None:
        while len(self._buffer) > self.max_rows:
            self._buffer.popleft()
            self.dropped += 1

    # -- writing -------------------------------------------------------------------------------
    def write_batch(self) -> int:
        """Write up to batch_rows rows; the number written. On failure the rows go back and it raises."""
        with self._write_lock:
            batch = []
            while self._buffer and len(batch) < self.batch_rows:
                batch.append(self._buffer.popleft())
            if not batch:
                return 0
            try:
                deltas: dict[tuple, SpendDelta] = {}
                for _, row_deltas in batch:
                    for delta in row_deltas:
                        key = (delta.key_id, delta.period, delta.period_start)
                        before = deltas.get(key)
                        deltas[key] = delta if before is None else SpendDelta(*key, before.usd + delta.usd)
                with self.database.session() as session:
                    session.execute(insert(UsageRecord), [row for row, _ in batch])
                    for delta in deltas.values():
                        add_to_row(session, delta)
            except BaseException:
                self._buffer.extendleft(reversed(batch))
                self._trim()
                raise
        self.written += len(batch)
        if self.on_written is not None:
            self.on_written(len(batch))
        return len(batch)

    def flush(self) -> None:
        """Write until the buffer is empty (raises when the database fails)."""
        while self.write_batch():
            pass

    def tick(self) -> None:
        try:
            self.flush()
        except DATABASE_ERRORS as exc:
            self.failures += 1
            self._alarm.ring(f"usage ledger: {len(self._buffer)} rows wait for the database "
                             f"({self.failures} failed writes, {self.dropped} rows dropped so far)", exc)

    # -- the thread ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="usage-ledger-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def close(self) -> None:
        """Stop the thread and write what is left (a last try; what still fails is logged as lost)."""
        self._stop.set()
        try:
            self.flush()
        except DATABASE_ERRORS as exc:
            log.error("usage ledger: %d rows lost at shutdown, the database failed (%s: %s)", len(self._buffer),
                      type(exc).__name__, " ".join(str(exc).split())[:200])
        else:
            if self.written or self.dropped:
                log.info("usage ledger: flushed at shutdown (%d rows written by this worker, %d dropped)",
                         self.written, self.dropped)
