"""The Flask-free core of every model call, and the one layer in front of it.

The views in `app/api/chat.py` validate a body and call `Dispatcher.answer`, which routes and
checks once, opens the call (retries and fallbacks included), then hands over to the plain
relay or the MCP agent loop:

    target = router.target(model, provider_param, bare=...)   # dispatch.py: ?provider, alias, provider/model
    policy.check(...); vision rule                            #   allow/deny lists, ENABLE_VISION, once
    calls = Calls(resilience, routes, strategy=...)           # call.py: the request's targets
    opened = calls.open(endpoint, payload, stream=...)        #   tries until the first bytes are in hand
    environ[PROVIDER_KEY], [UPSTREAM_KEY], [ATTEMPTS_KEY]     #   who served, for logs, metrics, headers
    answer = passthrough(opened, endpoint, payload, meter)    # passthrough.py: answer as the provider did
          or tool_loop.answer(agent, calls, payload, ...)     # tool_loop.py: the MCP agent loop

Under both paths (call.py):

    response = open_response(route, endpoint, payload, stream=...)   # ONE try: THE place a call is opened
    opened = open_once(route, ...)                                   # + a whole body, or a stream's first event
    data = complete(calls, endpoint, payload, meter_for)             # non-stream -> parsed JSON
    for event in stream_events(calls, endpoint, payload, meter_for): ...  # stream -> parsed events

    endpoints.py  every model-calling endpoint as data plus small strategies (where the provider
                  serves it, how the upstream request is written, whether it streams, where usage
                  and images are, how a failed stream ends, a bare-model rule); `upstream_request`
                  builds the call `open_response` sends
    body.py       the upstream JSON body for a route: the model rewritten, `stream_options` asked for
    usage.py      the Meter and each API's UsageFormat (OpenAI, media, Responses, Anthropic)
    multipart.py  an upload scanned for its fields and passed on from the spool, model rewritten
    stored.py     kept responses (GET/DELETE /v1/responses/{id}): the provider that keeps them
    tap.py        the stream tap: reads usage and tool calls from relayed events, hides the
                  usage-only chunk the client did not ask for, closes the provider response
    estimate.py   the usage charged when a call's own never arrives (a cut stream), marked estimated
    answer.py     `Answer`: status, content type and body (bytes, an event stream, a file) for the view

Nothing here imports Flask or reads `current_app`/`request`: the app (the signals' sender), the
WSGI environ and the query's provider come in as arguments. Nothing reaches the client before
`Calls.open` returns, so app/resilience retries and falls back inside it (the first-byte
contract: README, "Deployments, aliases, retries and fallbacks").
"""
