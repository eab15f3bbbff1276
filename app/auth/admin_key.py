"""The admin API's credential: `Authorization: Bearer $ADMIN_API_KEY`, nothing else.

    AdminKey(secret, ordinary).check(headers)
    AdminKey(secret, None).matches(text)   # the console's sign-in form

- ADMIN_API_KEY empty: 403 `admin_api_disabled`, saying how to turn it on.
- no credential, or one nobody knows: 401 (as the guard answers).
- a valid ordinary credential (a static or virtual key, an OIDC token): 403 — it authenticates,
  but it is not the admin key.

The admin key is compared as a SHA-256 digest in constant time. It is not an ordinary credential:
the guard does not know it, so it cannot call models unless it is also listed in AUTH_API_KEYS.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from werkzeug.datastructures import Headers

from app.errors import AuthenticationFailed, GatewayError, PermissionDenied


class AdminKey:
    def __init__(self, secret: str, ordinary: Callable[[Headers], object] | None):
        """`ordinary(headers)` authenticates a non-admin credential (raising when it is not valid)."""
        self.digest = hashlib.sha256(secret.strip().encode()).digest() if secret.strip() else None
        self.ordinary = ordinary

    def matches(self, presented: str) -> bool:
        """Whether `presented` (spaces and tabs around it ignored) is the admin key: SHA-256 digests
        compared in constant time, so the time taken tells nothing of how much of it was right.
        Also the web console's sign-in (app/console/)."""
        presented = presented.strip(" \t")
        if self.digest is None or not presented:
            return False
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self.digest)

    def check(self, headers: Headers) -> None:
        if self.digest is None:
            raise PermissionDenied("The admin API is off: set ADMIN_API_KEY (at least 16 characters) to turn it on.",
                                   code="admin_api_disabled")
        authorization = headers.get("Authorization")
        if authorization is None and not headers.get("X-Api-Key"):
            raise AuthenticationFailed("missing credential: the admin API takes Authorization: Bearer <ADMIN_API_KEY>")
        scheme, _, credential = (authorization or "").strip(" \t").partition(" ")
        if scheme.lower() == "bearer" and self.matches(credential):
            return
        if self.ordinary is not None:
            try:
                self.ordinary(headers)
            except GatewayError:
                pass
            else:
                raise PermissionDenied("This credential is valid but is not the admin key: the admin API takes "
                                       "Authorization: Bearer <ADMIN_API_KEY>.", code="admin_key_required")
        raise AuthenticationFailed("invalid credential")
