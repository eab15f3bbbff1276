"""What a model call hands back to the view: status, content type and body, whole or streamed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    body: bytes | Iterable[bytes]  # bytes, or chunks (SSE events, a file) as they are relayed
    stream: bool = False  # `body` is relayed as it comes, without a length (an event stream, or a file)
