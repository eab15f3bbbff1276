"""Every error the gateway answers with, and the one handler that renders them.

    GatewayError                      500 internal_error
    ├── InvalidRequest                400 invalid_request_error
    │   ├── UnknownProvider           400   (no such provider)
    │   ├── ProviderNotConfigured     400   (names the env var to set)
    │   └── UnsafePath                400   (proxy path that would leave the provider)
    ├── AuthenticationFailed          401 authentication_error  (+ WWW-Authenticate: Bearer)
    ├── PermissionDenied              403 permission_error
    ├── NotFound                      404 not_found_error
    ├── MethodNotAllowed              405 invalid_request_error
    ├── RequestTimeout                408 invalid_request_error (request not complete in SERVER_READ_TIMEOUT)
    ├── PayloadTooLarge               413 invalid_request_error
    ├── RequestLineTooLong            414 invalid_request_error
    ├── UnsupportedMediaType          415 invalid_request_error
    ├── RateLimited                   429 rate_limit_error
    ├── HeaderFieldsTooLarge          431 invalid_request_error
    ├── Unsupported                   501 unsupported
    ├── ServiceUnavailable            503 service_unavailable
    │   └── ServerShuttingDown        503   (cut at the end of the shutdown grace period)
    └── UpstreamError                 502 upstream_error
        ├── UpstreamUnreachable       502 upstream_unreachable
        ├── UpstreamTimeout           504 upstream_timeout
        └── UpstreamStatus            the provider's own status and body, passed through

The server edge (app/server/) answers malformed HTTP with the same classes, before Flask runs.
Bodies use the OpenAI envelope `{"error": {"message", "type", "code"}}` with
`Content-Type: application/json`, so the `openai` SDKs show the message. Werkzeug's HTTP errors
(404, 405, 413, bad JSON) and uncaught exceptions go through the same handler; an uncaught
exception answers 500 with the request id, its traceback only in the log.

Under a path registered with `shape_errors_under(app, "/v1/messages", anthropic_body)` every
error the app answers, wherever it is raised (the auth guard, the rate limits, validation, an
unknown route below it), takes that API's shape instead: the Anthropic Messages API's clients
read only `{"type": "error", "error": {"type", "message"}}`, with Anthropic's type names
(`ANTHROPIC_TYPES`, by status). A provider's own error (`UpstreamStatus`) still passes through
as it came.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, g, has_request_context, json, request
from werkzeug.exceptions import HTTPException

from app.signals import ERROR_KEY

log = logging.getLogger("gateway.errors")


class GatewayError(Exception):
    status = 500
    type = "internal_error"
    code: str | None = None

    def __init__(self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})

    def envelope(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}

    def summary(self) -> str:
        """One line for the usage ledger's `error` (the console's recent errors): the message."""
        return self.message

    def to_response(self) -> Response:
        response = Response(json.dumps(_shaped(self)), status=self.status, mimetype="application/json")
        response.headers.update(self.headers)
        return response


class InvalidRequest(GatewayError):
    status, type = 400, "invalid_request_error"


class UnknownProvider(InvalidRequest):
    code = "unknown_provider"


class ProviderNotConfigured(InvalidRequest):
    code = "provider_not_configured"


class UnsafePath(InvalidRequest):
    code = "unsafe_path"


class AuthenticationFailed(GatewayError):
    status, type = 401, "authentication_error"

    def __init__(self, message: str = "A valid credential is required.", **kwargs: Any):
        super().__init__(message, **kwargs)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class PermissionDenied(GatewayError):
    status, type = 403, "permission_error"


class NotFound(GatewayError):
    status, type = 404, "not_found_error"


class MethodNotAllowed(GatewayError):
    status, type = 405, "invalid_request_error"


class RequestTimeout(GatewayError):
    status, type, code = 408, "invalid_request_error", "request_timeout"


class PayloadTooLarge(GatewayError):
    status, type = 413, "invalid_request_error"

    @classmethod
    def over(cls, limit: int) -> PayloadTooLarge:
        """The one 413 message (deploy/nginx.conf answers the same text for its own 413)."""
        return cls(f"The request body is larger than SERVER_MAX_REQUEST_BODY_SIZE ({limit} bytes) allows.")


class RequestLineTooLong(GatewayError):
    status, type, code = 414, "invalid_request_error", "request_line_too_long"


class UnsupportedMediaType(GatewayError):
    status, type = 415, "invalid_request_error"


class RateLimited(GatewayError):
    status, type = 429, "rate_limit_error"


class HeaderFieldsTooLarge(GatewayError):
    status, type, code = 431, "invalid_request_error", "request_headers_too_large"


class Unsupported(GatewayError):
    status, type = 501, "unsupported"


class ServiceUnavailable(GatewayError):
    status, type = 503, "service_unavailable"


class ServerShuttingDown(ServiceUnavailable):
    code = "server_shutting_down"


class UpstreamError(GatewayError):
    status, type = 502, "upstream_error"


class UpstreamUnreachable(UpstreamError):
    type = "upstream_unreachable"


class UpstreamTimeout(UpstreamError):
    status, type = 504, "upstream_timeout"


class UpstreamStatus(UpstreamError):
    """The provider answered with an error: its status and body go back as they came."""

    def __init__(self, status: int, body: bytes, content_type: str | None):
        super().__init__(f"provider answered {status}")
        self.status = status
        self.body = body
        self.content_type = content_type or "application/json"

    def summary(self) -> str:
        """"provider answered 429: <the provider's own message>", when its body has one where the
        OpenAI and Anthropic shapes put it (`error.message`, or `error` as a string, or `message`)."""
        try:
            body = json.loads(self.body)
        except ValueError:
            body = None
        found = None
        if isinstance(body, dict):
            error = body.get("error")
            found = error.get("message") if isinstance(error, dict) else error
            found = found if isinstance(found, str) else body.get("message")
        return f"{self.message}: {found}" if isinstance(found, str) and found.strip() else self.message

    def to_response(self) -> Response:
        response = Response(self.body, status=self.status, content_type=self.content_type)
        response.headers.update(self.headers)  # e.g. the provider's Retry-After
        return response


# Anthropic's error type names, by status (its API documents these); others are `api_error`.
ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    405: "invalid_request_error", 408: "timeout_error", 413: "request_too_large", 414: "invalid_request_error",
    415: "invalid_request_error", 429: "rate_limit_error", 431: "invalid_request_error",
    501: "invalid_request_error", 504: "timeout_error",
}
ERROR_SHAPES_KEY = "gateway.error_shapes"
ErrorShape = Callable[[GatewayError], dict[str, Any]]


def anthropic_body(error: GatewayError) -> dict[str, Any]:
    """The error in the Anthropic Messages API's shape."""
    return {"type": "error", "error": {"type": ANTHROPIC_TYPES.get(error.status, "api_error"),
                                       "message": error.message}}


