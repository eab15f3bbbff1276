"""The console's session: a signed cookie, its CSRF token and its idle expiry.

    ConsoleSessions(admin_key, idle_timeout, secure_proxy)   Flask's signed-cookie session, made
                    the console's: a signing secret derived from ADMIN_API_KEY, the cookie
                    `gateway_console` on path /console, HttpOnly, SameSite=Strict, Secure when the
                    request came over TLS
    Visit(session, clock, idle_timeout)   what one request may do with the session: signed in or
                    not, expired after CONSOLE_IDLE_TIMEOUT without a page load or a form sent,
                    the CSRF token every form and JSON call carries

Flask's `SecureCookieSessionInterface` does the signing (itsdangerous, HMAC-SHA1 over a key
derived from the secret); only where the secret comes from and when the cookie is Secure are
ours. The secret is the HMAC-SHA256 of a fixed label under ADMIN_API_KEY: the same in every
worker, host and restart, never the key itself, and a new ADMIN_API_KEY signs every operator out.

"Came over TLS": the gateway's own TLS (SERVER_TLS_*), gunicorn's X-Forwarded-Proto from its
`forwarded_allow_ips` (wsgi.url_scheme, `request.is_secure`), or X-Forwarded-Proto: https from a
peer in TRUSTED_PROXIES (nginx in front, deploy/nginx.conf).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, MutableMapping
from typing import Any

from flask import Flask, Request, request
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer

from app.client_address import ClientAddress

COOKIE_NAME = "gateway_console"
COOKIE_PATH = "/console"
SECRET_LABEL = b"inference-gateway console session v1"
SIGNED_IN = "signed_in"
SEEN = "seen"
CSRF = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def session_secret(admin_key: str) -> str:
    """The cookie's signing secret: stable across workers and restarts, not the admin key."""
    return hmac.new(admin_key.strip().encode(), SECRET_LABEL, hashlib.sha256).hexdigest()


class ConsoleSessions(SecureCookieSessionInterface):
    salt = "gateway-console"

    def __init__(self, admin_key: str, trusted_proxies: ClientAddress):
        self.secret = session_secret(admin_key)
        self.trusted_proxies = trusted_proxies

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer:
        """As Flask builds it, with the console's secret instead of app.secret_key (the app has none)."""
        return URLSafeTimedSerializer(self.secret, salt=self.salt, serializer=self.serializer,
                                      signer_kwargs={"key_derivation": self.key_derivation,
                                                     "digest_method": self.digest_method})

    def open_session(self, app: Flask, request: Request) -> Any:
        if not request.path.startswith(COOKIE_PATH):
            return self.session_class()  # the cookie is the console's alone: elsewhere, an empty session
        return super().open_session(app, request)

    def get_cookie_name(self, app: Flask) -> str:
        return COOKIE_NAME

    def get_cookie_path(self, app: Flask) -> str:
        return COOKIE_PATH

    def get_cookie_httponly(self, app: Flask) -> bool:
        return True

    def get_cookie_samesite(self, app: Flask) -> str:
        return "Strict"

    def get_cookie_secure(self, app: Flask) -> bool:
        return over_tls(request, self.trusted_proxies)


def over_tls(req: Request, trusted_proxies: ClientAddress) -> bool:
    if req.is_secure:
        return True
    forwarded = req.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return forwarded == "https" and trusted_proxies.is_trusted(req.remote_addr or "")


class Visit:
    """One request's view of the session (a dict-like signed cookie)."""

    def __init__(self, session: MutableMapping[str, Any], clock: Callable[[], float], idle_timeout: float):
        self.session = session
        self.clock = clock
        self.idle_timeout = idle_timeout

    @property
    def signed_in(self) -> bool:
        return bool(self.session.get(SIGNED_IN))

    def expired(self) -> bool:
        """Signed in, but idle for longer than CONSOLE_IDLE_TIMEOUT (then the session is cleared)."""
        if not self.signed_in:
            return False
        seen = self.session.get(SEEN)
        if isinstance(seen, (int, float)) and self.clock() - seen <= self.idle_timeout:
            return False
        self.session.clear()
        return True

    def touch(self) -> None:
        """A page load or a form: the idle time starts again (the charts' polling does not call this)."""
        self.session[SEEN] = self.clock()

    def sign_in(self) -> None:
        """A new session: nothing of the signed-out one survives, and the CSRF token is new."""
        self.session.clear()
        self.session[SIGNED_IN] = True
        self.session[CSRF] = secrets.token_urlsafe(32)
        self.touch()

    def sign_out(self) -> None:
        self.session.clear()

    def csrf_token(self) -> str:
        """The session's CSRF token (made on first use: the sign-in form has one too)."""
        token = self.session.get(CSRF)
        if not isinstance(token, str) or not token:
            token = self.session[CSRF] = secrets.token_urlsafe(32)
        return token

    def csrf_ok(self, presented: str | None) -> bool:
        token = self.session.get(CSRF)
        return bool(isinstance(token, str) and token and presented
                    and hmac.compare_digest(token.encode(), presented.encode()))
