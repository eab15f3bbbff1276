"""Virtual keys through the real gunicorn (2 gevent workers) and the real databases, SQLite and
PostgreSQL: create a key over the admin API, use it, see its ledger rows and spend, hit its budget,
revoke it and see every worker refuse it within 2 s; rpm exact across workers on Redis; SIGTERM
writes every buffered ledger row."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from app.accounts.database import Database
from app.accounts.models import UsageRecord
from tests.accounts.live import CHAT, access_lines, accounts_env, admin, chat, completion_reply, new_key
from tests.support.fake_provider import json_reply, sse_reply

CALL_COST = (1000 * 2.50 + 500 * 10.00) / 1e6  # openai/gpt-4o: 1000 prompt, 500 completion tokens


def wait_for_usage(gateway, key_id: str, rows: int, deadline_s: float = 20) -> dict:
    """The ledger is written in batches (each second): wait for the rows, with a deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        report = admin(gateway, "GET", "/admin/usage", params={"key": key_id}).json()
        if report["totals"]["requests"] >= rows or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def test_create_use_charge_cap_and_revoke_a_key_on_both_workers(live_gateway, fake_provider, database_url):
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion_reply()))
    gateway = live_gateway(accounts_env(database_url, fake_provider), workers=2)

    # -- create, use, see the ledger and the spend ----------------------------------------------
    capped = new_key(gateway, name="capped", budget_usd=0.02, budget_period="day", models=["openai/gpt-4o"])
    key_id, secret = capped["id"], capped["secret"]
    answers = [chat(gateway, secret) for _ in range(3)]  # one after another, each on a new connection
    assert [a.status_code for a in answers] == [200, 200, 200]  # the third crosses 0.02
    refused = chat(gateway, secret)
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded" and "$0.02 daily budget" in error["message"]
    assert f"${3 * CALL_COST:.6f}" in error["message"] and "resets at" in error["message"]
    assert len(fake_provider.requests) == 3  # overshoot: only the request that crossed the budget
    assert chat(gateway, secret, model="openai/gpt-4o-mini").status_code in (403, 429)

    report = wait_for_usage(gateway, key_id, 3)
    rows = report["data"]
    assert len(rows) == 3 and report["totals"]["cost_usd"] == pytest.approx(3 * CALL_COST)
    assert {(r["prompt_tokens"], r["completion_tokens"], r["total_tokens"], r["status"]) for r in rows} == \
        {(1000, 500, 1500, 200)}
    assert {r["request_id"] for r in rows} == {a.headers["X-Request-ID"] for a in answers}
    spend = admin(gateway, "GET", f"/admin/keys/{key_id}").json()["spend"]
    assert spend["spent_usd"] == pytest.approx(3 * CALL_COST) and spend["remaining_usd"] == 0
    lines = access_lines(gateway)
    assert lines[answers[0].headers["X-Request-ID"]]["key"] == "capped"
    assert lines[answers[0].headers["X-Request-ID"]]["usage"]["total_tokens"] == 1500

    # -- a stream is charged when it ends -------------------------------------------------------
    fake_provider.on("POST", "/v1/chat/completions", sse_reply([
        {"choices": [{"index": 0, "delta": {"content": "hi"}}]},
        {"choices": [], "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}}],
        delay=0.05))
    spread = new_key(gateway, name="spread")
    streamed = chat(gateway, spread["secret"], stream=True)
    assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
    stream_row = wait_for_usage(gateway, spread["id"], 1)["data"][0]
    assert stream_row["streamed"] is True and stream_row["cost_usd"] == pytest.approx(CALL_COST)

    # -- revoke: refused by every worker within 2 s ---------------------------------------------
    pids_served: set[int] = set()
    with ThreadPoolExecutor(8) as pool:
        for _ in range(15):  # concurrent calls on new connections until both workers served the key
            ids = [uuid.uuid4().hex for _ in range(16)]
            assert {a.status_code for a in pool.map(lambda i: chat(gateway, spread["secret"], stream=True,
                                                                   request_id=i), ids)} == {200}
            time.sleep(0.2)  # access lines are written as the responses close
            lines = access_lines(gateway)
            pids_served |= {lines[i]["pid"] for i in ids if i in lines}
            if len(pids_served) == 2:
                break
    assert len(pids_served) == 2, "one worker served every request"

    assert admin(gateway, "DELETE", f"/admin/keys/{spread['id']}").json()["status"] == "revoked"
    revoked_at = time.monotonic()
    served_late, refused_by = [], set()
    deadline = revoked_at + 30
    with ThreadPoolExecutor(8) as pool:
        while refused_by != pids_served and time.monotonic() < deadline:
            batch = [(uuid.uuid4().hex, time.monotonic()) for _ in range(16)]
            statuses = list(pool.map(lambda item: chat(gateway, spread["secret"], request_id=item[0]).status_code,
                                     batch))
            time.sleep(0.2)
            lines = access_lines(gateway)
            for (request_id, sent), status in zip(batch, statuses, strict=True):
                if status == 401 and request_id in lines:
                    refused_by.add(lines[request_id]["pid"])
                elif status == 200 and sent > revoked_at + 2.0:
                    served_late.append(request_id)
    assert refused_by == pids_served, "a worker never refused the revoked key"
    assert served_late == [], "the revoked key was served more than 2 s after its revocation"


def test_requests_per_minute_are_exact_across_workers_on_redis(live_gateway, fake_provider, database_url,
                                                               shared_redis):
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion_reply(5, 5)))
    gateway = live_gateway({**accounts_env(database_url, fake_provider),
                            "RATE_LIMIT_STORAGE_URI": shared_redis.url, "RATE_LIMIT_KEY_PREFIX": shared_redis.prefix},
                           workers=2)
    key = new_key(gateway, name="rpm", rpm=20)
    secret = key["secret"]
    statuses: list[int] = []
    pids: set[int] = set()
    with ThreadPoolExecutor(8) as pool:
        while len(pids) < 2 and len(statuses) < 200:  # until both workers have answered the key
            ids = [uuid.uuid4().hex for _ in range(16)]
            statuses += pool.map(lambda i: chat(gateway, secret, request_id=i).status_code, ids)
            time.sleep(0.2)
            lines = access_lines(gateway)
            pids |= {lines[i]["pid"] for i in ids if i in lines}
    assert len(pids) == 2, "one worker served every request"
    # one counter for both workers: 20 a minute, new_key's checks that the key works included
    allowed = 20 - key["probes"]
    assert statuses.count(200) == allowed and statuses.count(429) == len(statuses) - allowed


def test_sigterm_writes_every_buffered_ledger_row(live_gateway, fake_provider, database_url):
    fake_provider.on("POST", "/v1/chat/completions", json_reply(completion_reply(3, 4)))
    # A flush interval longer than the test: rows reach the database only through the SIGTERM flush.
    gateway = live_gateway(accounts_env(database_url, fake_provider, USAGE_FLUSH_INTERVAL="60s"), workers=2)
    secret = new_key(gateway, name="flush")["secret"]
    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(lambda _: chat(gateway, secret).status_code, range(12))) == {200}
    assert admin(gateway, "GET", "/admin/usage").json()["totals"]["requests"] == 0  # still buffered
    assert gateway.stop() == 0
    database = Database.from_url(database_url)
    with database.session() as session:
        written = session.scalar(select(func.count()).select_from(UsageRecord).where(UsageRecord.endpoint == CHAT))
    database.dispose()
    assert written == 12
    assert "usage ledger: flushed at shutdown" in gateway.logs()
