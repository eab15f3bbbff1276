"""What the edge answers when it will not serve a request, in the gateway's JSON envelope.

gunicorn answers a request it cannot parse with an HTML page of its own (`util.write_error`);
the worker's `handle_error` hook answers through `refusal_for` and `send` instead:

    gunicorn's parse error                                  answer
    InvalidResponseHeader(Name), ConfigurationProblem       500 (the app's or the server's fault)
    LimitRequestLine                                        414 RequestLineTooLong
    LimitRequestHeaders                                     431 HeaderFieldsTooLarge
    UnsupportedTransferCoding                               501 Unsupported
    ExpectationFailed                                       417
    ForbiddenProxyRequest                                   403 PermissionDenied
    a malformed chunked body                                400 invalid_chunked_body
    ObsoleteFolding, InvalidHeader, InvalidHeaderName       400 invalid_header
    any other ParseException (request line, method...)      400 invalid_request_line
    a GatewayError (408, 413 and 503 from the worker)       as it is
    GreenletExit, SystemExit, a TLS error                   nothing: the connection is closed

The answer closes the connection. Before closing, the edge reads and drops what the client is
still sending for a little while (nginx's "lingering close"): closing a socket with unread data
makes the kernel reset the connection, and the client would lose the answer it is sent. Not
after a 408 or a 503 at shutdown: a client that ran out of time gets no more of it.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from http import HTTPStatus
from typing import Any

import gevent
from gunicorn.http import errors as http

SEND_WAIT = 5.0  # longest wait to hand the answer to a client that does not read
LINGER_FOR = 10.0  # then drop what the client still sends for at most this long...
LINGER_GAP = 2.0  # ...and stop as soon as it sends nothing for this long (nginx: 30 s and 5 s)


def refusal_for(exc: BaseException) -> Any:
    """The GatewayError to answer `exc` with, or None to close without an answer."""
    from app import errors

    if isinstance(exc, errors.GatewayError):
        return exc
    if isinstance(exc, (http.InvalidResponseHeader, http.InvalidResponseHeaderName, http.ConfigurationProblem)):
        return errors.GatewayError("The gateway could not answer this request.", code="internal_error")
    if isinstance(exc, http.LimitRequestLine):
        return errors.RequestLineTooLong("The request line (method, path and query) is too long.")
    if isinstance(exc, http.LimitRequestHeaders):
        return errors.HeaderFieldsTooLarge("The request headers are too large: too many, or one too long.")
    if isinstance(exc, http.UnsupportedTransferCoding):
        return errors.Unsupported("This Transfer-Encoding is not supported; send the body chunked or with a "
                                  "Content-Length.", code="unsupported_transfer_coding")
    if isinstance(exc, http.ExpectationFailed):
        error = errors.InvalidRequest("Only `Expect: 100-continue` is supported.", code="expectation_failed")
        error.status = 417
        return error
    if isinstance(exc, http.ForbiddenProxyRequest):
        return errors.PermissionDenied("PROXY protocol from an address that is not trusted.", code="forbidden_proxy")
    if isinstance(exc, (http.InvalidChunkSize, http.ChunkMissingTerminator, http.InvalidChunkExtension)):
        return errors.InvalidRequest("The chunked request body is malformed.", code="invalid_chunked_body")
    if isinstance(exc, (http.ObsoleteFolding, http.InvalidHeader, http.InvalidHeaderName)):
        name = _printable(getattr(exc, "hdr", ""))
        return errors.InvalidRequest(f"Malformed request header{' ' + name if name else ''}.", code="invalid_header")
    if isinstance(exc, http.ParseException):
        return errors.InvalidRequest("The request line or the HTTP framing is malformed.", code="invalid_request_line")
    if isinstance(exc, (gevent.GreenletExit, SystemExit, KeyboardInterrupt, ssl.SSLError)):
        return None
    return errors.GatewayError("The gateway failed to handle this request.", code="internal_error")


def send(sock: Any, error: Any, *, request_id: str, linger: bool = True) -> None:
    """Write `error` as a complete response (Connection: close), then linger (unless TLS)."""
    body = json.dumps(error.envelope()).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), "Connection": "close",
               "X-Request-ID": request_id, **error.headers}
    head = f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    with gevent.Timeout(SEND_WAIT, False):
        try:
            sock.sendall(head.encode("latin-1") + body)
        except OSError:
            return
    if linger and not isinstance(sock, ssl.SSLSocket):
        _linger(sock)


def _linger(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(LINGER_GAP)
        deadline = time.monotonic() + LINGER_FOR
        while time.monotonic() < deadline and sock.recv(65536):
            continue
    except OSError:  # a timeout or a reset: close now
        return


def _printable(name: Any) -> str:
    text = name.decode("latin-1") if isinstance(name, bytes) else str(name)
    return text if text.isprintable() and len(text) <= 64 else ""
