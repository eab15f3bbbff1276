"""GET /v1/models: the models of every configured provider, or of one with ?provider=.

Without ?provider the providers that failed are left out of the list and named in the
`X-Gateway-Providers-Failed` header (the log says why). With ?provider=X a failure of X is the
answer: 502 unreachable, 504 timeout, or X's own status and body.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from flask.blueprints import BlueprintSetupState

from app.extensions import EXTENSION_KEY as GATEWAY_KEY
from app.extensions import state
from app.providers.model_list import ModelLists, model_lists

FAILED_HEADER = "X-Gateway-Providers-Failed"

bp = Blueprint("models", __name__)


@bp.record_once
def bind_model_lists(setup: BlueprintSetupState) -> None:
    gateway = setup.app.extensions[GATEWAY_KEY]
    ModelLists(gateway.settings, gateway.model_policy).init_app(setup.app)


@bp.get("/v1/models")
def list_models() -> Response:
    providers = state().providers
    provider_id = request.args.get("provider", "").strip().lower()
    if provider_id:
        provider = providers.lookup(provider_id)
        provider.require_configured()
        return jsonify(provider=provider.id, object="list", data=model_lists().one(provider))
    merged = model_lists().every(providers.configured())
    response = jsonify(object="list", data=merged.data)
    if merged.failed:
        response.headers[FAILED_HEADER] = ",".join(merged.failed)
    return response
