"""An overall bound on blocking network work: `with Deadline(seconds, message): ...`.

It bounds what urllib3's timeouts cannot: they limit each socket operation, never their sum,
so a server that sends its response headers one byte a second is never cut by a 30 s read
timeout. `Deadline` bounds the whole block instead (connect + send + response headers for
CLIENT_RESPONSE_HEADER_TIMEOUT and MCP_RESPONSE_HEADER_TIMEOUT; a whole MCP exchange for
MCP_CLIENT_TIMEOUT) and raises `UpstreamTimeout(message)` when it runs out, whatever error the
cut-off caused inside. How it cuts depends on where it runs, checked on entry:

- gevent worker (socket patched): a `gevent.Timeout` in the calling greenlet. It interrupts
  whatever the greenlet waits for, name resolution included, and urllib3 discards the
  connection it was using, as after any failure. Costs one timer on the event loop.
- plain threads (the Flask test client, `flask run`): a timer thread that shuts the socket
  down under the blocked call, which then fails at once. Connections from
  `app.upstream.sessions` report the socket they use (`watch_connection`, called when they
  connect and when they send). Name resolution is not interrupted there; each connection
  attempt is still bounded by the connect timeout.

urllib3 has no overall deadline of its own (its `Timeout(total=...)` only shortens the read
timeout of each operation), hence this module.
"""

from __future__ import annotations

import socket
import sys
import threading
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Self

from app.errors import UpstreamTimeout


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


class _Watch:
    """Plain-thread mode: the connections a deadline (and every deadline around it) may cut."""

    __slots__ = ("_connections", "_lock", "expired", "parent")

    def __init__(self, parent: _Watch | None):
        self.parent = parent
        self.expired = False
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    def attach(self, connection: Any) -> None:
        watch: _Watch | None = self
        while watch is not None:
            with watch._lock:
                if watch.expired:
                    raise TimeoutError("deadline expired")
                if connection not in watch._connections:
                    watch._connections.append(connection)
            watch = watch.parent

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            connections = list(self._connections)
        for connection in connections:
            sock = getattr(connection, "sock", None)
            if sock is not None:
                try:
                    # the plain socket's shutdown, also under TLS: it wakes a reader blocked in
                    # another thread, where closing would not
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass


_watching: ContextVar[_Watch | None] = ContextVar("upstream_deadline", default=None)


def watch_connection(connection: Any) -> None:
    """Called by a connection that is about to block: the deadline in force may cut its socket."""
    watch = _watching.get()
    if watch is not None:
        watch.attach(connection)


class Deadline:
    """`with Deadline(seconds, message):` raises UpstreamTimeout(message) once `seconds` have
    passed inside the block. None or 0 means no deadline. Deadlines nest."""

    __slots__ = ("_timer", "_token", "_watch", "message", "seconds")

    def __init__(self, seconds: float | None, message: str):
        self.seconds = seconds
        self.message = message
        self._timer: Any = None
        self._watch: _Watch | None = None
        self._token: Token | None = None

    def __enter__(self) -> Self:
        if not self.seconds:
            return self
        if _gevent_patched():
            from gevent import Timeout

            self._timer = Timeout(self.seconds)
            self._timer.start()
        else:
            self._watch = _Watch(_watching.get())
            self._token = _watching.set(self._watch)
            self._timer = threading.Timer(self.seconds, self._watch.expire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        timer = self._timer
        if timer is None:
            return False
        self._timer = None
        if self._watch is None:  # gevent
            timer.close()
            if exc is timer:
                raise UpstreamTimeout(self.message) from None
            return False
        timer.cancel()
        if self._token is not None:
            _watching.reset(self._token)
        if self._watch.expired and isinstance(exc, Exception):
            raise UpstreamTimeout(self.message) from None
        return False

    @property
    def expired(self) -> bool:
        """Plain-thread mode only: whether the timer fired (gevent mode raises instead)."""
        return self._watch is not None and self._watch.expired
