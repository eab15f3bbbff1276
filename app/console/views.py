"""The console's blueprint: the gate every request passes, the pages and their JSON feeds.

    GET  /console/                    -> the providers page
    GET  /console/sign-in, POST       the admin key, once; wrong keys are failed authentications
    POST /console/sign-out
    GET  /console/providers           every deployment's health, with the ledger's last hour
    GET  /console/traffic             rpm, error rate, p50/p95 latency, tpm per minute (charts)
    GET  /console/keys, POST          list and create (the secret is shown once)
    GET  /console/keys/<id>, POST     edit limits, models, budget; POST .../revoke
    GET  /console/usage[.csv]         spend and tokens by key, model or day over a range
    GET  /console/errors              the latest failed requests
    GET  /console/api/{providers,traffic,errors}   what the pages poll (session cookie + same origin)

The gate (`Console.gate`, before every request of the blueprint but its static files): signed
in and not idle for longer than CONSOLE_IDLE_TIMEOUT, else the sign-in page (a feed answers 401
JSON, and its page sends the operator there); every POST carries the session's CSRF token (form
field `csrf_token`, or the X-CSRF-Token header). Every answer forbids framing, caching and any
script or style that is not the console's own file (Content-Security-Policy).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from app.accounts.reports import UsageQuery
from app.auth import failures as auth_failures
from app.auth.admin_key import AdminKey
from app.auth.failures import AuthFailures
from app.client_address import ClientAddress
from app.config import Settings
from app.console.key_form import key_fields
from app.console.session import CSRF_FIELD, CSRF_HEADER, ConsoleSessions, Visit
from app.console.traffic import Traffic
from app.errors import GatewayError, InvalidRequest
from app.limit_storage import storage_breaker
from app.resilience.health import EXTENSION_KEY as HEALTH_KEY

EXTENSION_KEY = "gateway.console"
OPEN_ENDPOINTS = frozenset({"console.sign_in", "console.static"})
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
USAGE_GROUPS = ("day", "key", "model")

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


def accounts() -> Any | None:
    """The accounts feature (keys, usage, the ledger), or None with ACCOUNTS_ENABLE=false."""
    from app.accounts.feature import EXTENSION_KEY as ACCOUNTS_KEY

    return current_app.extensions.get(ACCOUNTS_KEY)


def traffic() -> Traffic | None:
    found = accounts()
    return Traffic(found.store.database, console().clock) if found is not None else None


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


# -- providers -------------------------------------------------------------------------------------
def providers_view() -> dict[str, Any]:
    """The /health/providers snapshot, each deployment with the ledger's last hour beside it."""
    snapshot = current_app.extensions[HEALTH_KEY].snapshot()
    ledger = traffic()
    hour = ledger.by_deployment() if ledger is not None else {}
    for entry in snapshot["data"]:
        entry["last_hour"] = hour.get(entry["id"])
    return snapshot


@bp.get("/")
def home() -> Any:
    return redirect(url_for("console.providers"))


@bp.get("/providers")
def providers() -> Any:
    return page("providers.html", snapshot=providers_view())


@bp.get("/api/providers")
def providers_feed() -> Response:
    return jsonify(providers_view())


# -- traffic ---------------------------------------------------------------------------------------
def traffic_filters() -> dict[str, str | None]:
    return {"provider": request.args.get("provider") or None, "model": request.args.get("model") or None}


@bp.get("/traffic")
def traffic_page() -> Any:
    ledger = traffic()
    if ledger is None:
        return page("needs_accounts.html", what="Traffic")
    return page("traffic.html", hour=ledger.last_hour(**traffic_filters()))


@bp.get("/api/traffic")
def traffic_feed() -> Any:
    ledger = traffic()
    if ledger is None:
        return InvalidRequest("Traffic needs ACCOUNTS_ENABLE=true.", code="accounts_disabled").to_response()
    return jsonify(ledger.last_hour(**traffic_filters()))


# -- keys ------------------------------------------------------------------------------------------
@bp.get("/keys")
def keys() -> Any:
    found = accounts()
    if found is None:
        return page("needs_accounts.html", what="Keys")
    return page("keys.html", keys=found.admin.list())


