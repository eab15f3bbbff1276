"""The real gunicorn + gevent worker, over HTTP."""

import json

import requests


def test_gunicorn_gevent_serves_health_404_and_405(live_gateway):
    gateway = live_gateway()
    # Connection: close, so that SIGTERM finds no idle keep-alive connection to wait for
    # (gunicorn lets those linger up to graceful_timeout).
    http = requests.Session()
    http.headers["Connection"] = "close"
    health = http.get(gateway.url + "/health", timeout=5)
    assert health.status_code == 200 and health.json() == {"message": "OK"}
    assert health.headers["X-Request-ID"]

    missing = http.get(gateway.url + "/v1/nothing-here", timeout=5)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/json"
    assert missing.json()["error"]["type"] == "not_found_error"

    wrong = http.post(gateway.url + "/health", timeout=5)
    assert wrong.status_code == 405
    assert wrong.headers["Content-Type"] == "application/json"
    assert wrong.json()["error"]["message"] == "POST is not allowed on /health."

    echoed = http.get(gateway.url + "/health", headers={"X-Request-ID": "trace-42"}, timeout=5)
    assert echoed.headers["X-Request-ID"] == "trace-42"

    assert gateway.stop() == 0
    lines = [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]
    access = [entry for entry in lines if entry.get("logger") == "gateway.access"]
    assert any(e["request_id"] == "trace-42" and e["status"] == 200 for e in access)
    assert any(e["path"] == "/v1/nothing-here" and e["status"] == 404 for e in access)
    assert any("gevent" in e["message"].lower() for e in lines if e.get("logger") == "gunicorn.error")


def test_invalid_setting_stops_startup_with_one_line(live_gateway):
    result = live_gateway.expect_exit({"CLIENT_TIMEOUT": "banana"})
    assert result.returncode == 2
    output = (result.stdout + result.stderr).strip()
    expected = "inference-gateway: invalid CLIENT_TIMEOUT='banana': expected a duration such as 30s, 1m30s or 500ms"
    assert output.splitlines() == [expected]
    assert "Traceback" not in output


def test_port_variable_wins_like_heroku(live_gateway):
    # SERVER_HOST=127.0.0.1 and SERVER_PORT=1 lose to $PORT: gunicorn binds 0.0.0.0 and, with
    # PORT=0, any free port (the one it took is read from its "Listening at" line).
    gateway = live_gateway({"PORT": "0", "SERVER_HOST": "127.0.0.1", "SERVER_PORT": "1"})
    assert gateway.host == "0.0.0.0" and gateway.port not in (0, 1)
    assert requests.get(f"http://127.0.0.1:{gateway.port}/health", timeout=5).status_code == 200


def test_development_logs_are_readable_text(live_gateway):
    gateway = live_gateway({"ENVIRONMENT": "development"})
    requests.get(gateway.url + "/health", headers={"X-Request-ID": "dev-1"}, timeout=5)
    gateway.stop()
    line = next(line for line in gateway.logs().splitlines() if "request_id=dev-1" in line)
    assert not line.startswith("{") and "GET /health 200" in line
