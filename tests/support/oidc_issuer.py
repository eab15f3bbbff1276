"""A real OIDC issuer on 127.0.0.1 for tests: discovery, a JWKS, and tokens signed with its keys.

It serves `/.well-known/openid-configuration` and `/jwks` over HTTP, counts every request by
path, signs tokens with the keys it generates (RSA for RS*/PS*, EC P-256/P-384/P-521 for
ES256/384/512, OKP Ed25519 for EdDSA), rotates keys, and can be stopped and started again on the
same port (to play an issuer that is down, then up).
`reserve()` takes a port without listening on it (connections are refused) for an issuer that
is down from the start; `host` names it in its URL (e.g. a name only a test proxy resolves).

    issuer = OidcIssuer(audience="gateway").start()
    token = issuer.token(sub="alice")                 # RS256 with the current key
    issuer.token(kid=issuer.add_key("EC"))             # ES256
    issuer.token(kid=issuer.add_key("RSA"), alg="PS384")   # any algorithm the key type allows
    issuer.token(kid=issuer.key_for("ES512"), alg="ES512") # a served key made for that algorithm
    issuer.rotate()                                     # a new key replaces the served ones
    issuer.hits("/jwks")
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

# The key kind (for `OidcIssuer.add_key`) each algorithm signs with, and each kind's usual algorithm.
KIND_FOR = {"RS256": "RSA", "RS384": "RSA", "RS512": "RSA", "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
            "ES256": "EC", "ES384": "EC-P384", "ES512": "EC-P521", "EdDSA": "OKP", "Ed25519": "OKP"}
DEFAULT_ALG = {"RSA": "RS256", "EC": "ES256", "EC-P384": "ES384", "EC-P521": "ES512", "OKP": "EdDSA"}
DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks"


def b64url(data: bytes | dict) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A JWT with whatever header and signature a test wants (alg none, forgeries)."""
    return f"{b64url(header)}.{b64url(claims)}.{b64url(signature)}"


def hs256_token(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = f"{b64url(header)}.{b64url(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


class _Server(ThreadingHTTPServer):
    """Remembers its open connections, so that stopping it really cuts keep-alive clients off."""

    daemon_threads = True

    def __init__(self, *args: Any):
        self.connections: set[socket.socket] = set()
        super().__init__(*args)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        for connection in list(self.connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class OidcIssuer:
    def __init__(self, audience: str = "gateway-tests", port: int = 0, host: str = "127.0.0.1"):
        self.audience = audience
        self.port = port
        self.host = host
        self._reserved: socket.socket | None = None
        self.keys: dict[str, RSAKey | ECKey | OKPKey] = {}
        self.kinds: dict[str, str] = {}
        self.served: list[str] = []  # kids published in the JWKS
        self.counts: Counter[str] = Counter()
        self.discovery_overrides: dict[str, Any] = {}
        self.jwks_status = 200  # set to e.g. 500 to play an issuer whose JWKS endpoint fails
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self.current_kid = self.add_key("RSA")

    # -- keys and tokens --------------------------------------------------------------------
    def add_key(self, kind: str = "RSA", *, serve: bool = True) -> str:
        """A new key: "RSA" (2048 bits), "EC" (P-256), "EC-P384", "EC-P521" or "OKP" (Ed25519)."""
        kid = f"{kind.lower()}-{len(self.keys) + 1}"
        parameters = {"kid": kid, "use": "sig"}
        if kind == "RSA":
            key: RSAKey | ECKey | OKPKey = RSAKey.generate_key(2048, parameters=parameters)
        elif kind == "OKP":
            key = OKPKey.generate_key("Ed25519", parameters=parameters)
        else:
            key = ECKey.generate_key({"EC": "P-256", "EC-P384": "P-384", "EC-P521": "P-521"}[kind], parameters=parameters)
        self.keys[kid] = key
        self.kinds[kid] = kind
        if serve:
            self.served.append(kid)
        return kid

    def key_for(self, alg: str) -> str:
        """A served key of the kind `alg` signs with (made now if there is none)."""
        kind = KIND_FOR[alg]
        return next((kid for kid in self.served if self.kinds[kid] == kind), None) or self.add_key(kind)

    def rotate(self, kind: str = "RSA") -> str:
        """A new current key; the JWKS serves only it from now on."""
        kid = self.add_key(kind, serve=False)
        self.served = [kid]
        self.current_kid = kid
        return kid

    def public_jwk(self, kid: str) -> dict[str, Any]:
        return self.keys[kid].as_dict(private=False)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "aud": self.audience, "sub": "alice", "iat": now, "nbf": now, "exp": now + 300}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, *, kid: str | None = None, alg: str | None = None, header: dict[str, Any] | None = None,
              **claims: Any) -> str:
        """A token signed by the issuer's key `kid` (default: current) with `alg` (default: the key
        kind's first: RS256, ES256, ES384, ES512, EdDSA); claims override the defaults."""
        kid = kid or self.current_kid
        alg = alg or DEFAULT_ALG[self.kinds[kid]]
        return jwt.encode({"alg": alg, "kid": kid, "typ": "JWT", **(header or {})}, self.claims(**claims),
                          self.keys[kid], algorithms=[alg])

    # -- the HTTP server --------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def hits(self, path: str) -> int:
        with self._lock:
            return self.counts[path]

    def start(self) -> OidcIssuer:
        issuer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with issuer._lock:
                    issuer.counts[path] += 1
                if path == DISCOVERY_PATH:
                    self._json(200, {"issuer": issuer.url, "jwks_uri": issuer.url + JWKS_PATH,
                                     "id_token_signing_alg_values_supported": sorted(KIND_FOR),
                                     **issuer.discovery_overrides})
                elif path == JWKS_PATH and issuer.jwks_status != 200:
                    self._json(issuer.jwks_status, {"error": "unavailable"})
                elif path == JWKS_PATH:
                    self._json(200, {"keys": [issuer.public_jwk(kid) for kid in list(issuer.served)]})
                else:
                    self._json(404, {"error": "not found"})

            def _json(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        if self._reserved is not None:  # listen on the reserved socket itself: no gap another bind could use
            self._server = _Server(("127.0.0.1", self.port), _Handler, False)
            self._server.socket.close()
            self._server.socket, self._reserved = self._reserved, None
            self._server.server_address = self._server.socket.getsockname()
            self._server.server_activate()
        else:
            self._server = _Server(("127.0.0.1", self.port), _Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def reserve(self) -> OidcIssuer:
        """Hold a port without listening (connections to it are refused) until `start()`."""
        self._reserved = socket.socket()
        self._reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._reserved.bind(("127.0.0.1", self.port))
        self.port = self._reserved.getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            self._server = None