@bp.post("/keys")
def create_key() -> Any:
    found = accounts()
    if found is None:
        return page("needs_accounts.html", what="Keys")
    try:
        created = found.admin.create(key_fields(request.form, new=True))
    except GatewayError as exc:
        return page("keys.html", exc.status, keys=found.admin.list(), error=exc.message, form=request.form)
    return page("key_created.html", key=created)  # the only time its secret is shown


@bp.get("/keys/<key_id>")
def key(key_id: str) -> Any:
    found = accounts()
    if found is None:
        return page("needs_accounts.html", what="Keys")
    try:
        return page("key.html", key=found.admin.get(key_id))
    except GatewayError as exc:
        return page("refused.html", exc.status, message=exc.message)


@bp.post("/keys/<key_id>")
def change_key(key_id: str) -> Any:
    found = accounts()
    if found is None:
        return page("needs_accounts.html", what="Keys")
    try:
        found.admin.update(key_id, key_fields(request.form, new=False))
    except GatewayError as exc:
        try:
            current = found.admin.get(key_id)
        except GatewayError:
            return page("refused.html", exc.status, message=exc.message)
        return page("key.html", exc.status, key=current, error=exc.message, form=request.form)
    return redirect(url_for("console.keys", changed=key_id))


@bp.post("/keys/<key_id>/revoke")
def revoke_key(key_id: str) -> Any:
    found = accounts()
    if found is None:
        return page("needs_accounts.html", what="Keys")
    try:
        found.admin.revoke(key_id)
    except GatewayError as exc:
        return page("refused.html", exc.status, message=exc.message)
    return redirect(url_for("console.keys", revoked=key_id))


# -- usage -----------------------------------------------------------------------------------------
def usage_query() -> tuple[UsageQuery, dict[str, str]]:
    """The range and grouping from the query string (the last 30 days by day when none is given)."""
    from app.schemas.admin import USAGE_ARGS, load

    today = datetime.now(UTC).date()
    chosen = {"from": request.args.get("from") or (today - timedelta(days=29)).isoformat(),
              "to": request.args.get("to") or today.isoformat(),
              "group_by": request.args.get("group_by") or "day"}
    if chosen["group_by"] not in USAGE_GROUPS:
        raise InvalidRequest("Invalid request: group_by: must be day, key or model.", code="invalid_request")
    fields = load(USAGE_ARGS, {"from": chosen["from"], "to": chosen["to"], "group_by": chosen["group_by"]})
    if len(chosen["to"]) == 10:  # a date: the range includes that whole day
        fields["until"] = fields["until"] + timedelta(days=1)
    return UsageQuery(**fields), chosen


@bp.get("/usage")
def usage() -> Any:
    found = accounts()
    if found is None:
        return page("needs_accounts.html", what="Usage")
    try:
        query, chosen = usage_query()
    except GatewayError as exc:
        return page("usage.html", exc.status, error=exc.message, report=None, chosen=request.args.to_dict())
    report = found.admin.usage(query)
    return page("usage.html", report=report, chosen=chosen, labels=usage_labels(report.rows, chosen["group_by"]))


def usage_labels(rows: list[dict[str, Any]], group: str) -> list[str]:
    """What names each row of a grouped report: its day, its key (or subject), its provider/model."""
    if group == "day":
        return [row["day"] for row in rows]
    if group == "key":
        return [row["key_name"] or row["subject"] or "no key" for row in rows]
    return [f"{row['provider'] or '?'}/{row['model'] or '?'}" for row in rows]


@bp.get("/usage.csv")
def usage_csv() -> Any:
    found = accounts()
    if found is None:
        return page("needs_accounts.html", what="Usage")
    try:
        query, chosen = usage_query()
    except GatewayError as exc:
        return exc.to_response()
    name = f"usage-{chosen['group_by']}-{chosen['from']}-{chosen['to']}.csv".replace(":", "")
    return Response(found.admin.usage(query).csv(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# -- recent errors ---------------------------------------------------------------------------------
@bp.get("/errors")
def errors() -> Any:
    ledger = traffic()
    if ledger is None:
        return page("needs_accounts.html", what="Recent errors")
    return page("errors.html", errors=ledger.recent_errors())


@bp.get("/api/errors")
def errors_feed() -> Any:
    ledger = traffic()
    if ledger is None:
        return InvalidRequest("Recent errors need ACCOUNTS_ENABLE=true.", code="accounts_disabled").to_response()
    return jsonify(object="list", data=ledger.recent_errors())
