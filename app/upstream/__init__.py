"""The outbound layer: every call the gateway makes to another server (providers, OIDC, MCP).

    transport.py   sessions, sending, reading bodies; the one exception map (502 / 504)
    sse.py         reading server-sent events from a byte stream
"""
