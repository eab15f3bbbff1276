"""The gateway's gunicorn worker: gunicorn's gevent worker plus the server edge (see __init__).

Every hook below is one gunicorn calls; the worker keeps one `_Connection` per connection
greenlet to know where that connection is:

    handle          a new connection: its first request must be read by SERVER_READ_TIMEOUT
    timeout_ctx     bounds reading a request head: an idle keep-alive connection waits at most
                    SERVER_IDLE_TIMEOUT for a first byte (then closes, silently), a request then
                    has SERVER_READ_TIMEOUT from that byte (else 408)
    handle_request  reads the body within the same deadline (request_body), then waits for one
                    of WORKER_CONNECTIONS serving slots and runs the app
    handle_error    answers gunicorn's parse errors and the edge's own as JSON (refusals)
    handle_exit     SIGTERM: closes idle connections now; SERVER_WRITE_TIMEOUT later, ends the
                    grace period and raises ServerShuttingDown in whatever still runs

gevent's pool (gunicorn sizes it from `worker_connections`) bounds connections, not requests:
it is CONNECTIONS_PER_SLOT times WORKER_CONNECTIONS, so clients that are slow to send their
request, or idle between requests, cannot take the slots of clients whose request is complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gevent
from gevent import select
from gevent.lock import BoundedSemaphore
from gevent.socket import wait_read
from gunicorn.workers.ggevent import GeventWorker

from app.config import Settings
from app.server import refusals
from app.server.request_body import buffer_body, release

CONNECTIONS_PER_SLOT = 4
STOP_CHECK_INTERVAL = 0.5
# At shutdown, how long a kept-alive connection may take to send the request it may already be
# sending; gunicorn's own gevent worker kept idle connections for the whole grace period.
STOP_DRAIN = 1.0  # after the grace period, how often to end what is still running

IDLE, READING, SERVING, CLOSING = "idle", "reading", "serving", "closing"


@dataclass
class _Connection:
    socket: Any
    deadline: float  # when the request being read must be complete
    phase: str = READING
    served: int = 0
    buffered: bool = False  # the client already sent (part of) its next request


class GatewayGeventWorker(GeventWorker):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        settings = Settings.from_environ()  # checked by gunicorn.conf.py in this same master
        self.read_timeout = float(settings.server_read_timeout)
        self.idle_timeout = float(settings.server_idle_timeout)
        self.grace_period = float(settings.server_write_timeout)
        self.max_body = int(settings.server_max_request_body_size)
        self.serving_slots = settings.worker_connections
        self.worker_connections = settings.worker_connections * CONNECTIONS_PER_SLOT  # gevent's pool size
        self._connections: dict[Any, _Connection] = {}
        self._stopping: Any = None
        self._serving: Any = None

    def run(self) -> None:
        self._serving = BoundedSemaphore(self.serving_slots)  # after the fork, in the worker's own hub
        super().run()

    # -- a connection ------------------------------------------------------------------------
    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        current = gevent.getcurrent()
        self._connections[current] = _Connection(client, time.monotonic() + self.read_timeout)
        try:
            super().handle(listener, client, addr)
        finally:
            del self._connections[current]

    def timeout_ctx(self) -> _ReadingHead:
        return _ReadingHead(self, self._connections[gevent.getcurrent()])

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> bool:
        conn = self._connections[gevent.getcurrent()]
        with _Deadline(conn.deadline, self.read_timeout):
            buffer_body(req, sock, limit=self.max_body)
        conn.phase = SERVING
        try:
            with self._serving:
                return super().handle_request(listener_name, req, sock, addr)
        finally:
            conn.phase = READING
            conn.served += 1
            release(req)
            pending = req.unreader.take_buffered()
            req.unreader.unread(pending)
            conn.buffered = bool(pending)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        error = refusals.refusal_for(exc)
        if error is None:
            return
        conn = self._connections.get(gevent.getcurrent())
        if conn is not None:
            conn.phase = CLOSING
        peer = addr[0] if addr else "-"
        ended = error.status in (408, 503)  # out of time: the client's or the worker's
        if error.status == 500:
            self.log.error("Failed to handle a request from %s", peer, exc_info=exc)
        elif ended:
            self.log.info("Ended a request from %s: %s", peer, error.message)
        else:
            self.log.warning("Refused a request from %s: %s %s", peer, error.status, error.message)
        from app.access_log import log_line, request_id_from  # not in the master: werkzeug before gevent's patch

        # the client's request id when its head was read; an access line like any answer's
        sent_id = next((value for name, value in getattr(req, "headers", ()) if name == "X-REQUEST-ID"), None)
        request_id = request_id_from(sent_id)
        log_line(getattr(req, "method", None), getattr(req, "path", None), error.status, request_id=request_id,
                 started=time.perf_counter(), remote_addr=peer, refused=True)
        refusals.send(client, error, request_id=request_id, linger=not ended)

    # -- shutdown ----------------------------------------------------------------------------
    def handle_exit(self, sig: Any, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self._begin_stopping()

    def notify(self) -> None:
        super().notify()
        if not self.alive:  # stopping for another reason than SIGTERM (max_requests...)
            self._begin_stopping()

    def _begin_stopping(self) -> None:
        if self._stopping is None:
            self._stopping = gevent.spawn(self._grace_period)

    def _grace_period(self) -> None:
        from app.server.shutdown import SHUTDOWN

        ends = time.monotonic() + self.grace_period
        # Idle keep-alive connections get STOP_DRAIN to send a request they may be sending right
        # now (served with `Connection: close`); then those still idle are closed.
        gevent.sleep(min(STOP_DRAIN, self.grace_period))
        for greenlet, conn in list(self._connections.items()):
            if conn.phase == IDLE:
                greenlet.kill(block=False)  # waiting for a request that would not be served
        gevent.sleep(max(0.0, ends - time.monotonic()))
        SHUTDOWN.end_grace_period(self.grace_period)
        while self._connections:
            for greenlet, conn in list(self._connections.items()):
                greenlet.kill(gevent.GreenletExit if conn.phase == CLOSING else SHUTDOWN.error(), block=False)
            gevent.sleep(STOP_CHECK_INTERVAL)


class _Deadline:
    """Bounds a block by the time a request must be complete; past it, RequestTimeout (408)."""

    def __init__(self, at: float, read_timeout: float):
        self.timer = gevent.Timeout(max(at - time.monotonic(), 0.001))
        self.read_timeout = read_timeout

    def __enter__(self) -> None:
        self.timer.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.timer.close()
        if exc is self.timer:
            from app.errors import RequestTimeout

            raise RequestTimeout(f"The request was not received completely within {self.read_timeout:g}s "
                                 "(SERVER_READ_TIMEOUT).") from None


class _ReadingHead:
    """gunicorn's `timeout_ctx`: wraps its reading of one request head (`next(parser)`)."""

    def __init__(self, worker: GatewayGeventWorker, conn: _Connection):
        self.worker = worker
        self.conn = conn
        self.deadline: _Deadline | None = None

    def __enter__(self) -> None:
        conn = self.conn
        if not self.worker.alive and conn.served and not conn.buffered:
            # Stopping: the answer just sent may not have said `Connection: close` (a stream that
            # began before the stop), so its client may be sending the next request right now.
            # Wait STOP_DRAIN for one (served, with `Connection: close`), else close.
            conn.phase = IDLE
            try:
                _wait_for_bytes(conn.socket, STOP_DRAIN)
            finally:
                conn.phase = READING
            conn.deadline = time.monotonic() + self.worker.read_timeout
        elif conn.served:
            if not conn.buffered:
                conn.phase = IDLE
                try:
                    _wait_for_bytes(conn.socket, self.worker.idle_timeout)
                finally:
                    conn.phase = READING
            conn.deadline = time.monotonic() + self.worker.read_timeout
        else:  # a new connection: its first request is due by the deadline set when it opened
            _wait_for_bytes(conn.socket, conn.deadline - time.monotonic())
        self.deadline = _Deadline(conn.deadline, self.worker.read_timeout)
        self.deadline.__enter__()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.deadline is not None:
            self.deadline.__exit__(exc_type, exc, tb)


def _wait_for_bytes(sock: Any, seconds: float) -> None:
    """Return when `sock` has bytes to read; close the connection quietly (StopIteration, which
    gunicorn takes as "close") when none come in `seconds` or the worker stops waiting."""
    pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted are not on the socket
    if pending is not None and pending():
        return
    try:
        wait_read(sock.fileno(), timeout=max(seconds, 0.0), timeout_exc=StopIteration)
    except gevent.GreenletExit:  # the worker is stopping: close, unless a request just arrived
        if not _readable_now(sock):
            raise StopIteration from None


def _readable_now(sock: Any) -> bool:
    """True when the client has sent something (or closed) that has not been read yet.

    At shutdown a keep-alive client may have sent its next request a moment before the worker
    decided to close: that request is served (gunicorn marks the answer `Connection: close`),
    never dropped unanswered.
    """
    pending = getattr(sock, "pending", None)
    if pending is not None and pending():
        return True
    readable, _, _ = select.select([sock.fileno()], [], [], 0)
    return bool(readable)
