"""The admin API, `/admin/...`, only with `Authorization: Bearer $ADMIN_API_KEY` (app/auth/admin_key.py).

    POST   /admin/keys          create a key; its secret is in this answer only
    GET    /admin/keys          every key (revoked ones too, with their status)
    GET    /admin/keys/<id>     one key, with its spend
    PATCH  /admin/keys/<id>     change name, owner, models, rpm, tpm, budget_usd, budget_period,
                                expires_at, metadata (null clears)
    DELETE /admin/keys/<id>     revoke (takes effect on every worker and host within 2 s)
    GET    /admin/usage         ?key=&model=&from=&to=&group_by=key|model|day&limit= ; JSON, or CSV
                                with `Accept: text/csv`

Registered only with ACCOUNTS_ENABLE=true. The guard leaves this blueprint to its own check.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from app.accounts.feature import accounts
from app.accounts.reports import UsageQuery
from app.schemas import json_object
from app.schemas.admin import KEY_CHANGES, NEW_KEY, USAGE_ARGS, load

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def require_admin_key() -> None:
    accounts().admin_key.check(request.headers)


@bp.post("/keys")
def create_key() -> tuple[Response, int]:
    return jsonify(accounts().admin.create(load(NEW_KEY, json_object(request)))), 201


@bp.get("/keys")
def list_keys() -> Response:
    return jsonify(object="list", data=accounts().admin.list())


@bp.get("/keys/<key_id>")
def get_key(key_id: str) -> Response:
    return jsonify(accounts().admin.get(key_id))


@bp.patch("/keys/<key_id>")
def change_key(key_id: str) -> Response:
    return jsonify(accounts().admin.update(key_id, load(KEY_CHANGES, json_object(request))))


@bp.delete("/keys/<key_id>")
def revoke_key(key_id: str) -> Response:
    return jsonify(accounts().admin.revoke(key_id))


@bp.get("/usage")
def usage() -> Response:
    report = accounts().admin.usage(UsageQuery(**load(USAGE_ARGS, request.args.to_dict())))
    if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
        return Response(report.csv(), mimetype="text/csv")
    return jsonify(object="usage", data=report.rows, totals=report.totals)
