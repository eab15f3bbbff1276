"""Every asymmetric algorithm an identity provider may sign with is accepted, with a key the test
issuer generated and published; `none` and HS* never are."""

from __future__ import annotations

import pytest

from app.auth.oidc import ALGORITHMS
from tests.auth.conftest import assert_refused, bearer
from tests.support.oidc_issuer import hs256_token, unsigned_token

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")

ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


def test_the_verifier_takes_every_asymmetric_algorithm_and_nothing_else():
    assert set(ASYMMETRIC) <= set(ALGORITHMS)
    assert not any(alg.upper().startswith("HS") or alg.lower() == "none" for alg in ALGORITHMS)


@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_a_token_signed_with_each_algorithm_is_accepted(auth_app, issuer, alg):
    kid = issuer.key_for(alg)
    client = auth_app().test_client()
    response = client.get("/v1/whoami", headers=bearer(issuer.token(kid=kid, alg=alg, sub=f"user-{alg}")))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["subject"] == f"user-{alg}"


@pytest.mark.parametrize("alg", ["none", "HS256", "HS384", "HS512"])
def test_none_and_hmac_stay_refused(auth_app, issuer, alg):
    client = auth_app().test_client()
    assert client.get("/v1/whoami", headers=bearer(issuer.token())).status_code == 200  # keys are loaded
    header = {"alg": alg, "kid": issuer.current_kid}
    token = (unsigned_token(header, issuer.claims(sub="admin")) if alg == "none"
             else hs256_token(b"secret", header, issuer.claims(sub="admin")))
    assert_refused(client.get("/v1/whoami", headers=bearer(token)), "invalid credential")
