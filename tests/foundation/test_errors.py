import logging

import pytest


def assert_envelope(response, status, type_):
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert body["error"]["type"] == type_
    assert body["error"]["message"]
    return body


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json() == {"message": "OK"}


def test_unknown_route_is_json_404(client):
    assert_envelope(client.get("/v2/nothing"), 404, "not_found_error")


def test_wrong_method_is_json_405_with_allow(client):
    response = client.delete("/health")
    assert_envelope(response, 405, "invalid_request_error")
    assert "GET" in response.headers["Allow"]


def test_uncaught_exception_is_json_500_with_request_id(app, capfd):
    def explode():
        raise RuntimeError("database password hunter2 leaked?")

    app.add_url_rule("/explode", view_func=explode)
    response = app.test_client().get("/explode", headers={"X-Request-ID": "req-abc.123"})
    body = assert_envelope(response, 500, "internal_error")
    assert "req-abc.123" in body["error"]["message"]
    assert "hunter2" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    logged = capfd.readouterr().err
    assert "Traceback" in logged and "hunter2" in logged and "req-abc.123" in logged


@pytest.mark.parametrize("sent,kept", [("abc-123", True), ("a" * 200, False), ("bad id;drop table", False), ("", False)])
def test_request_id_is_echoed_when_sane(client, sent, kept):
    response = client.get("/health", headers={"X-Request-ID": sent} if sent else {})
    rid = response.headers["X-Request-ID"]
    assert (rid == sent) is kept
    assert rid and len(rid) <= 128


def test_openapi_is_served_with_envelope_error_schema(client):
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert b"openapi: 3.1.0" in response.data
    assert b"x-provider-configs" in response.data


def test_secret_never_reaches_logs(make_app, capfd):
    app = make_app({"OPENAI_API_KEY": "sk-do-not-log-me", "ENVIRONMENT": "development"})
    logging.getLogger("gateway.test").warning("provider said: bad key sk-do-not-log-me")
    app.test_client().get("/health").close()
    err = capfd.readouterr().err
    assert "bad key [REDACTED]" in err
    assert "sk-do-not-log-me" not in err
