"""A multipart/form-data upload (an audio file to transcribe), passed on without holding it in memory.

The server edge has already read the body into a spool (app/server/request_body.py: memory up to
512 KiB, an unnamed temporary file beyond). `MultipartUpload.scan` reads that spool once, 64 KiB
at a time, and keeps only what the gateway needs: the small text fields (`model`, `stream`,
`response_format`...), the names of the file parts, and where the `model` value lies. File
contents are skipped as they are read, never kept. `with_model(name)` is then the body for the
provider: the same bytes read again from the spool, with the model's value replaced by the
provider's model name, and its exact length, so the provider gets a `Content-Length`.

    upload = MultipartUpload.scan(environ["wsgi.input"], request.content_type)
    upload.fields["model"]            -> "openai/whisper-1"   (routed and checked like any model)
    body = upload.with_model("whisper-1")   # len(body) exact; iter(body) re-reads the spool

Why not werkzeug's multipart parser (`werkzeug.sansio.multipart.MultipartDecoder`, which does the
header parsing here): it hands back field values but not where they lie in the body, and
rewriting the model in place, with an exact length and without a second copy of the upload,
needs those byte offsets. Part headers are still read with werkzeug's `parse_options_header`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO

from werkzeug.http import parse_options_header

from app.errors import InvalidRequest

BLOCK = 64 * 1024
FIELD_LIMIT = 64 * 1024  # a text field longer than this is passed on but not kept (a model never is)
HEADERS_LIMIT = 16 * 1024  # one part's headers
MAX_PARTS = 1000
SPOOL_IN_MEMORY = 512 * 1024  # as the server edge: a stream that cannot seek is copied, larger ones to disk


class _Reader:
    """The stream as a window of bytes at absolute offsets: `find` reads on until a needle shows,
    dropping what lies before it unless asked to keep it."""

    __slots__ = ("base", "buf", "eof", "pos", "stream")

    def __init__(self, stream: IO[bytes]):
        self.stream = stream
        self.buf = bytearray()
        self.base = 0  # absolute offset of buf[0]
        self.pos = 0  # absolute offset of the next unread byte
        self.eof = False

    def _fill(self) -> bool:
        chunk = self.stream.read(BLOCK)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _drop_before(self, offset: int) -> None:
        cut = offset - self.base
        if cut > 0:
            del self.buf[:cut]
            self.base = offset

    def find(self, needle: bytes, *, keep: bool, limit: int | None = None) -> int:
        """Absolute offset of the next `needle` at or after `pos`; -1 once the stream ends without one,
        or when a kept span grows past `limit`."""
        searched = self.pos
        while True:
            at = self.buf.find(needle, searched - self.base)
            if at >= 0:
                found = self.base + at
                return -1 if keep and limit is not None and found - self.pos > limit else found
            end = self.base + len(self.buf)
            searched = max(self.pos, end - len(needle) + 1)  # a needle may straddle the next block
            if not keep:
                self._drop_before(searched)
            elif limit is not None and end - self.pos > limit:
                return -1
            if not self._fill():
                return -1

    def take(self, count: int) -> bytes:
        """The next `count` bytes (fewer at the end of the stream); `pos` moves past them."""
        while self.base + len(self.buf) - self.pos < count and self._fill():
            pass
        start = self.pos - self.base
        data = bytes(self.buf[start:start + count])
        self.pos += len(data)
        return data

    def text(self, start: int, end: int) -> bytes:
        return bytes(self.buf[start - self.base:end - self.base])

    def drain(self) -> int:
        """Read to the end; the total length of the stream."""
        self._drop_before(self.base + len(self.buf))
        while self._fill():
            self._drop_before(self.base + len(self.buf))
        return self.base


def _bad(message: str) -> InvalidRequest:
    return InvalidRequest(f"The multipart/form-data body cannot be read: {message}.", code="invalid_multipart")


def seekable(stream: IO[bytes]) -> IO[bytes]:
    """`stream` if it can be read again, else a spooled copy of it (memory first, then a temporary file)."""
    try:
        if stream.seekable():
            return stream
    except (AttributeError, ValueError):
        pass
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 (returned, read later)
    while chunk := stream.read(BLOCK):
        spool.write(chunk)
    spool.seek(0)
    return spool


class MultipartUpload:
    """What `scan` learnt of an upload: its text fields, file part names, and the model's place."""

    def __init__(self, stream: IO[bytes], start: int, length: int, content_type: str, fields: dict[str, str],
                 files: frozenset[str], model_span: tuple[int, int] | None):
        self.stream = stream
        self.start = start  # where the body starts in the stream
        self.length = length
        self.content_type = content_type
        self.fields = fields
        self.files = files
        self.model_span = model_span  # offsets of the model's value, relative to `start`

    @classmethod
    def scan(cls, stream: IO[bytes], content_type: str | None) -> MultipartUpload:
        """Read the body once (see the module docstring); 400 for a body that is not multipart."""
        mimetype, options = parse_options_header(content_type or "")
        boundary = options.get("boundary", "").encode("latin-1", "replace")
        if mimetype != "multipart/form-data" or not boundary:
            raise _bad("expected Content-Type multipart/form-data with a boundary")
        stream = seekable(stream)
        start = stream.tell()
        reader = _Reader(stream)
        delimiter = b"--" + boundary
        separator = b"\r\n" + delimiter
        first = reader.find(delimiter, keep=False)
        if first < 0:
            raise _bad("no part starts with the boundary")
        reader.pos = first + len(delimiter)
        fields: dict[str, str] = {}
        files: set[str] = set()
        model_span = None
        for _ in range(MAX_PARTS + 1):
            after = reader.take(2)
            if after == b"--":
                return cls(stream, start, reader.drain(), content_type or "", fields, frozenset(files), model_span)
            if after != b"\r\n":
                raise _bad("a boundary is not followed by a line break")
            head_end = reader.find(b"\r\n\r\n", keep=True, limit=HEADERS_LIMIT)
            if head_end < 0:
                raise _bad("a part's headers do not end")
            name, filename = _disposition(reader.text(reader.pos, head_end))
            reader.pos = value_start = head_end + 4
            is_file = filename is not None
            value_end = -1 if is_file else reader.find(separator, keep=True, limit=FIELD_LIMIT)
            if value_end < 0:
                if name == "model" and not is_file:
                    raise _bad("the model field is too long")
                value_end = reader.find(separator, keep=False)
                if value_end < 0:
                    raise _bad("the body ends before its closing boundary")
            elif name is not None:
                value = reader.text(value_start, value_end).decode("utf-8", "replace")
                fields.setdefault(name, value)
                if name == "model" and model_span is None:
                    model_span = (value_start, value_end)
            if is_file and name is not None:
                files.add(name)
            reader.pos = value_end + len(separator)
        raise _bad(f"it has more than {MAX_PARTS} parts")

    def with_model(self, model: str) -> UploadBody:
        """The body to send, with the model's value replaced by `model`."""
        return UploadBody(self, model.encode())


