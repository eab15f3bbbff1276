"""/proxy/{provider}/{path}: any method, forwarded to the provider's base URL plus `/path`.

The escape hatch for provider features the unified API does not cover. The rules (path,
headers, body, the relay) live in `app.proxy`; this view only sends back what it forwarded.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import BaseConverter

from app.extensions import state
from app.proxy.relay import forward

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]

bp = Blueprint("proxy", __name__)


class ProxyTail(BaseConverter):
    """Anything, `//` and an empty tail included, so unsafe paths reach the view and get a clear 400."""

    regex = r"[\s\S]*"
    part_isolating = False


class ProxyResponse(Response):
    default_mimetype = None  # no Content-Type unless the provider sent one


@bp.record_once
def _register_converter(setup: BlueprintSetupState) -> None:
    setup.app.url_map.converters["proxy_tail"] = ProxyTail


@bp.route("/proxy/<provider>/<proxy_tail:tail>", methods=METHODS, merge_slashes=False, provide_automatic_options=False)
def proxy(provider: str, tail: str) -> Response:
    gateway = state()
    forwarded = forward(gateway.providers, gateway.model_policy, provider, request,
                        body_limit=gateway.settings.server_max_request_body_size)
    response = ProxyResponse(forwarded.body, status=forwarded.status, headers=forwarded.headers,
                             direct_passthrough=True)
    response.call_on_close(forwarded.close)
    return response
