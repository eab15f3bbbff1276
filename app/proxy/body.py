"""Proxy bodies, both ways, without holding a large one in memory.

The caller's body goes upstream as it is read (`Upload`), chunk by chunk, with the caller's
`Content-Length` when it sent one and chunked otherwise. SERVER_MAX_REQUEST_BODY_SIZE applies
to both: a declared length over it is refused before any connection is made, a chunked upload
that grows past it is cut off with 413 (PayloadTooLarge).

A JSON object body (a JSON content type, or a body starting with `{`) is read whole, up to the
same limit, so its `model` can be checked against ALLOWED_MODELS / DISALLOWED_MODELS; it then
goes upstream byte for byte as read. Anything else is never parsed.

The provider's answer comes back through `app.proxy.relay`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from app.errors import PayloadTooLarge
from app.schemas import read_json

READ_SIZE = 64 * 1024


class Upload:
    """The rest of the caller's body, streamed to requests (which frames it by `len()`: 0 means chunked)."""

    def __init__(self, head: bytes, stream: IO[bytes], *, length: int | None, limit: int):
        self._head = head
        self._stream = stream
        self._length = length
        self._limit = limit

    def __len__(self) -> int:
        return self._length or 0

    def __bool__(self) -> bool:  # requests sends `data or {}`: a chunked upload (len 0) is still a body
        return True

    def __iter__(self) -> Iterator[bytes]:
        sent = len(self._head)
        yield self._head
        while chunk := self._stream.read(READ_SIZE):
            sent += len(chunk)
            if sent > self._limit:
                raise PayloadTooLarge.over(self._limit)
            yield chunk


@dataclass(frozen=True)
class RequestBody:
    data: bytes | Upload | None  # what requests sends
    model: str | None  # the `model` a JSON object body names


def request_body(stream: IO[bytes], *, length: int | None, chunked: bool, json_type: bool,
                 limit: int) -> RequestBody:
    """Read as little of the caller's body as the model check needs; raises PayloadTooLarge."""
    if length is not None and length > limit:
        raise PayloadTooLarge.over(limit)
    if not length and not chunked:
        return RequestBody(None, None)
    head = stream.read(READ_SIZE)
    if len(head) > limit:
        raise PayloadTooLarge.over(limit)
    if not (json_type or head.lstrip()[:1] == b"{"):
        return RequestBody(Upload(head, stream, length=length, limit=limit), None)
    parts, size = [head], len(head)
    while chunk := stream.read(READ_SIZE):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge.over(limit)
        parts.append(chunk)
    body = b"".join(parts)
    return RequestBody(body, _model_named(body))


def _model_named(body: bytes) -> str | None:
    try:
        payload = read_json(body)
    except ValueError:  # not (strict) JSON after all: the provider answers that
        return None
    model = payload.get("model") if isinstance(payload, dict) else None
    return model if isinstance(model, str) and model else None

