"""The web console at /console: what the operators of this gateway look at instead of JSON.

    gate.py       the blueprint and its gate: sign-in, CSRF check, idle expiry, security headers
    pages.py      the pages (providers, traffic, keys, usage, errors) and their JSON feeds under
                  /console/api/, which the pages' plain JavaScript polls every few seconds
    session.py    the signed session cookie (secret derived from ADMIN_API_KEY), CSRF, idle expiry
    traffic.py    per-minute traffic, per-deployment latency and error rates, recent errors: from
                  the usage ledger, the table every worker and host writes
    key_form.py   the key form read into the admin API's fields, checked by its schemas
    templates/console/, static/console/   Jinja pages; one CSS file and small JavaScript files
                  (charts drawn on <canvas> by charts.js): no build step, no CDN, nothing vendored

It is on while ADMIN_API_KEY is set, and signing in takes that key; otherwise it is not registered
and /console is a route that does not exist. Keys, usage and traffic come from the accounts layer
(ACCOUNTS_ENABLE=true: KeyAdmin and usage_report, the code of /admin/keys and /admin/usage);
without it those pages say how to turn it on, and the providers page still works (its health is
the /health/providers snapshot). Wrong keys count as failed authentications of the client's
address (AUTH_FAILURE_LIMIT, app/auth/failures.py), in the same storage as the API's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from app.config import Settings
    from app.console.gate import Console


def init_app(app: Flask, settings: Settings) -> Console | None:
    """Register the console when ADMIN_API_KEY is set (after accounts, auth and resilience)."""
    if not settings.admin_api_key.strip():
        return None
    from app.console import pages  # noqa: F401 - the pages' routes, on the gate's blueprint
    from app.console.gate import Console

    console = Console.from_settings(app, settings)
    console.init_app(app)
    return console
