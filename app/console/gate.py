"""The console's blueprint and its gate: who may see the pages, and signing in and out.

    Console        the feature: the admin key, the failed-authentication counter, the sessions,
                   CONSOLE_IDLE_TIMEOUT and the clock (tests move it); app.extensions["gateway.console"]
    gate           before every request of the blueprint but its static files: signed in and not
                   idle for longer than CONSOLE_IDLE_TIMEOUT, else the sign-in page (a feed under
                   /console/api/ answers 401 JSON, and its page's script goes to the sign-in page);
                   every POST carries the session's CSRF token (form field `csrf_token`, or the
                   X-CSRF-Token header)
    secure_headers every answer forbids framing, caching, and any script or style that is not one
                   of the console's own files (Content-Security-Policy)
    GET/POST /console/sign-in, POST /console/sign-out

The pages themselves are in pages.py, on the same blueprint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, jsonify, redirect, render_template, request, session, url_for

from app.auth import failures as auth_failures
from app.auth.admin_key import AdminKey
from app.auth.failures import AuthFailures
from app.client_address import ClientAddress
from app.config import Settings
from app.console.session import CSRF_FIELD, CSRF_HEADER, ConsoleSessions, Visit
from app.errors import GatewayError
from app.limit_storage import storage_breaker

if TYPE_CHECKING:
    from app.accounts.feature import Accounts

ACCOUNTS_KEY = "gateway.accounts"  # app.accounts.feature.EXTENSION_KEY, without importing SQLAlchemy here

EXTENSION_KEY = "gateway.console"
OPEN_ENDPOINTS = frozenset({"console.sign_in", "console.static"})
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static/console", static_url_path="/static")


class Console:
    def __init__(self, admin_key: AdminKey, failures: AuthFailures | None, client_address: ClientAddress,
                 sessions: ConsoleSessions, *, idle_timeout: float, clock: Callable[[], float] = time.time):
        self.admin_key = admin_key
        self.failures = failures
        self.client_address = client_address
        self.sessions = sessions
        self.idle_timeout = idle_timeout
        self.clock = clock  # tests move it to expire a session

    @classmethod
    def from_settings(cls, app: Flask, settings: Settings) -> Console:
        failures = app.extensions.get(auth_failures.EXTENSION_KEY)
        if failures is None and settings.auth_failure_limit.strip():
            # no hook of its own: the console counts and refuses explicitly, in the API's storage
            failures = AuthFailures.from_settings(settings, storage_breaker(app, float(settings.rate_limit_storage_backoff)))
        client_address = ClientAddress(settings.trusted_proxies)
        return cls(AdminKey(settings.admin_api_key, None), failures, client_address,
                   ConsoleSessions(settings.admin_api_key, client_address),
                   idle_timeout=float(settings.console_idle_timeout))

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self
        app.session_interface = self.sessions
        app.register_blueprint(bp)

    def visit(self) -> Visit:
        return Visit(session, self.clock, self.idle_timeout)


def console() -> Console:
    return current_app.extensions[EXTENSION_KEY]


def accounts() -> Accounts | None:
    """The accounts feature (keys, usage, the ledger), or None with ACCOUNTS_ENABLE=false."""
    return current_app.extensions.get(ACCOUNTS_KEY)


def page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(f"console/{template}", csrf_token=console().visit().csrf_token(),
                           accounts_on=accounts() is not None, **context), status


# -- the gate -------------------------------------------------------------------------------------
@bp.before_request
def gate() -> Any:
    if request.endpoint == "console.static":
        return None
    visit = console().visit()
    feed = request.path.startswith("/console/api/")
    expired = visit.expired()
    if request.endpoint not in OPEN_ENDPOINTS and not visit.signed_in:
        if feed:
            return jsonify(error={"message": "Sign in to the console again.", "type": "authentication_error",
                                  "code": "console_signed_out"}), 401
        return redirect(url_for("console.sign_in", expired="1" if expired else None,
                                next=request.full_path.rstrip("?") if request.method == "GET" else None))
    if request.method == "POST" and not visit.csrf_ok(request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)):
        return page("refused.html", 403, message="This form is out of date or did not come from this console. "
                                                 "Reload the page and send it again.")
    if visit.signed_in and not feed:
        visit.touch()
    return None


@bp.after_request
def secure_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


# -- signing in and out ----------------------------------------------------------------------------
def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/console/") and "\\" not in target:
            return target.rstrip("?")
    return url_for("console.providers")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    visit = console().visit()
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        if visit.signed_in:
            return redirect(target)
        return page("sign_in.html", next=target, expired=request.args.get("expired") == "1")
    refused = SignIn(console()).attempt(request.form.get("key", ""))
    if refused is not None:
        return refused
    visit.sign_in()
    return redirect(target)


class SignIn:
    """One attempt: refused while the address is blocked (429), counted when wrong (401)."""

    def __init__(self, console: Console):
        self.console = console
        self.address = console.client_address.counted(request.environ)

    def attempt(self, key: str) -> Any:
        failures = self.console.failures
        try:
            if failures is not None:
                failures.refuse_address(self.address)
        except GatewayError as exc:
            body, status = page("sign_in.html", exc.status, error=exc.message, next=safe_next(request.form.get("next")))
            return Response(body, status, headers=exc.headers)
        if self.console.admin_key.matches(key):
            return None
        if failures is not None:
            failures.count_address(self.address)
        return page("sign_in.html", 401, error="That is not the admin key (ADMIN_API_KEY).",
                    next=safe_next(request.form.get("next")))


@bp.post("/sign-out")
def sign_out() -> Any:
    console().visit().sign_out()
    return redirect(url_for("console.sign_in"))
