"""Signing in to the console: the admin key once, a session cookie with the right flags, CSRF on
every form, an idle expiry, wrong keys throttled with the API's failed authentications."""

from __future__ import annotations

from app.console.session import COOKIE_NAME
from tests.console.conftest import ADMIN_KEY, Operator, console_of


def cookie_header(response) -> str:
    found = [value for value in response.headers.getlist("Set-Cookie") if value.startswith(COOKIE_NAME + "=")]
    assert found, "no console cookie was set"
    return found[-1]


def test_the_console_does_not_exist_without_an_admin_key(console_app):
    client = console_app({"ADMIN_API_KEY": "", "AUTH_ENABLE": "false"}).test_client()
    for path in ("/console", "/console/", "/console/sign-in", "/console/static/console.css"):
        response = client.get(path)
        assert response.status_code == 404 and response.is_json, path


def test_pages_and_feeds_ask_for_a_sign_in(operator):
    page = operator.get("/console/keys")
    assert page.status_code == 302 and page.headers["Location"].startswith("/console/sign-in?next=/console/keys")
    feed = operator.get("/console/api/traffic")
    assert feed.status_code == 401 and feed.get_json()["error"]["code"] == "console_signed_out"
    assert operator.get("/console/static/console.css").status_code == 200  # the sign-in page needs its style


def test_the_admin_key_signs_in_with_a_strict_http_only_cookie(operator):
    form = operator.get("/console/sign-in")
    assert form.status_code == 200 and 'type="password"' in form.get_data(as_text=True)
    response = operator.post("/console/sign-in", {"key": f"  {ADMIN_KEY}\t", "next": "/console/traffic"})
    assert response.status_code == 302 and response.headers["Location"] == "/console/traffic"
    cookie = cookie_header(response)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    assert ADMIN_KEY not in cookie
    assert operator.get("/console/traffic").status_code == 200


def test_the_cookie_is_secure_over_tls_and_behind_a_trusted_proxy(console_app):
    https = Operator(console_app().test_client())
    assert "Secure" in cookie_header(https.sign_in(base_url="https://gateway.example"))

    proxied = Operator(console_app({"TRUSTED_PROXIES": "10.0.0.0/8"}).test_client())
    behind_nginx = {"environ_base": {"REMOTE_ADDR": "10.1.2.3"}, "headers": {"X-Forwarded-Proto": "https"}}
    assert "Secure" in cookie_header(proxied.sign_in(**behind_nginx))

    spoofed = Operator(console_app({"TRUSTED_PROXIES": "10.0.0.0/8"}).test_client())
    anyone = {"environ_base": {"REMOTE_ADDR": "192.0.2.7"}, "headers": {"X-Forwarded-Proto": "https"}}
    assert "Secure" not in cookie_header(spoofed.sign_in(**anyone))


def test_a_wrong_key_is_refused_and_the_address_throttled_with_the_apis_failures(console_app):
    app = console_app({"AUTH_FAILURE_LIMIT": "3/minute"})
    operator = Operator(app.test_client())
    wrong = operator.sign_in("not-the-admin-key")
    assert wrong.status_code == 401 and "That is not the admin key" in wrong.get_data(as_text=True)
    assert operator.get("/console/keys").status_code == 302  # still signed out
    assert operator.post("/console/sign-in", {"key": "guess-2"}).status_code == 401
    api = app.test_client().get("/v1/models", headers={"Authorization": "Bearer wrong-api-key"})
    assert api.status_code == 401  # the third failure of this address, counted by the API's guard
    blocked = operator.post("/console/sign-in", {"key": ADMIN_KEY})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert "Too many failed authentications" in blocked.get_data(as_text=True)
    assert operator.get("/console/providers").status_code == 302  # not signed in


def test_every_form_needs_the_sessions_csrf_token(signed_in):
    client = signed_in.client
    no_token = client.post("/console/keys", data={"name": "sneaky"})
    forged = client.post("/console/keys", data={"name": "sneaky", "csrf_token": "forged"})
    assert no_token.status_code == 403 and forged.status_code == 403
    assert "did not come from this console" in forged.get_data(as_text=True)
    assert "sneaky" not in client.get("/console/keys").get_data(as_text=True)
    fresh = Operator(client.application.test_client())
    fresh.get("/console/sign-in")
    assert fresh.client.post("/console/sign-in", data={"key": ADMIN_KEY}).status_code == 403  # login CSRF too
    assert fresh.client.post("/console/sign-in", data={"key": ADMIN_KEY},
                             headers={"X-CSRF-Token": fresh.token}).status_code == 302


