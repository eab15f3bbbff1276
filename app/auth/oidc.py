"""OIDC JWT verification against the issuer's published keys.

Built on joserfc, the JOSE library of the Authlib project (Authlib 1.9 deprecates its own
`authlib.jose` in its favour). The issuer is reached through the gateway's one outbound layer
(`app.upstream`: its session factory, HTTPS_PROXY / HTTP_PROXY / NO_PROXY, the client timeouts
and the exception map). Nothing is fetched at import or start-up:

1. Discovery (`<issuer>/.well-known/openid-configuration`) on the first token that needs it,
   with a short retry. If the issuer cannot be reached, `IssuerUnavailable` (503) is raised and
   the next attempt waits `FAILURE_BACKOFF` seconds, so a flood of requests does not become a
   flood of fetches; the first request after that tries again. Once the issuer is back, every
   worker verifies again within a second.
2. The JWKS is fetched once and cached. A token whose `kid` is not in the cache makes the
   verifier fetch it again when the last fetch is over `JWKS_REFETCH_INTERVAL` (1 s) old: a
   rotated key is accepted at once, and a flood of made-up kids costs the issuer at most one
   request a second. A cache older than `JWKS_MAX_AGE` is refreshed on use, so keys the issuer
   withdraws stop being accepted; if that refresh fails, the cached keys stay in use and it is
   retried once per interval.
3. The signature must verify with one of those keys, with an asymmetric algorithm an identity
   provider may use (`ALGORITHMS`: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA and its
   fully specified name Ed25519), each with the key type and curve it needs; `alg: none`, HS*
   and the HS256-signed-with-the-public-key trick are refused before any key is picked;
   `iss` must equal the issuer, `aud` must contain the client id, `exp` (required) and `nbf`
   hold with `LEEWAY` seconds of clock skew, and `sub` names the subject.

4. A token that verified is remembered (`VERIFIED_CACHE_SIZE` tokens per worker, the oldest
   forgotten first), so a client sending the same token on every request pays the signature
   check once: it is accepted from memory only while the wall clock is before its `exp` (no
   leeway: past it, the token is verified again as above), and only while the key set it
   verified with is still the cached one and younger than `JWKS_MAX_AGE`; keys fetched again
   (rotation, withdrawal, age) forget every remembered token.

Fetches are serialised by one lock, so concurrent requests (gevent greenlets) share one fetch.
Time comes from `clock` and pauses from `sleep` (monotonic seconds and `time.sleep` unless a
test gives its own), so every interval above can be tested without waiting for it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from authlib.oidc.discovery import get_well_known_url
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, InvalidKeyIdError, JoseError, SecurityWarning
from joserfc.jwk import ECKey, Key, KeySet, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from app.config import Settings
from app.errors import AuthenticationFailed, ServiceUnavailable, UpstreamError
from app.upstream.sessions import build_upstream
from app.upstream.transport import Upstream

log = logging.getLogger("gateway.auth")
# joserfc warns on every EdDSA token that RFC 9864 prefers "Ed25519": the identity provider chose it, not the operator.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519")
LEEWAY = 30  # seconds of clock skew allowed on exp and nbf
JWKS_REFETCH_INTERVAL = 1.0  # an unknown kid refetches the JWKS when the last fetch is older than this
JWKS_MAX_AGE = 600.0  # seconds a fetched JWKS is trusted before it is fetched again on use
DISCOVERY_ATTEMPTS = 2
DISCOVERY_PAUSE = 0.25  # seconds between two discovery attempts
FAILURE_BACKOFF = 0.5  # seconds before trying again after discovery or the first JWKS fetch failed
VERIFIED_CACHE_SIZE = 1024  # verified tokens remembered per worker (each until its exp)


class IssuerUnavailable(ServiceUnavailable):
    code = "oidc_issuer_unavailable"


class OidcVerifier:
    def __init__(self, issuer: str, client_id: str, *, upstream: Upstream, refetch_interval: float = JWKS_REFETCH_INTERVAL,
                 max_age: float = JWKS_MAX_AGE, failure_backoff: float = FAILURE_BACKOFF, leeway: int = LEEWAY,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 wall: Callable[[], float] = time.time, cache_size: int = VERIFIED_CACHE_SIZE):
        self.issuer = issuer
        self.wall = wall
        self.cache_size = cache_size
        # token -> (subject, exp, the key set it verified with): see "remembered" in the module docstring
        self._verified: dict[str, tuple[str, float, KeySet]] = {}
        self.refetch_interval = refetch_interval
        self.max_age = max_age
        self.failure_backoff = failure_backoff
        self.clock = clock
        self.sleep = sleep
        self._upstream = upstream
        self._lock = threading.Lock()
        self._registry = JWSRegistry(algorithms=list(ALGORITHMS))
        self._claims = jwt.JWTClaimsRegistry(
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": client_id},
            exp={"essential": True},
            sub={"essential": True},
        )
        self._jwks_uri: str | None = None
        self._discovery_failed_at = float("-inf")
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")  # when the cached keys were fetched
        self._attempted_at = float("-inf")  # last JWKS fetch attempt, successful or not
        self._last_fetch_failed = False
        # Why the last discovery or JWKS fetch failed (what the log says), for `flask doctor`.
        self.last_problem: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> OidcVerifier:
        """The verifier for AUTH_OIDC_ISSUER / AUTH_OIDC_CLIENT_ID, reaching the issuer through app.upstream."""
        issuer = settings.auth_oidc_issuer.strip()
        return cls(issuer, settings.auth_oidc_client_id,
                   upstream=build_upstream(settings, "the OIDC issuer", issuer), **options)

    # -- verification ----------------------------------------------------------------------
    def verify(self, token: str) -> str:
        """The token's subject, or AuthenticationFailed / IssuerUnavailable."""
        remembered = self._verified.get(token)
        if remembered is not None:
            subject, expires, keys = remembered
            if (keys is self._keys and self.wall() < expires
                    and self.clock() - self._fetched_at < self.max_age):
                return subject
            self._verified.pop(token, None)
        used: list[KeySet] = []
        claims = self._verify(token, used)
        subject = claims["sub"]
        self._remember(token, subject, claims.get("exp"), used)
        return subject

    def _remember(self, token: str, subject: str, exp: Any, used: list[KeySet]) -> None:
        """Remember a verified token until its exp, tied to the key set that verified it."""
        if not used or used[-1] is not self._keys or self.cache_size <= 0:
            return
        if isinstance(exp, bool) or not isinstance(exp, (int, float)) or exp <= self.wall():
            return
        while len(self._verified) >= self.cache_size:
            self._verified.pop(next(iter(self._verified)), None)
        self._verified[token] = (subject, float(exp), used[-1])

    def _verify(self, token: str, used: list[KeySet]) -> dict[str, Any]:
        """The verified token's claims (the key set that verified it appended to `used`)."""
        def key_for(parsed: Any) -> Key:
            key = self._key_for(parsed)
            used.append(self._keys)
            return key

        try:
            decoded = jwt.decode(token, key_for, registry=self._registry)
            self._claims.validate(decoded.claims)
        except ExpiredTokenError:
            raise AuthenticationFailed("token expired") from None
        except InvalidClaimError as exc:
            if exc.claim == "nbf":
                raise AuthenticationFailed("token not yet valid") from None
            raise AuthenticationFailed("invalid credential") from None
        except (JoseError, ValueError, TypeError, KeyError):
            raise AuthenticationFailed("invalid credential") from None
        return decoded.claims

    def _key_for(self, token: Any) -> Key:
        """Called by joserfc once the token's `alg` is known to be allowed."""
        headers = token.headers()
        kid, alg = headers.get("kid"), headers["alg"]
        keys = self._current_keys()
        try:
            return _signing_key(keys, kid, alg)
        except InvalidKeyIdError:
            pass
        keys = self._refreshed_keys(seen=keys)
        return _signing_key(keys, kid, alg)  # still unknown: InvalidKeyIdError -> 401

    def signing_keys(self) -> KeySet:
        """Discover the issuer and fetch its keys now, as the first token would (`flask doctor`
        checks the issuer this way); IssuerUnavailable, with `last_problem` saying why."""
        return self._current_keys()

    # -- the key cache ---------------------------------------------------------------------
    def _current_keys(self) -> KeySet:
        keys = self._keys
        if keys is not None and self.clock() - self._fetched_at < self.max_age:
            return keys
        with self._lock:
            since_attempt = self.clock() - self._attempted_at
            if self._keys is None:
                if self._last_fetch_failed and since_attempt < self.failure_backoff:
                    raise IssuerUnavailable(_UNAVAILABLE)
                self._keys = self._fetch_keys()
            elif self.clock() - self._fetched_at >= self.max_age and since_attempt >= self.refetch_interval:
                try:
                    self._keys = self._fetch_keys()
                except IssuerUnavailable:
                    log.warning("keeping the cached OIDC keys: the issuer could not be reached to refresh them")
            return self._keys

    def _refreshed_keys(self, seen: KeySet) -> KeySet:
        """The keys fetched again for an unknown kid, unless fetched less than an interval ago."""
        with self._lock:
            if self._keys is not seen:  # another request refreshed them while this one waited
                return self._keys
            if self.clock() - self._attempted_at < self.refetch_interval:
                if self._last_fetch_failed:
                    raise IssuerUnavailable(_UNAVAILABLE)
                return seen
            self._keys = self._fetch_keys()
            return self._keys

    def _fetch_keys(self) -> KeySet:
        """Fetch the JWKS (discovering its address first if needed); call with the lock held."""
        jwks_uri = self._discover()
        self._attempted_at = self.clock()
        self._last_fetch_failed = True
        try:
            keys = KeySet([key for key in KeySet.import_key_set(self._get_json(jwks_uri)).keys
                           if isinstance(key, (RSAKey, ECKey, OKPKey))])
        except (UpstreamError, ValueError, TypeError, KeyError, JoseError) as exc:
            self.last_problem = f"cannot fetch the keys from {jwks_uri}: {_reason(exc)}"
            log.error("cannot fetch the OIDC issuer's keys from %s: %s", jwks_uri, _reason(exc))
            raise IssuerUnavailable(_UNAVAILABLE) from None
        self._last_fetch_failed = False
        self._fetched_at = self._attempted_at
        log.info("fetched %d signing keys from the OIDC issuer", len(keys.keys))
        return keys

    def _discover(self) -> str:
        if self._jwks_uri is not None:
            return self._jwks_uri
        if self.clock() - self._discovery_failed_at < self.failure_backoff:
            raise IssuerUnavailable(_UNAVAILABLE)
        url = get_well_known_url(self.issuer, external=True)
        for attempt in range(1, DISCOVERY_ATTEMPTS + 1):
            try:
                document = self._get_json(url)
            except (UpstreamError, ValueError) as exc:
                problem = _reason(exc)
            else:
                jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
                if isinstance(jwks_uri, str) and document.get("issuer") == self.issuer:
                    self._jwks_uri = jwks_uri
                    return jwks_uri
                if isinstance(jwks_uri, str):
                    problem = (f"it names the issuer {document.get('issuer')!r}, but AUTH_OIDC_ISSUER is "
                               f"{self.issuer!r}; they must be equal")
                    log.error("OIDC discovery at %s names the issuer %r, but AUTH_OIDC_ISSUER is %r; they must "
                              "be equal", url, document.get("issuer"), self.issuer)
                    break
                problem = "the discovery document has no jwks_uri"
            log.warning("OIDC discovery at %s failed (attempt %d of %d): %s", url, attempt, DISCOVERY_ATTEMPTS,
                        problem)
            if attempt < DISCOVERY_ATTEMPTS:
                self.sleep(DISCOVERY_PAUSE)
        self._discovery_failed_at = self.clock()
        self.last_problem = f"discovery at {url} failed: {problem}"
        raise IssuerUnavailable(_UNAVAILABLE)

    def _get_json(self, url: str) -> Any:
        """GET a JSON document from the issuer; UpstreamError for no answer or an error status."""
        response = self._upstream.send("GET", url, headers={"Accept": "application/json"})
        body = self._upstream.read_body(response)
        if response.status_code != 200:
            raise UpstreamError(f"HTTP {response.status_code}")
        return json.loads(body)


_UNAVAILABLE = "The identity provider cannot be reached to verify the token; try again shortly."


def _signing_key(keys: KeySet, kid: str | None, alg: str) -> Key:
    return keys.get_by_kid(kid, {"alg": alg, "use": "sig"})


def _reason(exc: Exception) -> str:
    if isinstance(exc, UpstreamError):
        return exc.message
    return str(exc) or type(exc).__name__
