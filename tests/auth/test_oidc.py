"""OIDC tokens against a real issuer on 127.0.0.1 (discovery + JWKS over HTTP)."""

from __future__ import annotations

import time
import uuid

from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.auth.conftest import CLIENT_ID, assert_refused, bearer, guard_of
from tests.support.oidc_issuer import DISCOVERY_PATH, JWKS_PATH, OidcIssuer, hs256_token, unsigned_token


def test_valid_rs256_token_is_accepted_and_names_the_subject(auth_app, issuer):
    client = auth_app().test_client()
    response = client.get("/v1/whoami", headers=bearer(issuer.token(sub="alice")))
    assert response.status_code == 200
    assert response.get_json() == {"subject": "alice", "environ_subject": "alice"}


def test_valid_es256_token_is_accepted(auth_app, issuer):
    ec_kid = issuer.add_key("EC")
    client = auth_app().test_client()
    response = client.post("/v1/whoami", headers=bearer(issuer.token(kid=ec_kid, sub="bob")))
    assert response.status_code == 200
    assert response.get_json()["subject"] == "bob"


def test_audience_may_be_a_list_that_contains_the_client_id(auth_app, issuer):
    client = auth_app().test_client()
    token = issuer.token(aud=["account", CLIENT_ID])
    assert client.get("/v1/whoami", headers=bearer(token)).status_code == 200


def test_expired_token_is_refused_but_small_clock_skew_is_tolerated(auth_app, issuer):
    client = auth_app().test_client()
    now = int(time.time())
    expired = issuer.token(iat=now - 600, nbf=now - 600, exp=now - 120)
    assert_refused(client.get("/v1/whoami", headers=bearer(expired)), "token expired", credential=expired)
    just_expired = issuer.token(exp=now - 5)  # within the 30 s leeway
    assert client.get("/v1/whoami", headers=bearer(just_expired)).status_code == 200


def test_token_not_yet_valid_is_refused(auth_app, issuer):
    client = auth_app().test_client()
    now = int(time.time())
    future = issuer.token(nbf=now + 600, exp=now + 900)
    assert_refused(client.get("/v1/whoami", headers=bearer(future)), "token not yet valid")
    slightly_early = issuer.token(nbf=now + 5)  # within the leeway
    assert client.get("/v1/whoami", headers=bearer(slightly_early)).status_code == 200


def test_wrong_audience_is_refused(auth_app, issuer):
    client = auth_app().test_client()
    for aud in ("another-client", ["account", "another-client"], ""):
        token = issuer.token(aud=aud)
        assert_refused(client.get("/v1/whoami", headers=bearer(token)), "invalid credential", credential=token)


def test_wrong_or_missing_issuer_is_refused(auth_app, issuer):
    client = auth_app().test_client()
    for iss in ("http://evil.example", issuer.url + "/", None):
        token = issuer.token(iss=iss)
        assert_refused(client.get("/v1/whoami", headers=bearer(token)), "invalid credential")


def test_token_without_exp_or_sub_is_refused(auth_app, issuer):
    client = auth_app().test_client()
    assert_refused(client.get("/v1/whoami", headers=bearer(issuer.token(exp=None))), "invalid credential")
    assert_refused(client.get("/v1/whoami", headers=bearer(issuer.token(sub=None))), "invalid credential")


def test_tampered_token_is_refused(auth_app, issuer):
    client = auth_app().test_client()
    header, _, signature = issuer.token(sub="alice").split(".")
    forged_claims = unsigned_token({}, issuer.claims(sub="admin")).split(".")[1]
    tampered = f"{header}.{forged_claims}.{signature}"
    assert_refused(client.get("/v1/whoami", headers=bearer(tampered)), "invalid credential")

    header, claims, signature = issuer.token().split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert_refused(client.get("/v1/whoami", headers=bearer(f"{header}.{claims}.{flipped}")), "invalid credential")


def test_token_signed_by_a_foreign_key_with_a_known_kid_is_refused(auth_app, issuer):
    client = auth_app().test_client()
    impostor = RSAKey.generate_key(2048)
    token = jwt.encode({"alg": "RS256", "kid": issuer.current_kid}, issuer.claims(), impostor)
    assert_refused(client.get("/v1/whoami", headers=bearer(token)), "invalid credential")


def test_alg_none_is_refused(auth_app, issuer):
    client = auth_app().test_client()
    assert client.get("/v1/whoami", headers=bearer(issuer.token())).status_code == 200  # keys are loaded
    for alg in ("none", "None", "NONE"):
        token = unsigned_token({"alg": alg, "kid": issuer.current_kid}, issuer.claims(sub="admin"))
        assert_refused(client.get("/v1/whoami", headers=bearer(token)), "invalid credential")


def test_hs256_signed_with_the_issuers_public_key_is_refused(auth_app, issuer):
    client = auth_app().test_client()
    public = issuer.keys[issuer.current_kid]
    pem = RSAKey.import_key(public.as_dict(private=False)).as_pem(private=False)
    secrets = [pem, pem.strip(), str(public.as_dict(private=False)).encode(), b"n"]
    for secret in secrets:
        for header in ({"alg": "HS256", "kid": issuer.current_kid}, {"alg": "HS256"}):
            token = hs256_token(secret, header, issuer.claims(sub="admin"))
            assert_refused(client.get("/v1/whoami", headers=bearer(token)), "invalid credential")


