"""The endpoints that call a model, as data plus small strategies.

    CHAT          POST /v1/chat/completions   streams; usage in a stream only when asked for;
                                              images in `messages`; the MCP agent loop may run it
    COMPLETIONS   POST /v1/completions        streams; usage in a stream only when asked for
    EMBEDDINGS    POST /v1/embeddings         never streams

What differs between endpoints is a field here, never an `if` in the code that calls them: an
endpoint with other usage (the Responses API's `response.completed`, Anthropic's
`message_start`/`message_delta`) brings its own `UsageFormat`, one with images elsewhere its own
`images` finder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.chat.usage import OPENAI_USAGE, UsageFormat
from app.errors import Unsupported

if TYPE_CHECKING:
    from app.providers.provider import Provider


def image_url_parts(payload: dict[str, Any]) -> bool:
    """True when a chat message has an `image_url` content part."""
    for message in payload.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    return True
    return False


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str  # for messages: "chat completions", "completions", "embeddings"
    spec_field: str  # the ProviderSpec field holding the provider's path
    usage: UsageFormat  # where its bodies and events carry usage and tool calls
    streams: bool = False  # honours `"stream": true`
    usage_on_request: bool = False  # a stream carries usage only if asked (`stream_options.include_usage`)
    images: Callable[[dict[str, Any]], bool] | None = None  # finds image parts in a request body
    runs_tools: bool = False  # the MCP agent loop may take the call

    def path(self, provider: Provider) -> str:
        """The provider's path for this endpoint; 501 when it has none."""
        path = getattr(provider.spec, self.spec_field)
        if path is None:
            raise Unsupported(f"Provider {provider.id} has no {self.name} endpoint.", code="unsupported_endpoint")
        return path

    def streamed(self, payload: dict[str, Any]) -> bool:
        return self.streams and payload.get("stream") is True


CHAT = Endpoint("chat completions", "chat_endpoint", OPENAI_USAGE, streams=True, usage_on_request=True,
                images=image_url_parts, runs_tools=True)
COMPLETIONS = Endpoint("completions", "completions_endpoint", OPENAI_USAGE, streams=True, usage_on_request=True)
EMBEDDINGS = Endpoint("embeddings", "embeddings_endpoint", OPENAI_USAGE)
