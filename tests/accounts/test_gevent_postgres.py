"""PostgreSQL through pg8000 cooperates with gevent: while one request waits on a slow query, the
same gevent worker serves the others.

The slow query is real: the test holds an exclusive lock on the ledger table in its own
transaction, so the gateway's `GET /admin/usage` waits inside PostgreSQL (as it would behind
`pg_sleep` or a long migration) until the test lets go.
"""

from __future__ import annotations

import threading
import time

import pg8000.native
import requests
from sqlalchemy.engine import make_url

from tests.accounts.conftest import POSTGRES
from tests.accounts.live import accounts_env, admin, chat, completion_reply, new_key
from tests.support.fake_provider import json_reply


def test_a_slow_query_does_not_stall_the_other_requests_of_its_worker(live_gateway, fake_provider, postgres_url):
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion_reply()))
    gateway = live_gateway(accounts_env(postgres_url, fake_provider), workers=1)  # one worker: one event loop
    secret = new_key(gateway, name="busy")["secret"]

    blocker = pg8000.native.Connection(database=make_url(postgres_url).database, timeout=30, **POSTGRES)
    blocker.run("BEGIN")
    blocker.run("LOCK TABLE usage_ledger IN ACCESS EXCLUSIVE MODE")
    slow: dict = {}

    def report() -> None:
        slow["response"] = admin(gateway, "GET", "/admin/usage")
        slow["done"] = time.monotonic()

    reader = threading.Thread(target=report)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while not blocker.run("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'usage_ledger'::regclass")[0][0]:
            assert time.monotonic() < deadline, "the gateway's query never reached the lock"
            time.sleep(0.05)
        # The worker is waiting on PostgreSQL for /admin/usage: it still answers everything else.
        for _ in range(10):
            assert chat(gateway, secret).status_code == 200
            assert requests.get(gateway.url + "/health", timeout=10).status_code == 200
        assert "response" not in slow  # ...while the slow query is still waiting
        finished_others = time.monotonic()
    finally:
        blocker.run("ROLLBACK")
        blocker.close()
    reader.join(30)
    assert slow["response"].status_code == 200
    assert slow["done"] >= finished_others
    assert slow["response"].json()["totals"]["requests"] >= 0
