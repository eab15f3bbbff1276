"""The value behind every metric in a worker: prometheus-client's multiprocess files, written for less.

prometheus-client's own multiprocess value (`MultiProcessValue`) takes a lock and calls
`os.getpid()` on every increment, to notice a fork. In a gevent worker that lock is gevent's
(threading is monkey-patched), which costs a greenlet-aware acquire each time; a request makes
five to eight increments (the histograms' sums and buckets, the response and token counters).
`WorkerValue` writes the same files the same way, so the master's `MultiProcessCollector` reads
and sums them as before, but:

- its lock is the operating system's (the unpatched one): nothing between acquire and release can
  yield to another greenlet, and real threads, where there are any, are still kept apart;
- a fork is noticed once, by `os.register_at_fork`, not asked about on every increment: the child
  opens its own files (named by its pid) and starts from their values, as prometheus-client's does.

`install()` puts it in place of prometheus-client's before any metric exists (app/telemetry), only
in multiprocess mode (PROMETHEUS_MULTIPROC_DIR set: gunicorn.conf.py sets it before any import).
Counters and histograms only use `inc`; `set` (gauges) is kept for completeness.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict, mmap_key

DIRECTORY_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _os_lock() -> Any:
    """A lock of the operating system's threads, also where gevent has patched `threading`."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover -- gevent is a dependency; kept for tools run without it
        return threading.Lock()
    return monkey.get_original("_thread", "allocate_lock")()


_lock = _os_lock()
_files: dict[str, MmapedDict] = {}  # this process's open files, by prefix (counter, histogram, gauge_<mode>)
_values: weakref.WeakSet[WorkerValue] = weakref.WeakSet()  # to open again in a forked child


class WorkerValue:
    """One metric sample's value in this process's multiprocess file (prometheus-client's `ValueClass`)."""

    _multiprocess = True
    __slots__ = ("__weakref__", "_file", "_key", "_params", "_timestamp", "_value")

    def __init__(self, typ: str, metric_name: str, name: str, labelnames: Any, labelvalues: Any, help_text: str,
                 multiprocess_mode: str = "", **_: Any):
        self._params = typ, metric_name, name, labelnames, labelvalues, help_text, multiprocess_mode
        with _lock:
            self._open()
            _values.add(self)

    def _open(self) -> None:
        typ, metric_name, name, labelnames, labelvalues, help_text, multiprocess_mode = self._params
        prefix = f"{typ}_{multiprocess_mode}" if typ == "gauge" else typ
        file = _files.get(prefix)
        if file is None:
            file = _files[prefix] = MmapedDict(os.path.join(os.environ[DIRECTORY_ENV], f"{prefix}_{os.getpid()}.db"))
        self._file = file
        self._key = mmap_key(metric_name, name, labelnames, labelvalues, help_text)
        self._value, self._timestamp = file.read_value(self._key)

    def inc(self, amount: float) -> None:
        with _lock:
            self._value += amount
            self._timestamp = 0.0
            self._file.write_value(self._key, self._value, 0.0)

    def set(self, value: float, timestamp: float | None = None) -> None:
        with _lock:
            self._value = value
            self._timestamp = timestamp or 0.0
            self._file.write_value(self._key, self._value, self._timestamp)

    def set_exemplar(self, exemplar: Any) -> None:  # not kept in multiprocess mode, as in prometheus-client
        return

    def get(self) -> float:
        with _lock:
            return self._value

    def get_exemplar(self) -> None:
        return None


def _forked() -> None:
    """In a forked child: the parent's files are the parent's; this process writes its own."""
    global _lock
    _lock = _os_lock()  # a lock held by another thread at the fork would stay held in the child
    for file in _files.values():
        file.close()
    _files.clear()
    for value in list(_values):
        value._open()


_fork_hook = False


def install() -> bool:
    """Make `WorkerValue` prometheus-client's value class in multiprocess mode; without a directory
    (an app made later in the same process, as tests do), prometheus-client's single-process one."""
    global _fork_hook
    if not os.environ.get(DIRECTORY_ENV):
        if values.ValueClass is WorkerValue:
            values.ValueClass = values.MutexValue
        return False
    values.ValueClass = WorkerValue
    if not _fork_hook:
        os.register_at_fork(after_in_child=_forked)
        _fork_hook = True
    return True
