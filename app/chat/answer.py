"""What a model call hands back to the view: status, content type and body, whole or streamed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    body: bytes | Iterable[bytes]  # bytes, or SSE events as they are relayed
    stream: bool = False  # `body` is an event stream: send it as it comes, without a length
