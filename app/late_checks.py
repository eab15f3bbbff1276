"""A check sent before the view runs and waited for only where the view first calls out.

    @bp.post("/v1/chat/completions")
    @settles_late                        # the view calls `settle` before it calls out
    def chat_completions(): ...

    late_checks.defer(environ, check)    # a before_request hook: `check()` waits, raises a refusal
    late_checks.settle(environ)          # the view, before any provider or MCP server is called

The rate limits' count (app/rate_limits.py) is the one user: its script goes to Redis as the
request starts, and its answer is waited for only once the view has parsed the body, routed the
model and checked it (`Dispatcher.answer` settles before any model call or MCP tool), so the
round trip to Redis runs alongside that work instead of before it. What a user can tell is only
the time: nothing reaches a provider or an MCP server before the count is answered, a request
over its limit never does, and what is counted in Redis is counted before anything is served.

Only a view marked `settles_late` gets this, and only for a body of at most MAX_BODY bytes
(`small_body`): a client over its limit that sends big bodies has them refused before they are
parsed. Every other request reaches its view once the check is made. The mark also settles what
is left when the view ends, on success or on error, before Flask handles its answer: a refusal
(429, 503) replaces the view's own error (a 400 for a bad body, say), as it would had the check
come first, and is rendered by the blueprint's error handlers like any error.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import request

KEY = "gateway.late_check"
MAX_BODY = 64 * 1024  # a chat request of a few pages; a bigger one costs more to parse than the round trip


def settles_late(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark `view` as one that settles a deferred check before it calls out (see the module docstring)."""
    @wraps(view)
    def marked(*args: Any, **kwargs: Any) -> Any:
        try:
            answer = view(*args, **kwargs)
        except Exception:
            settle(request.environ)  # a refusal wins over the view's own error
            raise
        settle(request.environ)
        return answer

    marked.settles_late = True  # type: ignore[attr-defined]
    return marked


def allows_late(view: Callable[..., Any] | None) -> bool:
    return getattr(view, "settles_late", False)


def small_body(environ: dict[str, Any]) -> bool:
    """A body of known length (not chunked) of at most MAX_BODY bytes."""
    length = environ.get("CONTENT_LENGTH")
    return bool(length) and length.isdigit() and int(length) <= MAX_BODY


def defer(environ: dict[str, Any], check: Callable[[], None]) -> None:
    environ[KEY] = check


def settle(environ: dict[str, Any]) -> None:
    """Wait for the deferred check, if any is left: it raises the request's refusal, if any."""
    check = environ.pop(KEY, None)
    if check is not None:
        check()
