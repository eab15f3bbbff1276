"""The app-wide credential check, installed by `init_app(app)` when AUTH_ENABLE=true.

One `before_request` hook covers every request except the public routes (`app.public_routes`:
GET /health), matched by exact path, so a route added later is protected by default, and a
request for an unknown route is refused (401) before it could learn that the route does not
exist (404).

Credentials, in order:
- `Authorization: Bearer <value>`: a value shaped like a JWT (three dot-separated parts) is
  verified by OIDC, anything else is looked up among the API keys;
- otherwise `x-api-key: <key>`: an API key.

On success the subject (the JWT's `sub`, or the key's id `key:<8 hex>`) is stored in
`request.environ[SUBJECT_KEY]` (for WSGI middleware such as the access log) and `g.subject`.
A refusal is `AuthenticationFailed` (401, `WWW-Authenticate: Bearer`) with a short reason that
never repeats the credential. Failed attempts are limited per client address (AUTH_FAILURE_LIMIT,
app/auth/failures.py, installed here before the guard's own hook). Only ASCII spaces and tabs
around a credential are ignored (HTTP's optional whitespace): `Bearer k1<NBSP>` is not `k1`. The credential itself is never logged, and never forwarded:
providers get their own headers (see app/providers/provider.py).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Flask, g, request
from werkzeug.datastructures import Headers

from app.auth.api_keys import ApiKeys, looks_like_jwt
from app.auth.failures import AuthFailures
from app.config import Settings
from app.errors import AuthenticationFailed
from app.extensions import EXTENSION_KEY
from app.limit_storage import storage_breaker
from app.public_routes import is_public
from app.signals import SUBJECT_KEY

if TYPE_CHECKING:
    from app.auth.oidc import OidcVerifier

log = logging.getLogger("gateway.auth")

# Blueprints that check a credential of their own: admin takes only ADMIN_API_KEY (app/auth/admin_key.py),
# the web console its signed session cookie, got by signing in with ADMIN_API_KEY (app/console/).
SELF_AUTHENTICATED = frozenset({"admin", "console"})
AUTH_EXTENSION_KEY = "gateway.auth"
OWS = " \t"  # HTTP's optional whitespace; str.strip() would also take NBSP and other Unicode spaces


class Guard:
    def __init__(self, api_keys: ApiKeys, oidc: OidcVerifier | None):
        self.api_keys = api_keys
        self.oidc = oidc
        self.key_lookups: list[Callable[[str], str | None]] = []

    def add_key_lookup(self, lookup: Callable[[str], str | None]) -> None:
        """One more kind of API key (virtual keys: app/auth/virtual_keys.py), asked after the static
        keys: `lookup(key)` answers the key's subject, None, or raises a GatewayError."""
        self.key_lookups.append(lookup)

    @classmethod
    def from_settings(cls, settings: Settings) -> Guard:
        api_keys = ApiKeys(settings.api_keys)
        issuer = settings.auth_oidc_issuer.strip()
        oidc = None
        if issuer:  # imported only then: joserfc, authlib and cryptography's bindings cost each worker megabytes
            from app.auth.oidc import OidcVerifier

            oidc = OidcVerifier.from_settings(settings)
        return cls(api_keys, oidc)

    def authenticate(self, headers: Headers) -> str:
        """The subject the request's credential belongs to, or AuthenticationFailed."""
        credential, is_jwt = presented(headers)
        if is_jwt:
            if self.oidc is None:
                raise AuthenticationFailed("invalid credential")
            return self.oidc.verify(credential)
        return self._api_key(credential)

    def static_key(self, headers: Headers) -> str | None:
        """The id of the static API key (AUTH_API_KEYS) the request carries, when it carries a valid
        one, as `authenticate` would answer it: a digest compared in memory, nothing looked up."""
        try:
            credential, is_jwt = presented(headers)
        except AuthenticationFailed:
            return None
        return None if is_jwt else self.api_keys.identify(credential)

    def _api_key(self, key: str) -> str:
        subject = self.api_keys.identify(key)
        for lookup in self.key_lookups:
            if subject is not None:
                break
            subject = lookup(key)
        if subject is None:
            raise AuthenticationFailed("invalid credential")
        return subject

    def check_request(self) -> None:
        """The before_request hook."""
        if is_public(request.path) or request.blueprint in SELF_AUTHENTICATED:
            return
        subject = self.authenticate(request.headers)
        request.environ[SUBJECT_KEY] = subject
        g.subject = subject


def presented(headers: Headers) -> tuple[str, bool]:
    """The request's credential, and whether it is a bearer JWT (for OIDC); AuthenticationFailed
    when there is none or the Authorization header is malformed."""
    authorization = headers.get("Authorization")
    if authorization is None:
        key = headers.get("X-Api-Key", "").strip(OWS)
        if not key:
            raise AuthenticationFailed("missing credential")
        return key, False
    scheme, _, credential = authorization.strip(OWS).partition(" ")
    credential = credential.strip(OWS)
    if scheme.lower() != "bearer" or not credential:
        raise AuthenticationFailed("malformed Authorization header: expected 'Bearer <credential>'")
    return credential, looks_like_jwt(credential)


def init_app(app: Flask) -> Guard | None:
    """Install the check (after GatewayState, before any other before_request hook that needs
    the subject). With AUTH_ENABLE=false nothing is installed."""
    settings: Settings = app.extensions[EXTENSION_KEY].settings
    install_failure_limit(app, settings)
    if not settings.auth_enable:
        if open_to_the_network(settings):
            log.warning("AUTH_ENABLE=false while the gateway listens on a non-loopback address: anyone who can "
                        "reach it can spend the provider keys. Set AUTH_ENABLE=true, or SERVER_HOST=127.0.0.1.")
        return None
    guard = Guard.from_settings(settings)
    app.extensions[AUTH_EXTENSION_KEY] = guard
    app.before_request(guard.check_request)
    log.info("authentication on: OIDC %s, %d API keys",
             f"issuer {guard.oidc.issuer}" if guard.oidc else "off", len(guard.api_keys))
    return guard


def install_failure_limit(app: Flask, settings: Settings) -> AuthFailures | None:
    """AUTH_FAILURE_LIMIT, wherever a credential can be guessed: every route with AUTH_ENABLE=true,
    else the admin API when it is on (ACCOUNTS_ENABLE and ADMIN_API_KEY)."""
    if not settings.auth_failure_limit.strip():
        return None
    if settings.auth_enable:
        blueprint = None
    elif settings.accounts_enable and settings.admin_api_key.strip():
        blueprint = "admin"
    else:
        return None
    breaker = storage_breaker(app, float(settings.rate_limit_storage_backoff))
    failures = AuthFailures.from_settings(settings, breaker, blueprint=blueprint)
    failures.init_app(app)
    return failures


def open_to_the_network(settings: Settings) -> bool:
    """Whether the gateway listens beyond loopback ($PORT binds 0.0.0.0)."""
    return settings.port is not None or not _is_loopback(settings.server_host)


def _is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False
