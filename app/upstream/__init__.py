"""The outbound layer: every call the gateway makes to another server goes through here.

    providers, /proxy ─┐
    OIDC issuer ───────┼─> Upstream (transport.py) ──> session (sessions.py) ──> proxy? ──> server
    MCP servers ───────┘      │ send / iter_body / read_body, the exception map (502 / 504)
                              ├─ Deadline (deadline.py): connect + send + headers as one bound
                              ├─ arrived (arrived.py): chunks already here handed on as one piece
                              └─ UpstreamClock (clock.py): time spent waiting, for telemetry

    sessions.py   the one session factory: pool sized from WORKER_CONNECTIONS, TLS minimum, no
                  cookies, no environment or .netrc at request time
    proxies.py    HTTPS_PROXY / HTTP_PROXY / NO_PROXY, read once, chosen once per target (Go's rules)
    transport.py  `Upstream`: one server's session, proxy, timeouts and fixed headers; sending and
                  reading, and turning requests/urllib3 failures into GatewayErrors
    deadline.py   an overall deadline that works in the gevent worker and in plain threads
    clock.py      the upstream clock (Server-Timing) and `waiting_for_providers`
    sse.py        reading server-sent events from a byte stream (providers and MCP alike)
    arrived.py    a chunked body read as it arrives, the chunks already in joined (never waits)

`sessions.build_upstream(settings, name, base_url, ...)` makes an `Upstream` the standard way;
providers, the OIDC verifier and the MCP client each call it once per server at start-up.
"""