class UploadBody:
    """The upload as requests sends it: `len()` frames it, each iteration re-reads the spool (so a
    retry sends it again)."""

    def __init__(self, upload: MultipartUpload, model: bytes):
        self.upload = upload
        self.model = model
        span = upload.model_span or (upload.length, upload.length)
        self.span = span
        self.length = upload.length - (span[1] - span[0]) + (len(model) if upload.model_span else 0)

    def __len__(self) -> int:
        return self.length

    def __bool__(self) -> bool:
        return True

    def __iter__(self) -> Iterator[bytes]:
        upload = self.upload
        stream = upload.stream
        stream.seek(upload.start)
        yield from _copy(stream, self.span[0])
        if upload.model_span:
            yield self.model
            stream.seek(upload.start + self.span[1])
            yield from _copy(stream, upload.length - self.span[1])


def _copy(stream: IO[bytes], count: int) -> Iterator[bytes]:
    while count > 0:
        chunk = stream.read(min(BLOCK, count))
        if not chunk:
            return
        count -= len(chunk)
        yield chunk


def _disposition(raw: bytes) -> tuple[str | None, str | None]:
    """The part's field name and, for a file, its file name (from Content-Disposition)."""
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        header, _, value = line.partition(":")
        if header.strip().lower() == "content-disposition":
            _, options = parse_options_header(value.strip())
            return options.get("name"), options.get("filename")
    return None, None
