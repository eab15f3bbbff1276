"""The providers the gateway knows, as data.

Each entry mirrors the spec's `x-provider-configs` (a drift test compares them) plus what the
spec does not say: display name, which optional endpoints exist, and whether the provider
rejects `stream_options`. Behaviour that data cannot express lives in `quirks/<id>.py`.

An endpoint field holds the provider's path for that API, relative to its base URL; None means
the provider has none, and a call for it answers 501 (`app.chat.endpoints`):

    chat, completions, embeddings       the OpenAI chat family
    responses, stored_response          POST /v1/responses; GET/DELETE /v1/responses/{id}
                                        (only where the provider keeps responses)
    messages, messages_count_tokens     the Anthropic Messages API (Anthropic's own, or a
                                        provider's Anthropic-compatible one)
    image_generations, speech,          images and audio (OpenAI's shapes)
      transcriptions, translations
    moderations                         POST /v1/moderations
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

AuthType = Literal["bearer", "xheader", "query", "none"]


@dataclass(frozen=True)
class ProviderSpec:
    id: str
    display_name: str
    url: str
    auth_type: AuthType
    supports_vision: bool
    models_endpoint: str = "/models"
    chat_endpoint: str = "/chat/completions"
    # Optional endpoints; None means the provider has none (501).
    completions_endpoint: str | None = None
    embeddings_endpoint: str | None = None
    responses_endpoint: str | None = None
    stored_response_endpoint: str | None = None  # with `{id}`: GET and DELETE one kept response
    messages_endpoint: str | None = None
    messages_count_tokens_endpoint: str | None = None
    image_generations_endpoint: str | None = None
    speech_endpoint: str | None = None
    transcriptions_endpoint: str | None = None
    translations_endpoint: str | None = None
    moderations_endpoint: str | None = None
    # False where the provider rejects `stream_options` (it gets none, usage is then best-effort).
    accepts_stream_options: bool = True
    # The catalog URL is only an example (a self-hosted server): the provider is configured once
    # <ID>_API_URL is set, so a gateway nobody pointed at one does not try to reach it.
    requires_url: bool = False
    # Headers sent with every call, e.g. Anthropic's API version; a caller's own value wins.
    extra_headers: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))


ANTHROPIC_VERSION = "2023-06-01"
_OPENAI_AUDIO = {"speech_endpoint": "/audio/speech", "transcriptions_endpoint": "/audio/transcriptions",
                 "translations_endpoint": "/audio/translations"}

_SPECS = (
    ProviderSpec("ollama", "Ollama", "http://ollama:8080/v1", "none", True,
                 completions_endpoint="/completions", embeddings_endpoint="/embeddings",
                 responses_endpoint="/responses", messages_endpoint="/messages", requires_url=True),
    ProviderSpec("ollama_cloud", "Ollama Cloud", "https://ollama.com/v1", "bearer", True,
                 completions_endpoint="/completions", embeddings_endpoint="/embeddings",
                 responses_endpoint="/responses", messages_endpoint="/messages"),
    ProviderSpec("groq", "Groq", "https://api.groq.com/openai/v1", "bearer", True,
                 responses_endpoint="/responses", **_OPENAI_AUDIO),
    ProviderSpec("openai", "OpenAI", "https://api.openai.com/v1", "bearer", True,
                 completions_endpoint="/completions", embeddings_endpoint="/embeddings",
                 responses_endpoint="/responses", stored_response_endpoint="/responses/{id}",
                 image_generations_endpoint="/images/generations", moderations_endpoint="/moderations",
                 **_OPENAI_AUDIO),
    ProviderSpec("cloudflare", "Cloudflare Workers AI",
                 "https://api.cloudflare.com/client/v4/accounts/{ACCOUNT_ID}/ai", "bearer", False,
                 models_endpoint="/models/search", chat_endpoint="/v1/chat/completions",
                 embeddings_endpoint="/v1/embeddings"),
    ProviderSpec("cohere", "Cohere", "https://api.cohere.ai", "bearer", True,
                 models_endpoint="/v1/models", chat_endpoint="/compatibility/v1/chat/completions",
                 embeddings_endpoint="/compatibility/v1/embeddings", accepts_stream_options=False),
    ProviderSpec("anthropic", "Anthropic", "https://api.anthropic.com/v1", "xheader", True,
                 messages_endpoint="/messages", messages_count_tokens_endpoint="/messages/count_tokens",
                 extra_headers=MappingProxyType({"anthropic-version": ANTHROPIC_VERSION})),
    ProviderSpec("deepseek", "DeepSeek", "https://api.deepseek.com", "bearer", False,
                 completions_endpoint="/beta/completions", messages_endpoint="/anthropic/v1/messages"),
    ProviderSpec("google", "Google", "https://generativelanguage.googleapis.com/v1beta/openai", "bearer", True,
                 embeddings_endpoint="/embeddings", image_generations_endpoint="/images/generations"),
    ProviderSpec("mistral", "Mistral", "https://api.mistral.ai/v1", "bearer", True,
                 embeddings_endpoint="/embeddings", transcriptions_endpoint="/audio/transcriptions",
                 moderations_endpoint="/moderations", accepts_stream_options=False),
    ProviderSpec("moonshot", "Moonshot", "https://api.moonshot.ai/v1", "bearer", False),
)

CATALOG: MappingProxyType = MappingProxyType({spec.id: spec for spec in _SPECS})
