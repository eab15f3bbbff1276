"""SERVER_TLS_CERT_PATH / SERVER_TLS_KEY_PATH make gunicorn serve HTTPS."""

import pytest
import requests

from tests.support.certificates import self_signed


def test_serves_https_with_the_configured_certificate(live_gateway, tmp_path):
    cert, key = self_signed(tmp_path)
    gateway = live_gateway({"SERVER_TLS_CERT_PATH": str(cert), "SERVER_TLS_KEY_PATH": str(key)}, https_ca=cert)
    assert gateway.url.startswith("https://")
    response = requests.get(gateway.url + "/health", verify=str(cert), timeout=5)
    assert response.status_code == 200 and response.json() == {"message": "OK"}
    with pytest.raises(requests.RequestException), requests.Session() as plain:
        # plain HTTP on the TLS port is not served
        plain.get(f"http://127.0.0.1:{gateway.port}/health", timeout=2, headers={"Connection": "close"})


def test_cert_without_key_stops_startup(live_gateway, tmp_path):
    result = live_gateway.expect_exit({"SERVER_TLS_CERT_PATH": str(tmp_path / "cert.pem")})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [("inference-gateway: invalid SERVER_TLS_CERT_PATH/SERVER_TLS_KEY_PATH: "
                                          "set both or neither")]
