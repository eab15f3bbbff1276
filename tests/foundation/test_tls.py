"""SERVER_TLS_CERT_PATH / SERVER_TLS_KEY_PATH make gunicorn serve HTTPS."""

import datetime
import ipaddress

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


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
