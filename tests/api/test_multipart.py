"""The multipart scanner (app.chat.multipart): fields found wherever they are, files skipped, the
model replaced in place with an exact length, whatever the block boundaries."""

from __future__ import annotations

import io
import os

import pytest

from app.chat import multipart
from app.chat.multipart import MultipartUpload
from app.errors import InvalidRequest

BOUNDARY = "----gw-test-boundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    headers = f"Content-Disposition: {disposition}\r\n" + ("Content-Type: audio/wav\r\n" if filename else "")
    return f"--{BOUNDARY}\r\n{headers}\r\n".encode() + value + b"\r\n"


def body(*parts: bytes, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    return preamble + b"".join(parts) + f"--{BOUNDARY}--\r\n".encode() + epilogue


@pytest.fixture(params=[7, 64, 64 * 1024], ids=["tiny-blocks", "small-blocks", "real-blocks"])
def block(request, monkeypatch):
    monkeypatch.setattr(multipart, "BLOCK", request.param)
    return request.param


def test_file_before_the_model_and_a_preamble(block):
    audio = os.urandom(3000) + f"\r\n--{BOUNDARY[:-2]}".encode() + os.urandom(500)  # almost a boundary inside
    raw = body(part("file", audio, "a.wav"), part("model", b"openai/whisper-1"), part("language", b"en"),
               preamble=b"ignored preamble\r\n", epilogue=b"trailing")
    upload = MultipartUpload.scan(io.BytesIO(raw), CONTENT_TYPE)
    assert upload.fields == {"model": "openai/whisper-1", "language": "en"}
    assert upload.files == frozenset({"file"})
    sent = upload.with_model("whisper-1")
    data = b"".join(sent)
    assert data == raw.replace(b"openai/whisper-1", b"whisper-1") and len(sent) == len(data)
    assert b"".join(sent) == data  # a second send (a retry) reads the spool again


def test_the_spool_may_start_past_zero_and_a_stream_that_cannot_seek_is_spooled(block):
    raw = body(part("model", b"groq/whisper-large-v3"), part("file", b"x" * 100, "a.wav"))
    offset = io.BytesIO(b"JUNK" + raw)
    offset.seek(4)
    assert b"".join(MultipartUpload.scan(offset, CONTENT_TYPE).with_model("w")) == raw.replace(
        b"groq/whisper-large-v3", b"w")

    class OneWay(io.RawIOBase):
        def __init__(self) -> None:
            self.inner = io.BytesIO(raw)

        def readinto(self, buffer) -> int:
            return self.inner.readinto(buffer)

        def readable(self) -> bool:
            return True

    assert MultipartUpload.scan(OneWay(), CONTENT_TYPE).fields["model"] == "groq/whisper-large-v3"


def test_a_long_text_field_is_passed_on_but_not_kept(block, monkeypatch):
    monkeypatch.setattr(multipart, "FIELD_LIMIT", 100)
    raw = body(part("prompt", b"p" * 1000), part("model", b"openai/whisper-1"), part("file", b"abc", "a.wav"))
    upload = MultipartUpload.scan(io.BytesIO(raw), CONTENT_TYPE)
    assert "prompt" not in upload.fields and upload.fields["model"] == "openai/whisper-1"
    assert b"p" * 1000 in b"".join(upload.with_model("whisper-1"))
    too_long = body(part("model", b"m" * 1000))
    with pytest.raises(InvalidRequest, match="model field is too long"):
        MultipartUpload.scan(io.BytesIO(too_long), CONTENT_TYPE)


@pytest.mark.parametrize(("raw", "content_type", "problem"), [
    (b"", "application/json", "expected Content-Type multipart/form-data"),
    (b"", "multipart/form-data", "expected Content-Type multipart/form-data"),
    (b"no boundary anywhere", CONTENT_TYPE, "no part starts with the boundary"),
    (f"--{BOUNDARY}XX".encode(), CONTENT_TYPE, "not followed by a line break"),
    (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"".encode(), CONTENT_TYPE,
     "headers do not end"),
    (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc".encode(),
     CONTENT_TYPE, "ends before its closing boundary"),
])
def test_malformed_bodies_are_a_clear_400(raw, content_type, problem):
    with pytest.raises(InvalidRequest) as info:
        MultipartUpload.scan(io.BytesIO(raw), content_type)
    assert problem in info.value.message and info.value.code == "invalid_multipart"