def test_signing_in_makes_a_new_csrf_token_and_signing_out_ends_the_session(operator):
    operator.get("/console/sign-in")
    before = operator.token
    operator.post("/console/sign-in", {"key": ADMIN_KEY})
    operator.get("/console/providers")
    assert operator.token != before
    assert operator.post("/console/sign-out").status_code == 302
    assert operator.get("/console/providers").status_code == 302


def test_an_idle_session_expires_and_polling_does_not_keep_it_alive(app, signed_in):
    console = console_of(app)
    now = [1_000_000.0]
    console.clock = lambda: now[0]
    assert signed_in.get("/console/providers").status_code == 200  # the idle time starts here
    now[0] += 29 * 60
    assert signed_in.get("/console/api/providers").status_code == 200  # a poll: still signed in...
    now[0] += 2 * 60  # ...but it did not count as activity: 31 minutes since the last page
    page = signed_in.get("/console/providers")
    assert page.status_code == 302 and "expired=1" in page.headers["Location"]
    assert "signed out after a while" in signed_in.get(page.headers["Location"]).get_data(as_text=True)
    assert signed_in.get("/console/api/providers").status_code == 401  # the page's script goes to sign-in


def test_activity_keeps_the_session(app, signed_in):
    console = console_of(app)
    now = [1_000_000.0]
    console.clock = lambda: now[0]
    signed_in.get("/console/providers")
    for _ in range(3):
        now[0] += 20 * 60
        assert signed_in.get("/console/keys").status_code == 200


def test_after_signing_in_it_goes_only_to_console_pages(operator):
    operator.get("/console/sign-in")
    away = operator.post("/console/sign-in", {"key": ADMIN_KEY, "next": "//evil.example/console/"})
    assert away.headers["Location"] == "/console/providers"


def test_pages_forbid_framing_caching_and_foreign_scripts(signed_in):
    page = signed_in.get("/console/providers")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"


def test_the_console_is_not_counted_by_the_request_rate_limit(console_app):
    app = console_app({"RATE_LIMIT_ENABLE": "true", "RATE_LIMIT_DEFAULT": "3/minute"})
    operator = Operator(app.test_client())
    operator.sign_in()
    assert {operator.get("/console/api/providers").status_code for _ in range(10)} == {200}
    assert operator.client.get("/v1/models", headers={"Authorization": "Bearer nobody"}).status_code == 401


def test_the_cookie_is_signed_with_a_derived_secret_and_a_new_admin_key_signs_everyone_out(console_app):
    from flask.sessions import SecureCookieSessionInterface
    from itsdangerous import URLSafeTimedSerializer

    app = console_app()
    flask_way = SecureCookieSessionInterface
    forger = URLSafeTimedSerializer(ADMIN_KEY, salt="gateway-console", serializer=flask_way.serializer,
                                    signer_kwargs={"key_derivation": "hmac", "digest_method": flask_way.digest_method})
    client = app.test_client()
    client.set_cookie(COOKIE_NAME, forger.dumps({"signed_in": True, "seen": 9e12}), path="/console")
    assert client.get("/console/providers").status_code == 302  # the raw key does not sign sessions

    operator = Operator(app.test_client())
    cookie = cookie_header(operator.sign_in()).split(";")[0].split("=", 1)[1]
    rotated = console_app({"ADMIN_API_KEY": "a-new-admin-key-0123456789"}).test_client()
    rotated.set_cookie(COOKIE_NAME, cookie, path="/console")
    assert rotated.get("/console/providers").status_code == 302
    same = console_app().test_client()  # another worker or host with the same key: the same secret
    same.set_cookie(COOKIE_NAME, cookie, path="/console")
    assert same.get("/console/providers").status_code == 200


def test_wrong_keys_are_throttled_with_accounts_and_auth_off(console_app):
    app = console_app({"ACCOUNTS_ENABLE": "false", "AUTH_ENABLE": "false", "AUTH_FAILURE_LIMIT": "2/minute"})
    operator = Operator(app.test_client())
    assert [operator.sign_in("wrong").status_code for _ in range(2)] == [401, 401]
    assert operator.sign_in().status_code == 429
