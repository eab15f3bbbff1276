"""The providers the gateway knows, as data.

Each entry mirrors the spec's `x-provider-configs` (a drift test compares them) plus what the
spec does not say: display name, which optional endpoints exist, and whether the provider
rejects `stream_options`. Behaviour that data cannot express lives in `quirks/<id>.py`.
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
    # Optional OpenAI-style endpoints; None means the provider has none (501).
    completions_endpoint: str | None = None
    embeddings_endpoint: str | None = None
    # False where the provider rejects `stream_options` (it gets none, usage is then best-effort).
    accepts_stream_options: bool = True
    extra_headers: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))


ANTHROPIC_VERSION = "2023-06-01"

_SPECS = (
    ProviderSpec("ollama", "Ollama", "http://ollama:8080/v1", "none", True,
                 completions_endpoint="/completions", embeddings_endpoint="/embeddings"),
    ProviderSpec("ollama_cloud", "Ollama Cloud", "https://ollama.com/v1", "bearer", True,
                 completions_endpoint="/completions", embeddings_endpoint="/embeddings"),
    ProviderSpec("groq", "Groq", "https://api.groq.com/openai/v1", "bearer", True),
    ProviderSpec("openai", "OpenAI", "https://api.openai.com/v1", "bearer", True,
                 completions_endpoint="/completions", embeddings_endpoint="/embeddings"),
    ProviderSpec("cloudflare", "Cloudflare Workers AI",
                 "https://api.cloudflare.com/client/v4/accounts/{ACCOUNT_ID}/ai", "bearer", False,
                 models_endpoint="/finetunes/public?limit=1000", chat_endpoint="/v1/chat/completions",
                 embeddings_endpoint="/v1/embeddings"),
    ProviderSpec("cohere", "Cohere", "https://api.cohere.ai", "bearer", True,
                 models_endpoint="/v1/models", chat_endpoint="/compatibility/v1/chat/completions",
                 embeddings_endpoint="/compatibility/v1/embeddings", accepts_stream_options=False),
    ProviderSpec("anthropic", "Anthropic", "https://api.anthropic.com/v1", "xheader", True,
                 extra_headers=MappingProxyType({"anthropic-version": ANTHROPIC_VERSION})),
    ProviderSpec("deepseek", "DeepSeek", "https://api.deepseek.com", "bearer", False,
                 completions_endpoint="/beta/completions"),
    ProviderSpec("google", "Google", "https://generativelanguage.googleapis.com/v1beta/openai", "bearer", True,
                 embeddings_endpoint="/embeddings"),
    ProviderSpec("mistral", "Mistral", "https://api.mistral.ai/v1", "bearer", True,
                 embeddings_endpoint="/embeddings", accepts_stream_options=False),
    ProviderSpec("moonshot", "Moonshot", "https://api.moonshot.ai/v1", "bearer", False),
)

CATALOG: MappingProxyType = MappingProxyType({spec.id: spec for spec in _SPECS})
