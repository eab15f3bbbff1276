"""/proxy/{provider}/{path}: any method, forwarded to the provider's base URL plus `/path`.

The escape hatch for provider features the unified API does not cover. Path rules live in
`proxy/path.py`, header rules in `proxy/headers.py`, bodies in
`proxy/body.py`; the provider's credential, timeouts and error mapping (502/504) in
`Provider.request`. The provider's status, headers and body come back as it sent them.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import BaseConverter

from app.extensions import state
from app.proxy import headers as proxy_headers
from app.proxy import path as proxy_path
from app.proxy.body import relay, request_body
from app.signals import MODEL_KEY, PROVIDER_KEY

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]

bp = Blueprint("proxy", __name__)


class ProxyTail(BaseConverter):
    """Anything, `//` and an empty tail included, so unsafe paths reach the view and get a clear 400."""

    regex = r"[\s\S]*"
    part_isolating = False


@bp.record_once
def _register_converter(setup: BlueprintSetupState) -> None:
    setup.app.url_map.converters["proxy_tail"] = ProxyTail


@bp.route("/proxy/<provider>/<proxy_tail:tail>", methods=METHODS, merge_slashes=False, provide_automatic_options=False)
def forward(provider: str, tail: str) -> Response:
    # `tail` is percent-decoded (a `%2f` already looks like `/`): the path is re-read from the raw target
    path = proxy_path.upstream_path(request.environ, provider)
    gateway = state()
    target = gateway.providers.lookup(provider)
    request.environ[PROVIDER_KEY] = target.id
    target.require_configured()

    body = request_body(request.stream, length=request.content_length, json_type=request.is_json,
                        chunked="chunked" in request.headers.get("Transfer-Encoding", "").lower(),
                        limit=gateway.settings.server_max_request_body_size)
    if body.model:
        gateway.model_policy.check(f"{target.id}/{body.model}")
        request.environ[MODEL_KEY] = body.model

    query = request.environ.get("QUERY_STRING")
    upstream = target.request(request.method, f"{path}?{query}" if query else path, data=body.data,
                              headers=proxy_headers.to_provider(request.headers.items()), stream=True)

    has_body = request.method != "HEAD" and upstream.status_code not in (204, 304)
    response = Response(relay(target, upstream) if has_body else (), status=upstream.status_code,
                        headers=proxy_headers.to_caller(upstream.raw.headers.items()), direct_passthrough=True)
    if "Content-Type" not in upstream.headers:
        del response.headers["Content-Type"]  # werkzeug's default, which the provider did not send
    elif response.mimetype == "text/event-stream":
        response.headers.setdefault("X-Accel-Buffering", "no")
    response.call_on_close(upstream.close)
    return response
