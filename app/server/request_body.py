"""A request's body, read whole before the app runs, as nginx reads it before proxying.

Reading it at the edge is what lets the worker bound it in size and time whatever its framing:
a declared Content-Length over SERVER_MAX_REQUEST_BODY_SIZE is refused before a byte of the
body is read, a chunked body as soon as it grows past the limit (413 either way, on every route,
before anything goes upstream), and a body that stalls falls under SERVER_READ_TIMEOUT instead
of holding a serving slot. The app then reads a buffer, never the socket: up to
`SPOOL_IN_MEMORY` in memory, beyond that in an unnamed temporary file. A chunked body reaches
the app (and a proxied provider) with the Content-Length it turned out to have.
"""

from __future__ import annotations

import io
import tempfile
from typing import IO, Any

from gunicorn.http.body import ChunkedReader
from gunicorn.http.errors import NoMoreData

SPOOL_IN_MEMORY = 512 * 1024  # as werkzeug's form parser: larger bodies go to a temporary file
READ_SIZE = 64 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def buffer_body(req: Any, sock: Any, *, limit: int) -> None:
    """Read gunicorn request `req`'s body now and put the buffer in its place (`req.body`).

    Raises PayloadTooLarge past `limit`, NoMoreData when the client hangs up mid-body, and
    gunicorn's parse errors (InvalidChunkSize...) for a malformed chunked body.
    """
    chunked = isinstance(req.body.reader, ChunkedReader)
    length = None if chunked else _declared_length(req)
    if length is not None and length > limit:
        raise _too_large(limit)
    if not chunked and not length:
        return
    if _expects_continue(req):  # the client waits for this before it sends the body
        sock.sendall(CONTINUE)
        req._expected_100_continue = False  # gunicorn would send it again when the app starts
    spool: IO[bytes] = (io.BytesIO() if length is not None and length <= SPOOL_IN_MEMORY
                        else tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY))  # noqa: SIM115 (lives as req.body)
    size = 0
    while chunk := req.body.read(READ_SIZE):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        spool.write(chunk)
    if length is not None and size < length:
        raise NoMoreData(b"")
    spool.seek(0)
    req.body = spool
    if chunked:
        req.headers = [(name, value) for name, value in req.headers if name != "TRANSFER-ENCODING"]
        req.headers.append(("CONTENT-LENGTH", str(size)))


def release(req: Any) -> None:
    """After the response: free the buffer now, not when the connection's next request comes
    (gunicorn reads what the app left of `req.body` before it parses that one)."""
    if isinstance(req.body, io.IOBase):
        req.body.close()
        req.body = io.BytesIO()


def _declared_length(req: Any) -> int | None:
    for name, value in req.headers:
        if name == "CONTENT-LENGTH":
            return int(value)  # gunicorn has checked it is one non-negative decimal number
    return None


def _expects_continue(req: Any) -> bool:
    return req.version >= (1, 1) and any(name == "EXPECT" and value.strip().lower() == "100-continue"
                                         for name, value in req.headers)


def _too_large(limit: int) -> Exception:
    from app.errors import PayloadTooLarge

    return PayloadTooLarge.over(limit)
