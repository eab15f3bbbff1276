"""The console's pages through the test client: keys (the secret once, escaped names, edits,
revocation), usage and its CSV, traffic and recent errors, with the same numbers as the admin API."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from markupsafe import escape

from app.accounts.feature import EXTENSION_KEY as ACCOUNTS_KEY
from tests.console.conftest import ADMIN, Operator, console_of
from tests.support.fake_provider import json_reply

STATIC_KEY = "static-key-0123456789"


def row(when: datetime, *, status: int = 200, latency: float = 100.0, tokens: int = 10, cost: float = 0.001,
        model: str = "gpt-4o", key_id: str | None = None, error: str | None = None, request_id: str = "r") -> dict:
    return {"time": when, "request_id": request_id, "key_id": key_id, "subject": None, "endpoint": "/v1/chat/completions",
            "provider": "openai", "deployment": "openai", "model": model, "alias": None, "prompt_tokens": tokens // 2,
            "completion_tokens": tokens - tokens // 2, "total_tokens": tokens, "cost_usd": cost, "priced": True,
            "status": status, "latency_ms": latency, "streamed": False, "estimated": False, "error": error}


def write_rows(app, rows: list[dict]) -> None:
    writer = app.extensions[ACCOUNTS_KEY].writer
    for one in rows:
        writer.add(one)
    writer.flush()


def create_key(operator: Operator, **fields: str):
    operator.get("/console/keys")
    return operator.post("/console/keys", {"name": "team-a", **fields})


def test_a_new_keys_secret_is_shown_once(app, signed_in):
    created = create_key(signed_in, models="openai/gpt-4o, openai/gpt-4o-mini", budget_usd="5", rpm="60")
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    page = created.get_data(as_text=True)
    keys = app.test_client().get("/admin/keys", headers=ADMIN).get_json()["data"]
    assert len(keys) == 1 and keys[0]["models"] == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    assert keys[0]["budget_usd"] == 5 and keys[0]["rpm"] == 60
    secret = page.split('id="secret" type="text" readonly value="')[1].split('"')[0]
    assert secret.startswith("sk-gw-") and "shown this once" in page and "data-copy" in page
    assert secret not in signed_in.get("/console/keys").get_data(as_text=True)
    assert secret not in signed_in.get(f"/console/keys/{keys[0]['id']}").get_data(as_text=True)


def test_key_names_are_escaped(signed_in):
    create_key(signed_in, name='<script>alert("x")</script>', owner="<b>ops</b>")
    page = signed_in.get("/console/keys").get_data(as_text=True)
    assert "<script>alert" not in page and "<b>ops</b>" not in page
    assert str(escape('<script>alert("x")</script>')) in page


def test_a_bad_field_is_shown_on_the_form_and_nothing_is_created(app, signed_in):
    refused = create_key(signed_in, rpm="lots")
    assert refused.status_code == 400 and "rpm: Not a valid whole number" in refused.get_data(as_text=True)
    blank = create_key(signed_in, name="  ")
    assert blank.status_code == 400 and "name" in blank.get_data(as_text=True)
    assert app.test_client().get("/admin/keys", headers=ADMIN).get_json()["data"] == []


def test_editing_a_keys_limits_models_and_budget_and_revoking_it(app, signed_in):
    create_key(signed_in, budget_usd="5")
    key_id = app.test_client().get("/admin/keys", headers=ADMIN).get_json()["data"][0]["id"]
    form = signed_in.get(f"/console/keys/{key_id}")
    assert form.status_code == 200 and 'value="5.0"' in form.get_data(as_text=True)
    saved = signed_in.post(f"/console/keys/{key_id}", {"name": "team-b", "models": "openai/gpt-4o\n", "rpm": "7",
                                                       "tpm": "", "budget_usd": "12.5", "budget_period": "day"})
    assert saved.status_code == 302
    key = app.test_client().get(f"/admin/keys/{key_id}", headers=ADMIN).get_json()
    assert (key["name"], key["models"], key["rpm"], key["tpm"], key["budget_usd"], key["budget_period"]) == \
        ("team-b", ["openai/gpt-4o"], 7, None, 12.5, "day")
    assert signed_in.post(f"/console/keys/{key_id}/revoke").status_code == 302
    assert app.test_client().get(f"/admin/keys/{key_id}", headers=ADMIN).get_json()["status"] == "revoked"
    listed = signed_in.get("/console/keys").get_data(as_text=True)
    assert "badge status-revoked" in listed and f"/console/keys/{key_id}/revoke" not in listed
    assert signed_in.post(f"/console/keys/{key_id}", {"name": "again"}).status_code == 400  # revoked: unchanged
    assert signed_in.get("/console/keys/nope").status_code == 404


def test_spend_is_drawn_against_the_budget(app, signed_in):
    create_key(signed_in, budget_usd="0.01", budget_period="total")
    key_id = app.test_client().get("/admin/keys", headers=ADMIN).get_json()["data"][0]["id"]
    write_rows(app, [row(datetime.now(UTC), key_id=key_id, cost=0.004)])
    page = signed_in.get("/console/keys").get_data(as_text=True)
    spent = app.test_client().get(f"/admin/keys/{key_id}", headers=ADMIN).get_json()["spend"]["spent_usd"]
    assert spent == pytest.approx(0.004)
    assert '<meter min="0" max="1"' in page and 'value="0.4"' in page and "$0.0040 of $0.0100" in page


def test_usage_by_day_key_and_model_with_the_admin_apis_numbers_and_csv(app, signed_in):
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    write_rows(app, [row(today, cost=0.5, tokens=100), row(today - timedelta(days=1), cost=0.25, tokens=40,
                                                           model="gpt-4o-mini")])
    first, last = (today - timedelta(days=1)).date().isoformat(), today.date().isoformat()
    for group in ("day", "key", "model"):
        page = signed_in.get("/console/usage", query_string={"from": first, "to": last, "group_by": group})
        assert page.status_code == 200
        assert "$0.7500" in page.get_data(as_text=True) and 'id="usage-data"' in page.get_data(as_text=True)
    assert "gpt-4o-mini" in signed_in.get("/console/usage?group_by=model").get_data(as_text=True)
    download = signed_in.get("/console/usage.csv", query_string={"from": first, "to": last, "group_by": "model"})
    assert download.mimetype == "text/csv" and "attachment" in download.headers["Content-Disposition"]
    until = (today + timedelta(days=1)).date().isoformat()
    api = app.test_client().get("/admin/usage", query_string={"from": first, "to": until, "group_by": "model"},
                                headers={**ADMIN, "Accept": "text/csv"})
    assert download.get_data(as_text=True) == api.get_data(as_text=True)
    assert len(list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))) == 2
    bad = signed_in.get("/console/usage?from=yesterday")
    assert bad.status_code == 400 and "from" in bad.get_data(as_text=True)


def test_traffic_per_minute_with_percentiles_error_rate_and_tokens(app, signed_in):
    now = datetime(2026, 12, 2, 15, 30, 20, tzinfo=UTC)
    console_of(app).clock = lambda: now.timestamp()
    minute = now.replace(second=5)
    latencies = [10.0 * n for n in range(1, 21)]  # 10..200 ms: p50 100, p95 190
    write_rows(app, [row(minute, latency=ms, tokens=5, status=502 if ms > 180 else 200) for ms in latencies]
               + [row(minute - timedelta(minutes=3), tokens=7, model="gpt-4o-mini"),
                  row(now - timedelta(hours=2), tokens=1000)])  # outside the hour
    hour = signed_in.get("/console/api/traffic").get_json()
    assert len(hour["minutes"]) == 60 and hour["minutes"][-1]["minute"] == "2026-12-02T15:30:00Z"
    last = hour["minutes"][-1]
    assert (last["requests"], last["errors"], last["error_rate"], last["p50_ms"], last["p95_ms"], last["tokens"]) == \
        (20, 2, 0.1, 100.0, 190.0, 100)
    assert hour["minutes"][-4]["requests"] == 1 and hour["minutes"][-4]["tokens"] == 7
    assert hour["totals"]["requests"] == 21 and hour["totals"]["tokens"] == 107
    assert [(m["model"], m["requests"]) for m in hour["by_model"]] == [("gpt-4o", 20), ("gpt-4o-mini", 1)]
    only_mini = signed_in.get("/console/api/traffic?model=gpt-4o-mini").get_json()
    assert only_mini["totals"]["requests"] == 1
    api = app.test_client().get("/admin/usage", headers=ADMIN, query_string={
        "from": hour["from"], "to": hour["to"], "group_by": "model"}).get_json()
    assert api["totals"]["requests"] == hour["totals"]["requests"] and api["totals"]["total_tokens"] == 107
    page = signed_in.get("/console/traffic").get_data(as_text=True)
    assert 'data-chart="rpm"' in page and 'id="traffic-data"' in page


def test_providers_page_shows_health_and_the_ledgers_hour(console_app):
    app = console_app({"AUTH_API_KEYS": STATIC_KEY})
    signed_in = Operator(app.test_client())
    signed_in.sign_in()
    write_rows(app, [row(datetime.now(UTC), latency=50.0), row(datetime.now(UTC), status=502, latency=150.0)])
    snapshot = signed_in.get("/console/api/providers").get_json()
    health = app.test_client().get("/health/providers", headers={"Authorization": f"Bearer {STATIC_KEY}"}).get_json()
    assert [{k: v for k, v in d.items() if k != "last_hour"} for d in snapshot["data"]] == health["data"]
    entry = {d["id"]: d for d in snapshot["data"]}["openai"]
    assert entry["state"] == "unknown" and entry["circuit"] == "closed"
    assert entry["last_hour"]["requests"] == 2 and entry["last_hour"]["error_rate"] == 0.5
    page = signed_in.get("/console/providers").get_data(as_text=True)
    assert "<strong>openai</strong>" in page and "50.0%" in page


def test_recent_errors_come_from_failed_calls_with_secrets_redacted(console_app, fake_provider):
    fake_provider.on("POST", "/v1/chat/completions", json_reply(
        {"error": {"message": "Incorrect API key provided: sk-provider-secret-1234 (Bearer sk-provider-secret-1234)"}},
        status=401))
    app = console_app({"OPENAI_API_URL": fake_provider.url + "/v1", "AUTH_API_KEYS": STATIC_KEY})
    client = app.test_client()
    answer = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {STATIC_KEY}",
                                                          "X-Request-ID": "req-failing-1"},
                         json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    answer.get_data()
    answer.close()
    assert answer.status_code == 401
    app.extensions[ACCOUNTS_KEY].writer.flush()
    operator = Operator(app.test_client())
    operator.sign_in()
    errors = operator.get("/console/api/errors").get_json()["data"]
    assert len(errors) == 1
    error = errors[0]
    assert (error["request_id"], error["route"], error["upstream"], error["status"]) == \
        ("req-failing-1", "/v1/chat/completions", "openai/gpt-4o", 401)
    assert error["message"].startswith("provider answered 401: Incorrect API key provided: [REDACTED]")
    assert "sk-provider-secret" not in str(errors)
    page = operator.get("/console/errors").get_data(as_text=True)
    assert "req-failing-1" in page and "sk-provider-secret" not in page


def test_without_accounts_the_keys_usage_and_traffic_pages_say_how_to_turn_them_on(console_app):
    app = console_app({"ACCOUNTS_ENABLE": "false", "AUTH_ENABLE": "false"})
    operator = Operator(app.test_client())
    assert operator.sign_in().status_code == 302
    for path in ("/console/keys", "/console/usage", "/console/traffic", "/console/errors"):
        page = operator.get(path)
        assert page.status_code == 200 and "ACCOUNTS_ENABLE=true" in page.get_data(as_text=True), path
    providers = operator.get("/console/providers")
    assert providers.status_code == 200 and "<strong>openai</strong>" in providers.get_data(as_text=True)
    assert operator.get("/console/api/traffic").status_code == 400
