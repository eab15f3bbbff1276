"""The console's pages and the JSON feeds they poll, on the gate's blueprint (gate.py).

    GET  /console/                    -> the providers page
    GET  /console/providers           every deployment's health, with the ledger's last hour
    GET  /console/traffic             rpm, error rate, p50/p95 latency, tpm per minute (charts)
    GET  /console/keys, POST          list and create (the secret is shown once)
    GET  /console/keys/<id>, POST     edit limits, models, budget; POST .../revoke
    GET  /console/usage[.csv]         spend and tokens by day, key or model over a range
    GET  /console/errors              the latest failed requests
    GET  /console/api/{providers,traffic,errors}   what the pages poll (session cookie, same origin)

Keys and usage go through the accounts layer's KeyAdmin (the code of /admin/keys and
/admin/usage); a refusal of it (a bad field, an unknown or revoked key) is shown on the page with
its status. Traffic and errors are the ledger's (traffic.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, current_app, jsonify, redirect, request, url_for

from app.accounts.reports import UsageQuery
from app.console.gate import accounts, bp, console, page
from app.console.key_form import key_fields
from app.console.traffic import Traffic
from app.errors import GatewayError, InvalidRequest
from app.resilience.health import EXTENSION_KEY as HEALTH_KEY
from app.schemas.admin import USAGE_ARGS, load

USAGE_GROUPS = ("day", "key", "model")


def traffic() -> Traffic | None:
    found = accounts()
    return Traffic(found.store.database, console().clock) if found is not None else None


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
