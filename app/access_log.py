"""WSGI middleware: the request id and the access log line.

Every response carries `X-Request-ID`: the client's when it sent a sane one, else a new one; a
model call's carries `X-Gateway-Upstream: <deployment>/<model>` (who served, or was tried
last) and `X-Gateway-Attempts: <n>` (its upstream tries), from the facts app/chat/dispatch.py
recorded (for a stream, before its first event went out). The
access log line is written when the response body is closed, so a stream's line carries its
whole duration. The query string is never logged (it may hold a provider `key=`). A model
call's line names the deployment and model that served it (`upstream`, `provider`, `model`),
the alias the client named and the upstream tries it took (`attempts`).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from werkzeug.wsgi import ClosingIterator

from app.logs import write_fields
from app.signals import (
    ALIAS_KEY,
    ATTEMPTS_KEY,
    KEY_NAME_KEY,
    MODEL_KEY,
    PROVIDER_KEY,
    SUBJECT_KEY,
    UPSTREAM_KEY,
    USAGE_KEY,
)

log = logging.getLogger("gateway.access")

REQUEST_ID_ENVIRON_KEY = "gateway.request_id"
UPSTREAM_HEADER = "X-Gateway-Upstream"
ATTEMPTS_HEADER = "X-Gateway-Attempts"
_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# An upstream is sent as it is when it is printable ASCII; else (the model name is the client's)
# %-escaped, so that no byte of it can break the header.
_PLAIN = re.compile(r"[\x21-\x7e]*")
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def request_id_from(header: str | None) -> str:
    if header and _SANE_ID.fullmatch(header):
        return header
    return os.urandom(16).hex()


def log_line(method: str | None, path: str | None, status: int, *, request_id: str, started: float,
             remote_addr: str | None, **facts: Any) -> None:
    """One access line; also written by the server edge for a request it refuses itself (app.server)."""
    write_fields(log, logging.INFO, f"{method} {path} {status}", {
        "request_id": request_id, "method": method, "path": path, "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2), "remote_addr": remote_addr,
        **facts, "pid": os.getpid()})


class AccessLog:
    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]):
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        environ[REQUEST_ID_ENVIRON_KEY] = request_id
        seen: dict[str, Any] = {}

        def start_with_id(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"]
            headers.append(("X-Request-ID", request_id))
            attempts = environ.get(ATTEMPTS_KEY)
            if attempts is not None:  # a model call
                headers.append((ATTEMPTS_HEADER, str(attempts)))
                upstream = environ.get(UPSTREAM_KEY)
                if upstream:
                    headers.append((UPSTREAM_HEADER, upstream if _PLAIN.fullmatch(upstream) else quote(upstream, safe=_SAFE)))
            seen["status"] = status
            return start_response(status, headers, exc_info)

        def write_line() -> None:
            status = seen.get("status", "500")
            log_line(environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), int(status.split(" ", 1)[0]),
                     request_id=request_id, started=started, remote_addr=environ.get("REMOTE_ADDR"),
                     subject=environ.get(SUBJECT_KEY), provider=environ.get(PROVIDER_KEY),
                     model=environ.get(MODEL_KEY),
                     alias=environ.get(ALIAS_KEY),  # the alias the client named (app/resilience)
                     upstream=environ.get(UPSTREAM_KEY), attempts=environ.get(ATTEMPTS_KEY),
                     key=environ.get(KEY_NAME_KEY),  # a virtual key's name (app/accounts)
                     usage=environ.get(USAGE_KEY))  # tokens and cost (app/accounts)

        return ClosingIterator(self.wsgi_app(environ, start_with_id), [write_line])
