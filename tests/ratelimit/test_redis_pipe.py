"""The worker's shared Redis pipe (app/redis_pipe.py): concurrent calls share one connection, each
gets its own answer, and every failure reaches the callers as redis-py's errors, without a hang.

The pipe is driven directly from greenlets here (gevent sockets; no monkey patching in the test
process), against a redis-server of the test's own; the live test at the end runs the real gateway.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import gevent
import gevent.event
import hiredis
import pytest
import redis
from redis import exceptions as redis_errors

from app.redis_pipe import CLIENT_NAME, RedisPipe
from tests.ratelimit.test_live import fetch, served_by, started


def own_pipe(own_redis, **options) -> RedisPipe:
    return RedisPipe(str(own_redis.socket), **options)


def test_concurrent_calls_each_get_their_own_answer(own_redis):
    pipe = own_pipe(own_redis)

    def caller(n: int) -> list:
        return [pipe.call("INCRBY", f"counter-{n % 7}", n) for _ in range(5)] + [pipe.call("ECHO", f"echo-{n}")]

    results = in_greenlets(caller, range(200))
    assert [answers[-1] for answers in results] == [f"echo-{n}".encode() for n in range(200)]
    server = redis.Redis(unix_socket_path=str(own_redis.socket))
    for residue in range(7):
        assert int(server.get(f"counter-{residue}")) == sum(5 * n for n in range(200) if n % 7 == residue)
    # every count went through one connection, named after the process
    names = [client["name"] for client in server.client_list()]
    assert sum(name.startswith(CLIENT_NAME) for name in names) == 1


def test_an_error_answer_is_a_response_error_for_its_caller_only(own_redis):
    pipe = own_pipe(own_redis)
    pipe.call("SET", "text", "not a number")

    def caller(n: int):
        try:
            return pipe.call("INCR", "text") if n % 3 == 0 else pipe.call("ECHO", str(n))
        except redis_errors.ResponseError as exc:
            return exc

    answers = in_greenlets(caller, range(60))
    for n, answer in enumerate(answers):
        if n % 3 == 0:
            assert isinstance(answer, redis_errors.ResponseError) and "not an integer" in str(answer)
        else:
            assert answer == str(n).encode()
    with pytest.raises(redis_errors.ResponseError, match="NOSCRIPT"):
        pipe.call("EVALSHA", "0" * 40, 0)


def test_a_command_sent_now_and_waited_for_later_keeps_its_own_answer(own_redis):
    """`send` then `wait` (the rate limits' count while the view works): the caller's other calls in
    between, and other callers', take their own answers; a script Redis forgot is sent whole."""
    pipe = own_pipe(own_redis)
    source = "return redis.call('incrby', KEYS[1], ARGV[1])"
    sha = redis.Redis(unix_socket_path=str(own_redis.socket)).script_load(source)

    def caller(n: int) -> tuple:
        sent = pipe.send("INCRBY", f"sent-{n}", n)
        between = pipe.call("ECHO", f"between-{n}")
        return pipe.wait(sent), between

    assert in_greenlets(caller, range(50)) == [(n, f"between-{n}".encode()) for n in range(50)]
    sent = pipe.send("EVALSHA", sha, 1, "script", 5)
    assert pipe.evalsha_answer(sent, source, ["script"], [5]) == 5
    pipe.call("SCRIPT", "FLUSH")
    sent = pipe.send("EVALSHA", sha, 1, "script", 2)  # NOSCRIPT, then sent whole
    assert pipe.evalsha_answer(sent, source, ["script"], [2]) == 7
    pipe.call("SET", "text", "not a number")
    with pytest.raises(redis_errors.ResponseError, match="not an integer"):
        pipe.wait(pipe.send("INCR", "text"))


def test_a_killed_connection_fails_its_calls_and_the_next_call_connects_again(own_redis):
    pipe = own_pipe(own_redis)
    assert pipe.call("PING") == b"PONG"
    server = redis.Redis(unix_socket_path=str(own_redis.socket))
    own_id = pipe.call("CLIENT", "ID")
    assert server.client_kill_filter(_id=own_id) == 1
    # Whether the reader sees the close before the next call is sent or after, that call fails
    # with a ConnectionError (not a hang, not a wrong answer) or, if it reconnected, succeeds.
    try:
        first = pipe.call("PING")
    except redis_errors.ConnectionError:
        first = None
    assert first in (None, b"PONG")
    assert pipe.call("PING") == b"PONG"
    assert pipe.call("CLIENT", "ID") != own_id


def test_a_stopped_redis_is_a_connection_error_for_every_waiting_call(own_redis):
    pipe = own_pipe(own_redis)
    pipe.call("SET", "n", 0)
    own_redis.kill()
    outcomes = in_greenlets(lambda _: _outcome(pipe, "INCR", "n"), range(20))
    assert outcomes == [redis_errors.ConnectionError] * 20


def test_a_redis_that_accepts_and_never_answers_fails_the_call_within_the_timeout():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody reads
    try:
        pipe = RedisPipe(silent.getsockname(), connect_timeout=1.0, timeout=0.3)
        started_at = time.monotonic()
        with pytest.raises(redis_errors.ConnectionError, match="Error connecting"):  # the handshake is not answered
            pipe.call("PING")
        assert time.monotonic() - started_at < 10
    finally:
        silent.close()


def test_a_server_that_stops_answering_mid_run_times_out_every_waiting_call(own_redis):
    pipe = own_pipe(own_redis, timeout=0.3)
    assert pipe.call("PING") == b"PONG"
    own_redis.process.send_signal(19)  # SIGSTOP: the connection stays open, nothing answers
    try:
        started_at = time.monotonic()
        outcomes = in_greenlets(lambda _: _outcome(pipe, "PING"), range(10))
        assert outcomes == [redis_errors.TimeoutError] * 10
        assert time.monotonic() - started_at < 10  # the timeout, not a hang
    finally:
        own_redis.process.send_signal(18)  # SIGCONT
    assert pipe.call("PING") == b"PONG"  # a new connection; the late answers of the old one are not misread


def test_callers_waiting_on_a_connect_that_times_out_fail_with_it_not_one_timeout_after_another():
    """A Redis host that drops packets: 20 requests at once cost one connect timeout, not twenty in a row."""
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    for _ in range(3):  # fill the accept queue: later SYNs are dropped, as by a firewall
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(full.getsockname())
        fillers.append(filler)
    try:
        pipe = RedisPipe(full.getsockname(), connect_timeout=0.5, timeout=0.5)
        started_at = time.monotonic()
        outcomes = in_greenlets(lambda _: _outcome(pipe, "PING"), range(20))
        elapsed = time.monotonic() - started_at
    finally:
        for filler in fillers:
            filler.close()
        full.close()
    assert len(set(outcomes)) == 1 and outcomes[0] in (redis_errors.TimeoutError, redis_errors.ConnectionError)
    assert elapsed < 5  # one after another: 10 s


def test_a_value_that_cannot_be_sent_leaves_the_other_answers_in_place(own_redis):
    pipe = own_pipe(own_redis)
    with pytest.raises(TypeError):
        pipe.call("SET", "key", None)
    assert [pipe.call("ECHO", str(n)) for n in range(3)] == [b"0", b"1", b"2"]


def test_nothing_listening_is_a_connection_error():
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    address = unused.getsockname()
    unused.close()
    with pytest.raises(redis_errors.ConnectionError, match="Error connecting"):
        RedisPipe(address, connect_timeout=1.0).call("PING")


def test_the_database_and_a_wrong_password_are_honoured(own_redis):
    server = redis.Redis(unix_socket_path=str(own_redis.socket), db=3)
    pipe = own_pipe(own_redis, db=3)
    pipe.call("SET", "where", "db3")
    assert server.get("where") == b"db3"
    server.config_set("requirepass", "s3cret-pass")
    try:
        with pytest.raises(redis_errors.ConnectionError) as refused:
            own_pipe(own_redis, password="wrong-pass").call("PING")
        assert "wrong-pass" not in str(refused.value)
        assert own_pipe(own_redis, password="s3cret-pass", db=3).call("GET", "where") == b"db3"
    finally:
        server.execute_command("AUTH", "s3cret-pass")
        server.config_set("requirepass", "")


def test_posted_commands_go_out_in_line_and_only_their_errors_come_back(own_redis):
    """A posted write (the token charge) is not waited for, but the worker's next calls see it,
    and an error answer reaches its callback, not another caller."""
    pipe = own_pipe(own_redis)
    pipe.call("SET", "text", "not a number")
    errors: list[Exception] = []

    def caller(n: int) -> int:
        pipe.post(errors.append, "INCRBY", f"charged-{n}", n + 1)
        if n % 10 == 0:
            pipe.post(errors.append, "INCR", "text")
        return int(pipe.call("GET", f"charged-{n}"))

    assert in_greenlets(caller, range(100)) == [n + 1 for n in range(100)]  # each call saw the post before it
    assert [type(error) for error in errors] == [redis_errors.ResponseError] * 10
    assert all("not an integer" in str(error) for error in errors)


def test_a_posted_script_that_redis_forgot_is_sent_whole(own_redis):
    pipe = own_pipe(own_redis)
    source = "return redis.call('incrby', KEYS[1], ARGV[1])"
    sha = redis.Redis(unix_socket_path=str(own_redis.socket)).script_load(source)
    errors: list[Exception] = []
    pipe.post_evalsha(errors.append, sha, source, ["posted"], [3])
    assert pipe.call("GET", "posted") == b"3"
    pipe.call("SCRIPT", "FLUSH")
    pipe.post_evalsha(errors.append, sha, source, ["posted"], [4])  # NOSCRIPT: sent again as EVAL
    pipe.call("PING")  # answered after the NOSCRIPT, when the EVAL is already in line
    assert pipe.call("GET", "posted") == b"7"
    assert errors == []


def test_a_posted_commands_callback_that_raises_leaves_the_connection_serving(own_redis, caplog):
    pipe = own_pipe(own_redis)
    pipe.call("SET", "text", "not a number")

    def broken(error):
        raise RuntimeError("callback bug")

    pipe.post(broken, "INCR", "text")
    assert in_greenlets(lambda n: pipe.call("ECHO", str(n)), range(20)) == [str(n).encode() for n in range(20)]
    assert "callback bug" in caplog.text


def test_a_posted_command_on_a_redis_that_stops_answering_reports_the_timeout(own_redis):
    pipe = own_pipe(own_redis, timeout=0.3)
    assert pipe.call("PING") == b"PONG"
    reported = gevent.event.AsyncResult()
    own_redis.process.send_signal(19)  # SIGSTOP
    try:
        pipe.post(reported.set, "INCR", "n")
        assert isinstance(reported.get(timeout=10), redis_errors.TimeoutError)
    finally:
        own_redis.process.send_signal(18)  # SIGCONT
    assert pipe.call("PING") == b"PONG"


def test_a_call_is_not_held_back_by_posted_commands_nobody_waits_for():
    """A request's count goes out at once even while the previous request's posted charge is still
    unanswered: a server that answers the posted command only once the call has reached it still
    answers both (held back until the charge's answer, the call would never leave: a timeout)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    seen: list[list] = []

    def server() -> None:
        conn, _ = listener.accept()
        with conn:
            commands = hiredis.Reader()
            while len(seen) < 3:  # CLIENT SETNAME, then the posted SET, then the call's GET
                data = conn.recv(65536)
                if not data:  # the pipe gave up waiting
                    return
                commands.feed(data)
                while (command := commands.gets()) is not False:
                    seen.append(command)
                    if len(seen) == 1:
                        conn.sendall(b"+OK\r\n")  # the handshake
            conn.sendall(b"+OK\r\n$5\r\nvalue\r\n")  # the post's answer, then the call's

    serving = ThreadPoolExecutor(1).submit(server)
    try:
        pipe = RedisPipe(listener.getsockname(), connect_timeout=2.0, timeout=2.0)
        failures: list = []
        pipe.post(failures.append, "SET", "charged", "30")
        assert pipe.call("GET", "charged") == b"value"
        serving.result(timeout=5)
    finally:
        listener.close()
    assert [command[0] for command in seen] == [b"CLIENT", b"SET", b"GET"]
    assert failures == []


def in_greenlets(function, values) -> list:
    """function(value) for each value, all at once in greenlets; the results in the order of the values."""
    greenlets = [gevent.spawn(function, value) for value in values]
    gevent.joinall(greenlets, raise_error=True)
    return [greenlet.get() for greenlet in greenlets]


def _outcome(pipe: RedisPipe, *command) -> object:
    try:
        return pipe.call(*command)
    except redis_errors.RedisError as exc:
        return type(exc)


# -- the real gateway ---------------------------------------------------------------------------------
def test_the_gateway_counts_through_one_connection_per_worker_and_survives_a_script_flush(live_gateway,
                                                                                          shared_redis):
    """Under 64 concurrent requests each worker holds one limit connection to Redis (named after its
    pid), every request is counted exactly, and a Redis that forgot the script is sent it again."""
    gateway = started(live_gateway(shared_redis.env(RATE_LIMIT_DEFAULT="150/minute",
                                                    RATE_LIMIT_TOKENS_PER_MINUTE="100000"), workers=2), 2)
    with ThreadPoolExecutor(max_workers=64) as pool:
        statuses = [r.status_code for r in pool.map(lambda _: fetch(gateway.url), range(120))]
    assert statuses == [200] * 120
    deadline = time.monotonic() + 10
    while sum(len(answers) for answers in served_by(gateway).values()) < 120:  # the access lines come through
        assert time.monotonic() < deadline, gateway.logs()
        time.sleep(0.05)
    server = redis.Redis.from_url(shared_redis.url)
    names = [client["name"] for client in server.client_list()]
    for pid in served_by(gateway):
        assert names.count(f"{CLIENT_NAME}-{pid}") == 1

    server.script_flush()
    after_flush = fetch(gateway.url)
    assert after_flush.status_code == 200
    assert after_flush.headers["X-RateLimit-Remaining"] == str(150 - 121)