def shape_errors_under(app: Flask, path: str, shape: ErrorShape) -> None:
    """Answer errors on `path` and below it in another API's shape (see the module docstring)."""
    app.extensions.setdefault(ERROR_SHAPES_KEY, {})[path.rstrip("/")] = shape


def _shaped(error: GatewayError) -> dict[str, Any]:
    if has_request_context():
        shapes = current_app.extensions.get(ERROR_SHAPES_KEY)
        if shapes:
            path = request.path
            for prefix, shape in shapes.items():
                if path == prefix or path.startswith(prefix + "/"):
                    return shape(error)
    return error.envelope()


_HTTP_ERRORS: dict[int, type[GatewayError]] = {
    400: InvalidRequest, 404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge,
    415: UnsupportedMediaType,
}
_HTTP_MESSAGES = {
    404: "No route matches {method} {path}.",
    405: "{method} is not allowed on {path}.",
}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(GatewayError)
    def gateway_error(exc: GatewayError) -> Response:
        request.environ[ERROR_KEY] = exc.summary()
        return exc.to_response()

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 413:  # werkzeug's MAX_CONTENT_LENGTH (the worker refuses most bodies first)
            return PayloadTooLarge.over(app.config["MAX_CONTENT_LENGTH"]).to_response()
        template = _HTTP_MESSAGES.get(status)
        message = template.format(method=request.method, path=request.path) if template else (exc.description or exc.name)
        error = _HTTP_ERRORS.get(status, GatewayError)(message)
        error.status = status
        request.environ[ERROR_KEY] = message
        if status == 405 and exc.valid_methods:
            error.headers["Allow"] = ", ".join(exc.valid_methods)
        return error.to_response()

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        request_id = g.get("request_id", "-")
        log.exception("unhandled error on %s %s (request %s)", request.method, request.path, request_id)
        error = GatewayError(f"Internal error; quote request id {request_id} when reporting it.",
                             code="internal_error")
        request.environ[ERROR_KEY] = error.message
        return error.to_response()