class FakeClock:
    """Monotonic seconds the test moves by hand; `sleep` moves it too (no real waiting)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    sleep = advance


def with_clock(app) -> FakeClock:
    clock = FakeClock()
    verifier = guard_of(app).oidc
    verifier.clock, verifier.sleep = clock, clock.sleep
    return clock


def test_unknown_kid_refetches_the_jwks_once_the_last_fetch_is_a_second_old(auth_app, issuer):
    app = auth_app()
    clock = with_clock(app)
    client = app.test_client()
    old_token = issuer.token()
    assert client.get("/v1/whoami", headers=bearer(old_token)).status_code == 200
    assert issuer.hits(JWKS_PATH) == 1

    new_kid = issuer.rotate("EC")
    new_token = issuer.token(kid=new_kid, sub="carol")
    clock.advance(0.5)  # the keys were fetched half a second ago: not again yet
    assert_refused(client.get("/v1/whoami", headers=bearer(new_token)), "invalid credential")
    assert issuer.hits(JWKS_PATH) == 1

    clock.advance(0.6)  # now over a second: the unknown kid fetches the rotated keys
    response = client.get("/v1/whoami", headers=bearer(new_token))
    assert response.status_code == 200 and response.get_json()["subject"] == "carol"
    assert issuer.hits(JWKS_PATH) == 2
    assert client.get("/v1/whoami", headers=bearer(new_token)).status_code == 200
    assert issuer.hits(JWKS_PATH) == 2  # cached again
    # The issuer withdrew the old key: tokens signed with it no longer pass.
    assert_refused(client.get("/v1/whoami", headers=bearer(old_token)), "invalid credential")
    assert issuer.hits(DISCOVERY_PATH) == 1


def test_unpublished_kid_is_refused(auth_app, issuer):
    client = auth_app().test_client()
    unpublished = issuer.add_key("RSA", serve=False)
    assert_refused(client.get("/v1/whoami", headers=bearer(issuer.token(kid=unpublished))), "invalid credential")


def test_flood_of_unknown_kids_fetches_the_jwks_at_most_once_a_second(auth_app, issuer):
    app = auth_app({"AUTH_FAILURE_LIMIT": ""})  # the flood is of failures: not limited here
    clock = with_clock(app)
    client = app.test_client()
    assert client.get("/v1/whoami", headers=bearer(issuer.token())).status_code == 200
    assert issuer.hits(JWKS_PATH) == 1

    def flood(count: int) -> None:
        for _ in range(count):
            token = issuer.token(header={"kid": uuid.uuid4().hex})  # signed by the issuer's key, kid unknown
            assert client.get("/v1/whoami", headers=bearer(token)).status_code == 401

    flood(30)
    assert issuer.hits(JWKS_PATH) == 1  # fetched just now
    for second in range(1, 4):
        clock.advance(0.5)
        flood(15)
        clock.advance(0.55)
        flood(15)
        assert issuer.hits(JWKS_PATH) == 1 + second  # one fetch per second, however many requests
    assert issuer.hits(DISCOVERY_PATH) == 1


def test_cached_keys_keep_working_while_the_issuer_is_down(auth_app, issuer):
    client = auth_app().test_client()
    assert client.get("/v1/whoami", headers=bearer(issuer.token())).status_code == 200
    issuer.stop()
    assert client.get("/v1/whoami", headers=bearer(issuer.token(sub="dave"))).get_json()["subject"] == "dave"


def test_issuer_down_answers_503_then_verifies_within_a_second_of_its_return(make_app, auth_app):
    down = OidcIssuer(audience=CLIENT_ID).reserve()  # a port nothing listens on yet
    app = auth_app({"AUTH_OIDC_ISSUER": down.url})
    clock = with_clock(app)
    client = app.test_client()
    token = down.token(sub="erin")

    response = client.get("/v1/whoami", headers=bearer(token))
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/json"
    error = response.get_json()["error"]
    assert error["type"] == "service_unavailable" and "identity provider cannot be reached" in error["message"]
    assert token not in response.get_data(as_text=True)
    # Either method is enough: API keys still work while the issuer is down.
    from tests.auth.conftest import API_KEY
    assert client.get("/v1/whoami", headers={"x-api-key": API_KEY}).status_code == 200

    down.start()
    try:
        # Right after a failure the verifier does not ask again (a flood of requests is not a flood of fetches)...
        assert client.get("/v1/whoami", headers=bearer(token)).status_code == 503
        assert down.hits(DISCOVERY_PATH) == 0
        # ...but a second after the issuer came back, it verifies.
        clock.advance(1.0)
        response = client.get("/v1/whoami", headers=bearer(token))
        assert response.status_code == 200 and response.get_json()["subject"] == "erin"
    finally:
        down.stop()


def test_discovery_naming_another_issuer_is_a_503(auth_app, issuer):
    issuer.discovery_overrides = {"issuer": "http://someone-else.example"}
    client = auth_app().test_client()
    response = client.get("/v1/whoami", headers=bearer(issuer.token()))
    assert response.status_code == 503
    assert issuer.hits(JWKS_PATH) == 0


def test_keys_older_than_max_age_are_fetched_again(auth_app, issuer):
    app = auth_app()
    clock = with_clock(app)
    guard_of(app).oidc.max_age = 300
    client = app.test_client()
    old_token = issuer.token()
    assert client.get("/v1/whoami", headers=bearer(old_token)).status_code == 200
    issuer.rotate()
    clock.advance(299)
    assert client.get("/v1/whoami", headers=bearer(old_token)).status_code == 200  # still trusted
    clock.advance(2)
    assert_refused(client.get("/v1/whoami", headers=bearer(old_token)), "invalid credential")
    assert issuer.hits(JWKS_PATH) == 2


def test_failing_jwks_endpoint_is_a_503_retried_after_a_pause(auth_app, issuer):
    app = auth_app()
    clock = with_clock(app)
    client = app.test_client()
    issuer.jwks_status = 500
    for _ in range(5):
        assert client.get("/v1/whoami", headers=bearer(issuer.token())).status_code == 503
    assert issuer.hits(JWKS_PATH) == 1  # the others waited for the pause
    issuer.jwks_status = 200
    clock.advance(1.0)
    assert client.get("/v1/whoami", headers=bearer(issuer.token())).status_code == 200


def test_failed_refresh_of_old_keys_keeps_them_and_retries_once_per_interval(auth_app, issuer):
    app = auth_app()
    clock = with_clock(app)
    guard_of(app).oidc.max_age = 10
    client = app.test_client()
    assert client.get("/v1/whoami", headers=bearer(issuer.token())).status_code == 200
    issuer.jwks_status = 500
    clock.advance(11)
    token = issuer.token()
    for _ in range(10):  # within one interval
        assert client.get("/v1/whoami", headers=bearer(token)).status_code == 200
    assert issuer.hits(JWKS_PATH) == 2  # one failed attempt, not ten
    clock.advance(1.1)
    assert client.get("/v1/whoami", headers=bearer(token)).status_code == 200
    assert issuer.hits(JWKS_PATH) == 3  # tried again a second later, keys still kept


# -- verified tokens remembered (app/auth/oidc.py, step 4) --------------------------------------------

def with_strict_verifier(app, **options):
    """The app's verifier replaced by one without clock-skew leeway, so `exp` is exactly the end."""
    from app.auth.oidc import OidcVerifier
    from app.extensions import EXTENSION_KEY

    guard = guard_of(app)
    guard.oidc = OidcVerifier.from_settings(app.extensions[EXTENSION_KEY].settings, leeway=0, **options)
    return guard.oidc


