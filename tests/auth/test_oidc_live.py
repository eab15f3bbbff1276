"""OIDC in the real gunicorn gateway: every worker verifies again within a second of the issuer's return."""

from __future__ import annotations

import time

import requests

from tests.auth.conftest import CLIENT_ID, bearer
from tests.support.oidc_issuer import DISCOVERY_PATH, OidcIssuer

WORKERS = 2


def whoami(gateway, token: str) -> int:
    # a new connection each time, so the requests spread over the workers
    return requests.get(gateway.url + "/v1/mcp/tools", headers={**bearer(token), "Connection": "close"},
                        timeout=10).status_code


def test_every_worker_verifies_within_a_second_of_the_issuers_return(live_gateway):
    issuer = OidcIssuer(audience=CLIENT_ID).reserve()  # down: connections are refused
    try:
        gateway = live_gateway({"AUTH_ENABLE": "true", "AUTH_OIDC_ISSUER": issuer.url, "AUTH_OIDC_CLIENT_ID": CLIENT_ID,
                                "MCP_EXPOSE": "true"}, workers=WORKERS)
        token = issuer.token()
        assert {whoami(gateway, token) for _ in range(8)} == {503}
        issuer.start()
        time.sleep(1.0)  # the promise: one second after the issuer is back, no worker still refuses
        assert [whoami(gateway, token) for _ in range(4 * WORKERS)] == [200] * 4 * WORKERS
        assert issuer.hits(DISCOVERY_PATH) >= 1
    finally:
        issuer.stop()
