"""Proxy bodies, both ways, without holding a large one in memory.

The caller's body goes upstream as it is read (`Upload`), chunk by chunk, with the caller's
`Content-Length` when it sent one and chunked otherwise. SERVER_MAX_REQUEST_BODY_SIZE applies
to both: a declared length over it is refused before any connection is made, a chunked upload
that grows past it is cut off with 413 (PayloadTooLarge).

A body that may name a model is read whole, up to the same limit, so its `model` can be checked
against ALLOWED_MODELS / DISALLOWED_MODELS; it then goes upstream byte for byte as read (still
compressed, if the caller compressed it). How the model is found (`model_of`):

    Content-Encoding gzip / deflate   decoded first, in memory, never past the size limit (413)
    multipart/form-data               the `model` field (werkzeug's multipart decoder)
    x-www-form-urlencoded             the `model` field
    anything else                     strict JSON (`read_json`, BOM allowed): the object's `model`

A JSON object with a key twice is a 400, like everywhere else. While a list is set (`check`),
every body is read this way and one whose model cannot be read is refused with 403: another
encoding, a JSON array, JSON that is not strict, a `model` that is not a string, a body that is
neither JSON nor a form. Without a list, only JSON bodies (a JSON content type, or a body that
starts like a JSON object) are read, for the request facts and the usage estimate; the rest
streams upstream unparsed.

The provider's answer comes back through `app.proxy.relay`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import parse_qsl

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from app.errors import InvalidRequest, PayloadTooLarge, PermissionDenied
from app.schemas import DuplicateKey, InvalidJSON, read_json

READ_SIZE = 64 * 1024
BOM = b"\xef\xbb\xbf"
_INFLATE_BITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


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
    model: str | None  # the `model` the body names
    payload: dict[str, Any] | None = None  # the JSON object, when the body was one (for the usage estimate)


class Unreadable(Exception):
    """The body's model cannot be read; the message says why (the 403 quotes it while a list is set)."""


def request_body(stream: IO[bytes], *, length: int | None, chunked: bool, content_type: str,
                 content_encoding: str, limit: int, check: bool) -> RequestBody:
    """Read as little of the caller's body as the model check needs; raises PayloadTooLarge,
    InvalidRequest (a key twice) and, with `check`, PermissionDenied for a body it cannot read."""
    if length is not None and length > limit:
        raise PayloadTooLarge.over(limit)
    if not length and not chunked:
        return RequestBody(None, None)
    head = stream.read(READ_SIZE)
    if len(head) > limit:
        raise PayloadTooLarge.over(limit)
    mimetype = content_type.partition(";")[0].strip().lower()
    json_type = mimetype == "application/json" or mimetype.endswith("+json")
    if not check and not (json_type or head.removeprefix(BOM).lstrip()[:1] == b"{"):
        return RequestBody(Upload(head, stream, length=length, limit=limit), None)
    parts, size = [head], len(head)
    while chunk := stream.read(READ_SIZE):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge.over(limit)
        parts.append(chunk)
    body = b"".join(parts)
    try:
        model, payload = model_of(body, content_type=content_type, content_encoding=content_encoding, limit=limit)
    except Unreadable as exc:
        if check:
            raise PermissionDenied(
                f"The proxy cannot tell which model this body calls ({exc}), and ALLOWED_MODELS / "
                f"DISALLOWED_MODELS are set: send a JSON object (UTF-8, optionally gzip) or a form with a "
                f"string `model`.", code="model_not_checkable") from None
        return RequestBody(body, None)
    return RequestBody(body, model, payload)


def model_of(body: bytes, *, content_type: str, content_encoding: str, limit: int) -> tuple[str | None, Any]:
    """(the model the body names or None, the JSON object or None); raises Unreadable,
    InvalidRequest for a key or field given twice, PayloadTooLarge when it decodes past `limit`."""
    decoded = _decoded(body, content_encoding, limit)
    mimetype, options = parse_options_header(content_type)
    mimetype = mimetype.lower()
    if mimetype == "multipart/form-data":
        return _one(_multipart_models(decoded, options.get("boundary", ""))), None
    if mimetype == "application/x-www-form-urlencoded":
        try:
            fields = parse_qsl(decoded.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise Unreadable("the form is not UTF-8") from None
        return _one([value for name, value in fields if name == "model"]), None
    try:
        payload = read_json(decoded)
    except DuplicateKey as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.", code="invalid_json") from None
    except InvalidJSON as exc:
        raise Unreadable(f"the body is neither a form nor strict JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise Unreadable(f"the body is a JSON {type(payload).__name__}, not an object")
    model = payload.get("model")
    if model is not None and not isinstance(model, str):
        raise Unreadable("`model` is not a string")
    return model or None, payload


def _decoded(body: bytes, content_encoding: str, limit: int) -> bytes:
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):  # the last one applied is undone first
        if coding == "identity":
            continue
        bits = _INFLATE_BITS.get(coding)
        if bits is None:
            raise Unreadable(f"Content-Encoding {coding!r} cannot be read")
        body = _inflate(body, bits, limit, raw_fallback=coding == "deflate")
    return body


def _inflate(body: bytes, bits: int, limit: int, *, raw_fallback: bool) -> bytes:
    """Decompress without ever holding more than `limit` + 1 bytes of output."""
    decoder = zlib.decompressobj(bits)
    try:
        out = decoder.decompress(body, limit + 1)
    except zlib.error:
        if raw_fallback:  # `deflate` sent without its zlib header, as some clients do
            return _inflate(body, -zlib.MAX_WBITS, limit, raw_fallback=False)
        raise Unreadable("the compressed body is corrupt") from None
    if len(out) > limit:
        raise PayloadTooLarge.over(limit)
    if not decoder.eof:
        raise Unreadable("the compressed body is cut short")
    return out


def _multipart_models(body: bytes, boundary: str) -> list[str]:
    if not boundary:
        raise Unreadable("the multipart body has no boundary")
    decoder = MultipartDecoder(boundary.encode("latin-1", "replace"))
    decoder.receive_data(body)
    decoder.receive_data(None)
    found: list[str] = []
    in_model, value = False, bytearray()
    try:
        while not isinstance(event := decoder.next_event(), (Epilogue, NeedData)):
            if isinstance(event, File) and event.name == "model":
                raise Unreadable("its `model` part is a file")
            if isinstance(event, Field):
                in_model, value = event.name == "model", bytearray()
            elif isinstance(event, Data) and in_model:
                value += event.data
                if not event.more_data:
                    found.append(value.decode("utf-8", "replace"))
                    in_model = False
    except ValueError:
        raise Unreadable("the multipart body is malformed") from None
    if isinstance(event, NeedData):
        raise Unreadable("the multipart body is cut short")
    return found


def _one(values: list[str]) -> str | None:
    if len(values) > 1:
        raise InvalidRequest("The request body names `model` more than once.", code="invalid_request")
    return values[0] or None if values else None
