"""The Flask-free core of every model call, and the one layer in front of it.

The views in `app/api/chat.py` validate a body and call `Dispatcher.answer`, which routes and
checks once, then hands over to the plain relay or the MCP agent loop:

    route = resolve(model, provider_param, providers)         # dispatch.py: provider/model, ?provider
    environ[PROVIDER_KEY], environ[MODEL_KEY] = ...           #   request facts for logs and metrics
    policy.check(route.model_id); vision rule                 #   allow/deny lists, ENABLE_VISION, once
    meter = Meter(app, route, subject=..., stream=...)        # usage.py: usage and tool-call signals
    answer = passthrough(route, endpoint, payload, meter)     # passthrough.py: answer as the provider did
          or tool_loop.answer(agent, route, payload, ...)     # tool_loop.py: the MCP agent loop

Under both paths (call.py):

    response = open_response(route, endpoint, payload, stream=...)   # THE place a call is opened
    data = complete(route, endpoint, payload, meter)                 # non-stream -> parsed JSON
    for event in stream_events(route, endpoint, payload, meter): ... # stream -> parsed events

    endpoints.py  CHAT, COMPLETIONS, EMBEDDINGS as data plus small strategies (where the provider
                  serves it, whether it streams, where usage and images are)
    body.py       the upstream body for a route: the model rewritten, `stream_options` asked for
    tap.py        the stream tap: reads usage and tool calls from relayed events, hides the
                  usage-only chunk the client did not ask for, closes the provider response
    estimate.py   the usage charged when a call's own never arrives (a cut stream), marked estimated
    answer.py     `Answer`: status, content type and body (bytes or an event stream) for the view

Nothing here imports Flask or reads `current_app`/`request`: the app (the signals' sender), the
WSGI environ and the query's provider come in as arguments. `open_response` raises before any
byte reached the client, so a retry or fallback policy can wrap it and call it again for
another route.
"""