def test_a_remembered_token_is_refused_once_its_exp_has_passed(auth_app, issuer):
    from tests.support.polling import wait_for

    app = auth_app()
    with_strict_verifier(app)
    client = app.test_client()
    exp = int(time.time()) + 2
    token = issuer.token(exp=exp)
    for _ in range(3):  # verified once, then remembered
        assert client.get("/v1/whoami", headers=bearer(token)).status_code == 200
    wait_for(lambda: time.time() >= exp + 0.01, 5, "the token's exp to pass")
    assert_refused(client.get("/v1/whoami", headers=bearer(token)), "token expired", credential=token)


def test_remembered_tokens_are_forgotten_when_the_keys_are_fetched_again(auth_app, issuer):
    """A token remembered from the old keys is verified again after a refetch, and refused when its key is gone."""
    app = auth_app()
    clock = with_clock(app)
    guard_of(app).oidc.max_age = 300
    client = app.test_client()
    old_token = issuer.token()
    assert client.get("/v1/whoami", headers=bearer(old_token)).status_code == 200
    issuer.rotate()
    clock.advance(1.1)
    new_token = issuer.token()  # an unknown kid: the keys are fetched again
    assert client.get("/v1/whoami", headers=bearer(new_token)).status_code == 200
    assert_refused(client.get("/v1/whoami", headers=bearer(old_token)), "invalid credential")
    assert client.get("/v1/whoami", headers=bearer(new_token)).status_code == 200


def test_at_most_cache_size_tokens_are_remembered(auth_app, issuer):
    app = auth_app()
    verifier = with_strict_verifier(app, cache_size=3)
    client = app.test_client()
    tokens = [issuer.token(sub=f"user-{i}") for i in range(6)]
    for i, token in enumerate(tokens):
        assert client.get("/v1/whoami", headers=bearer(token)).get_json()["subject"] == f"user-{i}"
    assert list(verifier._verified) == tokens[-3:]  # the oldest forgotten first
    for i, token in enumerate(tokens):  # every token still verifies, remembered or not
        assert client.get("/v1/whoami", headers=bearer(token)).get_json()["subject"] == f"user-{i}"
