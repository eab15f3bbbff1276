"""The token budget (charged from `completion_usage`) and what an unreachable storage does."""

from __future__ import annotations

import json

from flask import Blueprint, Flask, Response, current_app, request, stream_with_context

from app.signals import SUBJECT_KEY, completion_usage
from tests.support.live_gateway import free_port


def app_with_completions(make_app, **settings: str) -> Flask:
    """Test views that report usage the way completions do: after a response, or at a stream's end."""
    app = make_app({"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "100/minute",
                    "RATE_LIMIT_TOKENS_PER_MINUTE": "100", **settings})

    def report(total: int, stream: bool) -> None:
        completion_usage.send(current_app._get_current_object(), provider="openai", model="gpt-4o",
                              usage={"prompt_tokens": 1, "completion_tokens": total - 1, "total_tokens": total},
                              subject=request.environ.get(SUBJECT_KEY), stream=stream)

    bp = Blueprint("completions", __name__)

    @bp.before_request
    def authenticate() -> None:  # as the auth feature does, before the limit check
        if request.headers.get("X-Test-Subject"):
            request.environ[SUBJECT_KEY] = request.headers["X-Test-Subject"]

    @bp.post("/complete/<int:total>")
    def complete(total: int) -> dict:
        report(total, stream=False)
        return {"ok": True}

    @bp.post("/stream/<int:total>")
    def stream(total: int) -> Response:
        def events():
            yield "data: {}\n\n"
            report(total, stream=True)
            yield "data: [DONE]\n\n"
        return Response(stream_with_context(events()), mimetype="text/event-stream")

    @bp.post("/late-stream/<int:total>")
    def late_stream(total: int) -> Response:
        """Reports usage after the request context is gone, as the chat relay does for streams."""
        app = current_app._get_current_object()

        def events():
            yield "data: {}\n\n"
            with app.app_context():
                completion_usage.send(app, provider="openai", model="gpt-4o", subject=None, stream=True,
                                      usage={"prompt_tokens": 1, "completion_tokens": total - 1, "total_tokens": total})
            yield "data: [DONE]\n\n"
        return Response(events(), mimetype="text/event-stream")

    app.register_blueprint(bp)
    return app


def test_tokens_are_charged_after_the_fact_and_refuse_the_next_request(make_app):
    client = app_with_completions(make_app).test_client()
    assert client.post("/complete/60").status_code == 200  # 60 used
    assert client.post("/complete/60").status_code == 200  # 120 used: over, but known only now
    refused = client.post("/complete/1")
    assert refused.status_code == 429
    error = refused.json["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "token_limit_exceeded"
    assert "100 tokens per minute" in error["message"]
    assert refused.headers["X-RateLimit-Limit-Tokens"] == "100"
    assert refused.headers["X-RateLimit-Remaining-Tokens"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # A refused request does not spend the request budget.
    assert client.get("/health").status_code == 200


def test_tokens_of_a_stream_are_charged_when_it_ends(make_app):
    client = app_with_completions(make_app).test_client()
    streamed = client.post("/stream/150")
    assert streamed.status_code == 200 and streamed.data.endswith(b"[DONE]\n\n")
    assert client.post("/complete/1").status_code == 429


def test_tokens_of_a_stream_reported_outside_the_request_are_charged_to_its_client(make_app):
    client = app_with_completions(make_app).test_client()
    one = {"REMOTE_ADDR": "192.0.2.1"}
    streamed = client.post("/late-stream/150", environ_base=one)
    assert streamed.data.endswith(b"[DONE]\n\n")
    assert client.post("/complete/1", environ_base=one).status_code == 429
    assert client.post("/complete/1", environ_base={"REMOTE_ADDR": "192.0.2.2"}).status_code == 200


def test_below_the_token_limit_requests_pass(make_app):
    client = app_with_completions(make_app).test_client()
    # 33, 66, 99 used: the fourth still passes (99 < 100) and brings it to 132.
    assert [client.post("/complete/33").status_code for _ in range(5)] == [200, 200, 200, 200, 429]


def test_tokens_are_per_subject(make_app):
    client = app_with_completions(make_app).test_client()
    assert client.post("/complete/500", headers={"X-Test-Subject": "alice"}).status_code == 200
    assert client.post("/complete/1", headers={"X-Test-Subject": "bob"}).status_code == 200
    assert client.post("/complete/1").status_code == 200  # the address is another budget too
    assert client.post("/complete/1", headers={"X-Test-Subject": "alice"}).status_code == 429


def test_tokens_are_counted_in_redis(make_app, shared_redis):
    client = app_with_completions(make_app, **shared_redis.env()).test_client()
    streamed = client.post("/stream/101")
    assert streamed.status_code == 200 and streamed.data.endswith(b"[DONE]\n\n")
    # A second app (another worker or host) on the same storage sees the charge.
    other = app_with_completions(make_app, **shared_redis.env()).test_client()
    assert other.post("/complete/1").status_code == 429


def unreachable_storage(**settings: str) -> dict[str, str]:
    return {"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "1/minute",
            "RATE_LIMIT_STORAGE_URI": f"redis://127.0.0.1:{free_port()}/0", **settings}


def rate_limit_log(capsys) -> list[dict]:
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    return [entry for entry in lines if entry["logger"] == "gateway.ratelimit" and entry["level"] != "info"]


def test_storage_unreachable_fail_open_serves_and_logs_once(make_app, capsys):
    client = make_app(unreachable_storage()).test_client()
    responses = [client.get("/openapi.yaml") for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5  # the 1/minute limit cannot be enforced
    assert all("X-RateLimit-Limit" not in r.headers for r in responses)
    alarms = rate_limit_log(capsys)
    assert len(alarms) == 1  # loud, but not once per request
    assert alarms[0]["level"] == "error"
    assert "serving WITHOUT rate limits" in alarms[0]["message"]


def test_storage_unreachable_fail_closed_answers_503(make_app):
    client = make_app(unreachable_storage(RATE_LIMIT_FAIL_OPEN="false")).test_client()
    refused = client.get("/openapi.yaml")
    assert refused.status_code == 503
    assert refused.headers["Content-Type"] == "application/json"
    assert refused.json["error"]["type"] == "service_unavailable"
    assert client.get("/health").status_code == 200


def test_a_charge_the_storage_refuses_never_breaks_the_stream(make_app, capsys):
    client = app_with_completions(make_app, **unreachable_storage()).test_client()
    streamed = client.post("/stream/50")
    assert streamed.status_code == 200 and streamed.data.endswith(b"[DONE]\n\n")
    assert [entry["level"] for entry in rate_limit_log(capsys)] == ["error"]
