"""Static API keys: only their SHA-256 digests are kept, and compared in constant time.

Keys come from AUTH_API_KEYS (comma list) and AUTH_API_KEYS_FILE (one per line; blank lines and
`#` comments ignored), read and checked at start-up by `Settings` (`settings.api_keys`). A key is
known afterwards by its id, `key:` + the first 8 hex digits of its digest: stable, not secret,
and what rate limits and logs see as the subject.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def key_id(digest: bytes) -> str:
    return "key:" + digest.hex()[:8]


def looks_like_jwt(credential: str) -> bool:
    """Three dot-separated parts: a compact JWS, which goes to OIDC rather than the key list."""
    parts = credential.split(".")
    return len(parts) == 3 and all(parts)


class ApiKeys:
    """The accepted keys, as digests; `identify(presented)` answers the key's id or None."""

    def __init__(self, keys: Iterable[str]):
        digests: dict[bytes, str] = {}
        for key in keys:
            digest = hashlib.sha256(key.encode()).digest()
            digests[digest] = key_id(digest)
        self._digests = list(digests.items())

    def __len__(self) -> int:
        return len(self._digests)

    def identify(self, presented: str) -> str | None:
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for known, ident in self._digests:  # every digest is compared: no early exit
            if hmac.compare_digest(digest, known):
                found = ident
        return found
