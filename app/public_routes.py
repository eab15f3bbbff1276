"""The routes anyone may call: no credential, no rate limit, no metrics. Said once, here.

    GET /health   the liveness probe (load balancers, orchestrators, the tests' readiness wait)

The auth guard, the rate limits and the request observer each ask `is_public(path)`. The match
is on the exact path, never a prefix, so a route added later (`/health/providers` included) is
protected, limited and observed unless it is listed here.
"""

from __future__ import annotations

HEALTH = "/health"
PUBLIC_PATHS = frozenset({HEALTH})


def is_public(path: str | None) -> bool:
    return path in PUBLIC_PATHS
