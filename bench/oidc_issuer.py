"""A real local OIDC issuer for the `oidc` benchmark target: discovery, a JWKS, one RS256 token.

    python bench/oidc_issuer.py AUDIENCE       (with the gateway's python: it needs joserfc)

Reuses the test suite's issuer (tests/support/oidc_issuer.py), listens on a free port on
127.0.0.1, prints one JSON line `{"url": ..., "token": ...}` (a token for subject `bench`,
valid for a day, minted once) and serves until stdin closes or SIGTERM arrives. The runner
starts it, reads the line, and stops it at the end.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.oidc_issuer import OidcIssuer

TOKEN_LIFETIME_S = 24 * 3600


def main() -> int:
    audience = sys.argv[1] if len(sys.argv) > 1 else "inference-gateway-client"
    issuer = OidcIssuer(audience=audience).start()
    token = issuer.token(sub="bench", exp=int(time.time()) + TOKEN_LIFETIME_S)
    print(json.dumps({"url": issuer.url, "token": token}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        sys.stdin.read()  # until the runner closes our stdin (or is gone)
    finally:
        issuer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
