"""The endpoints that call a model, as data plus small strategies.

    CHAT              POST /v1/chat/completions   streams; usage in a stream only when asked for;
                                                  images in `messages`; the MCP agent loop may run it
    COMPLETIONS       POST /v1/completions        streams; usage in a stream only when asked for
    EMBEDDINGS        POST /v1/embeddings         never streams
    RESPONSES         POST /v1/responses          streams (named events); usage in `response.completed`;
                                                  images as `input_image` parts
    STORED_RESPONSE   GET /v1/responses/{id}      a kept response (`?stream=true` replays its events)
    DELETED_RESPONSE  DELETE /v1/responses/{id}
    MESSAGES          POST /v1/messages           Anthropic's API: streams with its event names, usage in
                                                  `message_start`/`message_delta`; `anthropic-version` and
                                                  `anthropic-beta` forwarded; a bare `claude-*` model is
                                                  Anthropic's; errors in Anthropic's shape
    COUNT_TOKENS      POST /v1/messages/count_tokens
    IMAGE_GENERATIONS POST /v1/images/generations
    SPEECH            POST /v1/audio/speech       a binary answer, relayed as it arrives (or events
                                                  with `stream_format: "sse"`)
    TRANSCRIPTIONS,   POST /v1/audio/transcriptions, /v1/audio/translations: a multipart upload
      TRANSLATIONS                                (app.chat.multipart), never held in memory
    MODERATIONS       POST /v1/moderations

What differs between endpoints is a field here, never an `if` in the code that calls them: where
the provider serves it (`spec_field`, a catalog field: None there is 501), how the upstream
request is written (`body`: JSON with the model rewritten, the multipart upload, or query
parameters), where usage is (`usage`), where images are, how an error ends a stream.

A call may carry more than its JSON payload: the headers an endpoint forwards, an upload, the id
of a kept response. The view binds them with `endpoint.called_with(...)`, an endpoint of the same
kind holding those `CallParts`, so `open_response(route, endpoint, payload, stream=...)` can
build the call again for another route (a retry or a fallback) without knowing of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from app.chat.body import upstream_body
from app.chat.usage import (
    ANTHROPIC_USAGE,
    MEDIA_USAGE,
    NO_USAGE,
    OPENAI_USAGE,
    RESPONSES_USAGE,
    UsageFormat,
)
from app.errors import GatewayError, Unsupported
from app.streaming import sse

if TYPE_CHECKING:
    from app.chat.multipart import MultipartUpload
    from app.providers.provider import Provider
    from app.providers.routing import Route

_JSON = "application/json"


def image_url_parts(payload: dict[str, Any]) -> bool:
    """True when a chat message has an `image_url` content part."""
    for message in payload.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    return True
    return False


def input_image_parts(payload: dict[str, Any]) -> bool:
    """True when a Responses `input` item has an `input_image` content part."""
    items = payload.get("input")
    for item in items if isinstance(items, list) else ():
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(item, dict) and item.get("type") == "input_image":
            return True
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and part.get("type") == "input_image":
                return True
    return False


def image_blocks(payload: dict[str, Any]) -> bool:
    """True when an Anthropic message has an `image` block (a tool result's content included)."""
    def has_image(blocks: Any, depth: int) -> bool:
        for block in blocks if isinstance(blocks, list) and depth < 3 else ():
            if isinstance(block, dict) and (block.get("type") == "image" or has_image(block.get("content"), depth + 1)):
                return True
        return False

    messages = payload.get("messages")
    return any(isinstance(m, dict) and has_image(m.get("content"), 0)
               for m in (messages if isinstance(messages, list) else ()))


def asks_for_stream(payload: dict[str, Any]) -> bool:
    return payload.get("stream") is True


def text_asks_for_stream(payload: dict[str, Any]) -> bool:
    """`stream` written as text: a form field or a query parameter ("true")."""
    return str(payload.get("stream", "")).strip().lower() == "true"


def speech_as_events(payload: dict[str, Any]) -> bool:
    return payload.get("stream_format") == "sse"


@dataclass(frozen=True, slots=True)
class CallParts:
    """What one call carries besides its JSON payload (bound with `Endpoint.called_with`)."""

    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # forwarded as sent
    upload: MultipartUpload | None = None  # a multipart body (app.chat.multipart)
    resource: str | None = None  # the id in a path such as /responses/{id}


NO_PARTS = CallParts()


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """What `open_response` sends: method, path under the provider's base URL, body, headers, query."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    params: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str  # for messages: "chat completions", "completions", "embeddings", ...
    spec_field: str  # the ProviderSpec field holding the provider's path
    usage: UsageFormat  # where its bodies and events carry usage and tool calls
    streams: bool = False  # may answer with an event stream
    usage_on_request: bool = False  # a stream carries usage only if asked (`stream_options.include_usage`)
    images: Callable[[dict[str, Any]], bool] | None = None  # finds image parts in a request body
    runs_tools: bool = False  # the MCP agent loop may take the call
    method: str = "POST"
    body: Literal["json", "multipart", "query"] = "json"  # the payload as JSON, the upload, or query parameters
    stream_flag: Callable[[dict[str, Any]], bool] = asks_for_stream  # does this payload ask for a stream?
    relays_bytes: bool = False  # a binary answer (audio) goes back as it arrives, never read whole
    forwards_headers: tuple[str, ...] = ()  # client headers passed on to the provider (lower case)
    bare_models: tuple[tuple[str, str], ...] = ()  # (model prefix, provider) for a model named without provider/
    stream_error: Callable[[GatewayError], bytes] = sse.error_event  # the last event of a stream that fails
    parts: CallParts = NO_PARTS

    def path(self, provider: Provider) -> str:
        """The provider's path for this endpoint; 501 when it has none."""
        path = getattr(provider.spec, self.spec_field)
        if path is None:
            raise Unsupported(f"Provider {provider.id} has no {self.name} endpoint.", code="unsupported_endpoint")
        if self.parts.resource is not None:
            path = path.replace("{id}", quote(self.parts.resource, safe=""))
        return path

    def streamed(self, payload: dict[str, Any]) -> bool:
        return self.streams and self.stream_flag(payload)

    def provider_for_bare(self, model: str) -> str | None:
        """The provider a model named without `provider/` belongs to on this endpoint, if any."""
        if not self.bare_models:
            return None
        lowered = model.strip().lower()
        return next((provider for prefix, provider in self.bare_models if lowered.startswith(prefix)), None)

    def called_with(self, *, headers: Mapping[str, str] | None = None, upload: MultipartUpload | None = None,
                    resource: str | None = None) -> Endpoint:
        """This endpoint bound to one call's parts; of `headers`, only those it forwards are kept."""
        kept = {name: value for name, value in (headers or {}).items() if name.lower() in self.forwards_headers}
        return replace(self, parts=CallParts(MappingProxyType(kept), upload, resource))

    def upstream_request(self, route: Route, payload: dict[str, Any], *, stream: bool) -> UpstreamRequest:
        """The request to send to `route`'s provider (raises 501 where it has no such endpoint)."""
        path = self.path(route.provider)
        accept = sse.MIMETYPE if stream else _JSON
        if self.body == "query":
            return UpstreamRequest(self.method, path, None, {"Accept": accept}, payload or None)
        if self.body == "multipart":
            upload = self.parts.upload
            assert upload is not None, "a multipart endpoint is called with its upload bound"
            return UpstreamRequest(self.method, path, upload.with_model(route.model),
                                   {"Content-Type": upload.content_type, "Accept": accept})
        headers = {**self.parts.headers, "Content-Type": _JSON, "Accept": accept}
        return UpstreamRequest(self.method, path, upstream_body(route, self, payload, stream=stream), headers)


CHAT = Endpoint("chat completions", "chat_endpoint", OPENAI_USAGE, streams=True, usage_on_request=True,
                images=image_url_parts, runs_tools=True)
COMPLETIONS = Endpoint("completions", "completions_endpoint", OPENAI_USAGE, streams=True, usage_on_request=True)
EMBEDDINGS = Endpoint("embeddings", "embeddings_endpoint", OPENAI_USAGE)

RESPONSES = Endpoint("responses", "responses_endpoint", RESPONSES_USAGE, streams=True, images=input_image_parts,
                     stream_error=sse.responses_error_event)
STORED_RESPONSE = Endpoint("stored responses", "stored_response_endpoint", NO_USAGE, streams=True, method="GET",
                           body="query", stream_flag=text_asks_for_stream, stream_error=sse.responses_error_event)
DELETED_RESPONSE = Endpoint("stored responses", "stored_response_endpoint", NO_USAGE, method="DELETE", body="query")

ANTHROPIC_HEADERS = ("anthropic-version", "anthropic-beta")
CLAUDE_IS_ANTHROPIC = (("claude-", "anthropic"),)
MESSAGES = Endpoint("messages", "messages_endpoint", ANTHROPIC_USAGE, streams=True, images=image_blocks,
                    forwards_headers=ANTHROPIC_HEADERS, bare_models=CLAUDE_IS_ANTHROPIC,
                    stream_error=sse.anthropic_error_event)
COUNT_TOKENS = Endpoint("messages count_tokens", "messages_count_tokens_endpoint", NO_USAGE,
                        forwards_headers=ANTHROPIC_HEADERS, bare_models=CLAUDE_IS_ANTHROPIC)

IMAGE_GENERATIONS = Endpoint("image generations", "image_generations_endpoint", MEDIA_USAGE, streams=True)
SPEECH = Endpoint("audio speech", "speech_endpoint", MEDIA_USAGE, streams=True, stream_flag=speech_as_events,
                  relays_bytes=True)
TRANSCRIPTIONS = Endpoint("audio transcriptions", "transcriptions_endpoint", MEDIA_USAGE, streams=True,
                          body="multipart", stream_flag=text_asks_for_stream)
TRANSLATIONS = Endpoint("audio translations", "translations_endpoint", MEDIA_USAGE, body="multipart")
MODERATIONS = Endpoint("moderations", "moderations_endpoint", MEDIA_USAGE)
