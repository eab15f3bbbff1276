"""The ceiling of this stack: the least a Flask + requests + gunicorn/gevent passthrough can do.

    MINIMAL_UPSTREAM=http://127.0.0.1:9900/v1 gunicorn -k gevent -w 2 minimal:app   (from bench/)

Forwards POST /v1/chat/completions as sent; streams are relayed chunk by chunk. Same pool size
as the gateway's default (CLIENT_MAX_IDLE_CONNS_PER_HOST follows WORKER_CONNECTIONS, 2000). No
validation, no errors, no logs.
"""

import os

import requests
from flask import Flask, Response, request
from requests.adapters import HTTPAdapter

UPSTREAM = os.environ.get("MINIMAL_UPSTREAM", "http://127.0.0.1:9900/v1") + "/chat/completions"
app = Flask(__name__)
session = requests.Session()
session.trust_env = False
session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=2000))


@app.post("/v1/chat/completions")
def chat() -> Response:
    body = request.get_data()
    stream = bool(request.get_json().get("stream"))
    upstream = session.post(UPSTREAM, data=body, headers={"Content-Type": "application/json"}, stream=stream, timeout=30)
    if not stream:
        return Response(upstream.content, upstream.status_code, content_type=upstream.headers.get("Content-Type"))
    return Response(upstream.iter_content(chunk_size=None), upstream.status_code, content_type="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
