"""Auth on the real gunicorn (gevent worker), over HTTP."""

from __future__ import annotations

import json
import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.auth.conftest import API_KEY, CLIENT_ID
from tests.support.oidc_issuer import DISCOVERY_PATH, JWKS_PATH, OidcIssuer
from tests.support.ports import reserved_port

FILE_KEY = "file-key-live-0123456789abcdef"


def _session() -> requests.Session:
    http = requests.Session()
    http.headers["Connection"] = "close"  # no idle keep-alive for SIGTERM to wait on
    return http


def test_protected_routes_need_a_credential_and_logs_never_hold_it(live_gateway, issuer, tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# live\n{FILE_KEY}\n")
    gateway = live_gateway({"AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": issuer.url, "AUTH_OIDC_CLIENT_ID": CLIENT_ID,
                            "AUTH_API_KEYS_FILE": str(keys_file), "LOG_LEVEL": "debug"})
    http = _session()
    token = issuer.token(sub="alice")
    bad_token = issuer.token(aud="someone-else")
    wrong_key = "wrong-key-live-0123456789"

    assert http.get(gateway.url + "/health", timeout=5).status_code == 200
    for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("GET", "/proxy/openai/models"),
                         ("GET", "/v1/mcp/tools"), ("DELETE", "/anything")):
        refused = http.request(method, gateway.url + path, timeout=5)
        assert refused.status_code == 401, (method, path)
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert refused.json()["error"] == {"message": "missing credential", "type": "authentication_error",
                                           "code": None}

    # Authenticated: served (the model list, empty here: no provider is configured).
    for headers in ({"Authorization": f"Bearer {token}"}, {"x-api-key": FILE_KEY}):
        served = http.get(gateway.url + "/v1/models", headers=headers, timeout=15)
        assert served.status_code == 200 and served.json()["object"] == "list"
    for headers in ({"Authorization": f"Bearer {bad_token}"}, {"Authorization": f"Bearer {wrong_key}"},
                    {"x-api-key": wrong_key}):
        refused = http.get(gateway.url + "/v1/models", headers=headers, timeout=5)
        assert refused.status_code == 401
        assert bad_token not in refused.text and wrong_key not in refused.text

    assert gateway.stop() == 0
    logs = gateway.logs()
    for secret in (token, bad_token, FILE_KEY, wrong_key, token.split(".")[2]):
        assert secret not in logs
    access = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    subjects = {entry.get("subject") for entry in access if entry.get("logger") == "gateway.access"}
    assert "alice" in subjects and any(str(s).startswith("key:") for s in subjects)


def test_flood_of_unknown_kids_under_gevent_costs_the_issuer_at_most_one_fetch_a_second(live_gateway, issuer):
    gateway = live_gateway({"AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": issuer.url, "AUTH_OIDC_CLIENT_ID": CLIENT_ID,
                            "AUTH_FAILURE_LIMIT": ""})  # the flood is of failures: not limited here
    tokens = [issuer.token(header={"kid": uuid.uuid4().hex}) for _ in range(60)]

    def send(token: str) -> int:
        return requests.get(gateway.url + "/v1/models", headers={"Authorization": f"Bearer {token}"},
                            timeout=10).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(send, tokens))
    flood_seconds = time.monotonic() - started
    assert statuses == [401] * len(tokens)
    assert issuer.hits(DISCOVERY_PATH) == 1
    # at most one JWKS fetch a second, however long a busy machine takes to send the flood
    assert 1 <= issuer.hits(JWKS_PATH) <= 1 + math.ceil(flood_seconds)
    assert send(issuer.token()) == 200  # a good token still passes


def test_issuer_down_is_503_the_worker_survives_and_recovers(live_gateway):
    issuer = OidcIssuer(audience=CLIENT_ID, port=reserved_port())  # held, nothing listens there yet
    gateway = live_gateway({"AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": issuer.url, "AUTH_OIDC_CLIENT_ID": CLIENT_ID,
                            "AUTH_API_KEYS": API_KEY})
    http = _session()
    headers = {"Authorization": f"Bearer {issuer.token()}"}
    try:
        down = http.get(gateway.url + "/v1/models", headers=headers, timeout=10)
        assert down.status_code == 503
        assert down.json()["error"]["type"] == "service_unavailable"
        assert http.get(gateway.url + "/v1/models", headers={"x-api-key": API_KEY}, timeout=15).status_code == 200

        issuer.start()
        deadline, status = time.monotonic() + 10, None
        while time.monotonic() < deadline:
            status = http.get(gateway.url + "/v1/models", headers=headers, timeout=10).status_code
            if status != 503:
                break
            time.sleep(0.2)
        assert status == 200  # authenticated and served
        assert gateway.process.poll() is None
    finally:
        issuer.stop()
    assert "Traceback" not in gateway.logs()
