"""The routes anyone may call: no credential, no rate limit, no metrics. Said once, here.

    GET /health         the liveness probe (load balancers, orchestrators, the tests' readiness wait)
    GET /health/ready   the readiness probe: 200, or 503 while no provider deployment is usable;
                        it says nothing else (the detail, /health/providers, is protected)

The auth guard, the rate limits and the request observer each ask `is_public(path)`. The match
is on the exact path, never a prefix, so a route added later (`/health/providers` included) is
protected, limited and observed unless it is listed here.
"""

from __future__ import annotations

HEALTH = "/health"
READY = "/health/ready"
PUBLIC_PATHS = frozenset({HEALTH, READY})


def is_public(path: str | None) -> bool:
    return path in PUBLIC_PATHS
