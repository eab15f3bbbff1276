"""What one feature tells others, without importing them.

Signals (blinker, as Flask uses) are sent with the Flask app as sender:

    completion_usage   a completion's token usage is known (for streams: when the stream ends)
                       kwargs: provider (id), model (upstream model), usage (dict with
                       prompt_tokens, completion_tokens, total_tokens), subject (str | None),
                       stream (bool)
    tool_called        the model called a tool (client's or MCP)
                       kwargs: provider, model, tool_type ("mcp" | "standard_tool_use"), tool_name

Request facts live in the WSGI environ, so WSGI middleware (access log, metrics) can read them
after the view has returned, streams included:

    PROVIDER_KEY  the provider id the request was routed to
    MODEL_KEY     the model as the provider knows it
    SUBJECT_KEY   the authenticated subject (JWT `sub` or API key id); absent when auth is off
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

completion_usage = _signals.signal("completion-usage")
tool_called = _signals.signal("tool-called")

PROVIDER_KEY = "gateway.provider"
MODEL_KEY = "gateway.model"
SUBJECT_KEY = "gateway.subject"
