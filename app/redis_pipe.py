"""One Redis connection per gevent worker for the limit calls of every request, sent together.

    pipe = shared_pipe(storage)         # None outside a gevent worker, or for TLS / Sentinel / Cluster
    reply = pipe.call("EVALSHA", sha, 1, key, amount)
    sent = pipe.send(...); ...; reply = pipe.wait(sent)   # the same, its answer waited for later

Each request on the hot path makes one or two small calls to Redis (its rate-limit windows, its
token charge, a failed-login check). Through redis-py each costs the worker 60-70 us of CPU (pool
checkout, packing in Python, a `can_read` poll, parsing) and costs Redis one read and one write.
Here the calls of concurrent requests share one connection and go out together:

- A call with nothing in flight is written at once (no added latency when the worker is idle).
- Calls made while a batch is out wait in a queue; when the last answer of that batch arrives,
  the queue goes out as the next batch, in one write (group commit). Under load the cost of a
  write, a read and a wake-up is shared by every request of the batch, in the worker and in Redis.
  A batch of posted commands only (below) holds nothing back: nobody waits for its answers, so
  the next call goes out at once (a request does not wait on the charge of the one before it).
- Each caller still waits for its own answer before it goes on, so what a request counts is in
  Redis before the request is served: limits stay exact across workers and hosts.
- `post` is for a write made once the client has its answer (a completion's token charge): it
  takes its place in line like any call, but its caller does not wait for the answer; only an
  error is handed back, to a callback. The worker's later calls go out after it on the same
  connection, so they see it.
- Commands are packed and answers parsed by hiredis (C).

Failures are redis-py's exceptions, so the callers' handling (StorageError, the breaker,
RATE_LIMIT_FAIL_OPEN) is the same on both paths: a refused or dropped connection is
ConnectionError for every call waiting on it, an answer missing for the socket timeout (2 s) is
TimeoutError (the connection is then dropped: later answers could not be matched to their calls),
and a Redis error reply is ResponseError. The next call connects again.

Only where the gevent worker has patched `socket` (gunicorn's gevent worker; not the Flask CLI or
threads of a test process), for `redis://` and `redis+unix://`; elsewhere the callers use redis-py.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
import hiredis
from gevent import socket
from gevent.event import AsyncResult
from gevent.lock import Semaphore
from redis import exceptions as redis_errors
from redis.connection import Connection, UnixDomainSocketConnection

log = logging.getLogger("gateway.ratelimit")

READ_SIZE = 65536
CLIENT_NAME = "inference-gateway-limits"  # CLIENT LIST shows `name=inference-gateway-limits-<worker pid>`
_PIPES: dict[tuple, RedisPipe] = {}


def _socket_is_patched() -> bool:
    from gevent import monkey

    return monkey.is_module_patched("socket")


def shared_pipe(storage: Any) -> RedisPipe | None:
    """The worker's pipe to the Redis of a `limits` RedisStorage (one per address and database),
    or None where it does not apply (no gevent patching; TLS, Sentinel, Cluster: redis-py)."""
    if not _socket_is_patched():
        return None
    pool = storage.get_connection().connection_pool
    kwargs = pool.connection_kwargs
    if pool.connection_class is Connection:
        address: str | tuple = (kwargs.get("host", "localhost"), int(kwargs.get("port", 6379)))
    elif pool.connection_class is UnixDomainSocketConnection:
        address = kwargs["path"]
    else:
        return None
    key = (os.getpid(), address, kwargs.get("db") or 0, kwargs.get("username"), kwargs.get("password"))
    pipe = _PIPES.get(key)
    if pipe is None:
        pipe = _PIPES[key] = RedisPipe(address, db=int(kwargs.get("db") or 0), username=kwargs.get("username"),
                                       password=kwargs.get("password"),
                                       connect_timeout=kwargs.get("socket_connect_timeout") or 2.0,
                                       timeout=kwargs.get("socket_timeout") or 2.0)
    return pipe


class _Posted:
    """The place in line of a command nobody waits for: only an error is handed on (a callback
    that raises is logged: the reader that calls it serves every other call on the connection)."""

    __slots__ = ("failed",)

    def __init__(self, failed: Callable[[redis_errors.RedisError], None]):
        self.failed = failed

    def set(self, reply: Any) -> None:
        if isinstance(reply, hiredis.ReplyError):
            self.set_exception(redis_errors.ResponseError(str(reply)))

    def set_exception(self, error: redis_errors.RedisError) -> None:
        try:
            self.failed(error)
        except Exception:
            log.exception("a posted Redis command's failure could not be reported")


class _Link:
    """One connection: the socket, every call waiting for its answer (in order: those sent, then the
    `queue` of those not yet sent; a queue exists only while a batch somebody waits on is out), and
    how many of those sent, and of those queued, have a caller waiting (posted commands have none)."""

    __slots__ = ("calls_out", "calls_queued", "closed", "queue", "reader", "sock", "waiting")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.waiting: deque[AsyncResult | _Posted] = deque()
        self.queue: list[bytes] = []
        self.calls_out = 0
        self.calls_queued = 0
        self.reader: gevent.Greenlet | None = None
        self.closed = False


class RedisPipe:
    def __init__(self, address: str | tuple[str, int], *, db: int = 0, username: str | None = None,
                 password: str | None = None, connect_timeout: float = 2.0, timeout: float = 2.0):
        self.address = address
        self.db = db
        self.username = username
        self.password = password
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._link: _Link | None = None
        self._connecting = Semaphore()
        self._attempts = 0
        self._failure: redis_errors.RedisError | None = None

    def call(self, *args: Any) -> Any:
        """Send one command with the others of this moment and wait for its answer."""
        return self.wait(self.send(*args))

    def send(self, *args: Any) -> AsyncResult:
        """Send one command with the others of this moment; `wait` gets its answer (in the meantime
        the caller may do other work: the answer is kept until it is asked for)."""
        command = hiredis.pack_command(args)  # first: a value it cannot pack must not leave a waiter unpaired
        waiter = AsyncResult()
        self._enqueue(self._link or self._connect(), command, waiter)
        return waiter

    @staticmethod
    def wait(sent: AsyncResult) -> Any:
        reply = sent.get()
        if isinstance(reply, hiredis.ReplyError):
            raise redis_errors.ResponseError(str(reply))
        return reply

    def post(self, failed: Callable[[redis_errors.RedisError], None], *args: Any) -> None:
        """Send one command with the others of this moment without waiting for its answer: it goes
        out in order with them, and an error answer or a lost connection is handed to `failed`
        (in the pipe's reader, later). A connection that cannot be made raises here, as for `call`."""
        command = hiredis.pack_command(args)
        self._enqueue(self._link or self._connect(), command, _Posted(failed))

    def evalsha_answer(self, sent: AsyncResult, source: str | bytes, keys: list[str], args: list) -> Any:
        """The answer to an EVALSHA `send` made with these keys and args; the script is sent whole
        if Redis has forgotten it (NOSCRIPT)."""
        try:
            return self.wait(sent)
        except redis_errors.ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return self.call("EVAL", source, len(keys), *keys, *args)

    def post_evalsha(self, failed: Callable[[redis_errors.RedisError], None], sha: str, source: str | bytes,
                     keys: list[str], args: list) -> None:
        """An EVALSHA (the script sent whole on NOSCRIPT) without waiting for the answer (see `post`)."""
        def answered(error: redis_errors.RedisError) -> None:
            if isinstance(error, redis_errors.ResponseError) and str(error).startswith("NOSCRIPT"):
                self.post(failed, "EVAL", source, len(keys), *keys, *args)
            else:
                failed(error)

        self.post(answered, "EVALSHA", sha, len(keys), *keys, *args)

    def _enqueue(self, link: _Link, command: bytes, waiter: AsyncResult | _Posted) -> None:
        awaited = type(waiter) is AsyncResult
        link.waiting.append(waiter)
        if link.queue or link.calls_out:  # a batch somebody waits on is out: this goes with the next one
            link.queue.append(command)
            link.calls_queued += awaited
        else:  # nothing out, or only posted commands nobody waits on: no reason to wait for their answers
            link.calls_out += awaited
            self._send(link, command)

    # -- the connection ------------------------------------------------------------------------------
    def _connect(self) -> _Link:
        """A new connection; callers that waited while an attempt failed get its error at once
        (a Redis that drops packets would otherwise cost each of them the connect timeout in turn)."""
        attempts = self._attempts
        with self._connecting:
            if self._link is not None:
                return self._link
            if self._attempts != attempts and self._failure is not None:
                raise self._failure
            self._attempts += 1
            try:
                link = self._link = _Link(self._open_and_greet())
            except redis_errors.RedisError as exc:  # refused, timed out, or refused by AUTH
                self._failure = exc
                raise
            self._failure = None
            link.reader = gevent.spawn(self._read, link)
            return link

    def _open_and_greet(self) -> socket.socket:
        try:
            sock = self._open_socket()
        except OSError as exc:
            raise redis_errors.ConnectionError(f"Error connecting to Redis at {self._where()}: {exc}") from None
        try:
            self._handshake(sock)
        except (OSError, redis_errors.ResponseError) as exc:
            sock.close()
            raise redis_errors.ConnectionError(f"Error connecting to Redis at {self._where()}: {exc}") from None
        return sock

    def _open_socket(self) -> socket.socket:
        try:
            if isinstance(self.address, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.connect_timeout)
                try:
                    sock.connect(self.address)
                except OSError:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection(self.address, timeout=self.connect_timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except TimeoutError:
            raise redis_errors.TimeoutError(f"Timeout connecting to Redis at {self._where()}") from None
        sock.settimeout(self.timeout)
        return sock

    def _handshake(self, sock: socket.socket) -> None:
        commands: list[tuple] = []
        if self.password:
            commands.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            commands.append(("SELECT", self.db))
        commands.append(("CLIENT", "SETNAME", f"{CLIENT_NAME}-{os.getpid()}"))
        sock.sendall(b"".join(hiredis.pack_command(command) for command in commands))
        reader = hiredis.Reader()
        for _ in commands:
            reply = reader.gets()
            while reply is False:
                data = sock.recv(READ_SIZE)
                if not data:
                    raise redis_errors.ConnectionError("Redis closed the connection")
                reader.feed(data)
                reply = reader.gets()
            if isinstance(reply, hiredis.ReplyError):
                raise redis_errors.ResponseError(str(reply))

    def _where(self) -> str:
        return self.address if isinstance(self.address, str) else f"{self.address[0]}:{self.address[1]}"

    def _send(self, link: _Link, data: bytes) -> None:
        try:
            link.sock.sendall(data)
        except OSError as exc:
            self._drop(link, redis_errors.ConnectionError(f"Error writing to Redis at {self._where()}: {exc}"))

    def _read(self, link: _Link) -> None:
        """The link's reader: answers to their callers in order; the next batch out after the last."""
        reader = hiredis.Reader()
        sock, waiting = link.sock, link.waiting
        error: Exception
        try:
            while True:
                try:
                    data = sock.recv(READ_SIZE)
                except TimeoutError:
                    if waiting:
                        error = redis_errors.TimeoutError(f"Timeout reading from Redis at {self._where()}")
                        break
                    continue
                if not data:
                    error = redis_errors.ConnectionError(f"Redis at {self._where()} closed the connection")
                    break
                reader.feed(data)
                reply = reader.gets()
                while reply is not False:
                    waiter = waiting.popleft()
                    if type(waiter) is AsyncResult:
                        link.calls_out -= 1
                    waiter.set(reply)
                    reply = reader.gets()
                if link.queue and len(waiting) == len(link.queue):  # the batch out is answered
                    batch, link.queue = link.queue, []
                    link.calls_out, link.calls_queued = link.calls_queued, 0
                    self._send(link, b"".join(batch))
        except OSError as exc:
            error = redis_errors.ConnectionError(f"Error reading from Redis at {self._where()}: {exc}")
        except BaseException as exc:  # killed (GreenletExit) or a bug: nobody may wait forever
            error = redis_errors.ConnectionError(f"Redis pipe reader stopped: {type(exc).__name__}")
            self._drop(link, error)
            raise
        self._drop(link, error)

    def _drop(self, link: _Link, error: Exception) -> None:
        """Fail every call waiting on the link and close it; the next call connects again."""
        if link.closed:
            return
        link.closed = True
        if self._link is link:
            self._link = None
        waiting, link.waiting = link.waiting, deque()
        link.queue = []
        for waiter in waiting:
            waiter.set_exception(error)
        try:
            link.sock.close()
        except OSError:
            pass
        if link.reader is not None and link.reader is not gevent.getcurrent():
            link.reader.kill(block=False)
