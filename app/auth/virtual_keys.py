"""Virtual keys (`sk-gw-...`, app/accounts) as one more kind of API key for the guard.

The guard asks its static keys first; a key they do not know and that has the virtual-key prefix
is looked up in the worker's key cache (no database round trip). An expired key is refused with
its own reason; a revoked or unknown one is simply not a credential. The subject is
`vkey:<key id>`, which the accounts feature reads to apply the key's models, limits and budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.accounts.key_cache import KeyCache
from app.accounts.store import SECRET_PREFIX
from app.errors import AuthenticationFailed

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers


class VirtualKeyCredentials:
    def __init__(self, cache: KeyCache, wall: Callable[[], float] = time.time):
        self.cache = cache
        self.wall = wall

    def __call__(self, presented: str) -> str | None:
        if not presented.startswith(SECRET_PREFIX):
            return None
        record = self.cache.identify(presented)
        if record is None:
            return None
        if record.expires_at is not None and self.wall() >= record.expires_at:
            raise AuthenticationFailed("the key has expired")
        return record.subject

    def in_headers(self, headers: Headers) -> str:
        """The subject of a virtual key sent as `Authorization: Bearer` or `x-api-key` (while AUTH_ENABLE=false
        the admin API still tells such a key from a wrong one); AuthenticationFailed otherwise."""
        scheme, _, credential = headers.get("Authorization", "").strip(" \t").partition(" ")
        presented = credential.strip(" \t") if scheme.lower() == "bearer" else headers.get("X-Api-Key", "").strip(" \t")
        subject = self(presented) if presented else None
        if subject is None:
            raise AuthenticationFailed("invalid credential")
        return subject
