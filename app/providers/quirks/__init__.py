"""One module per provider whose behaviour differs from plain OpenAI passthrough.

Registries below map a provider id to its quirk; shared code looks a provider up here and falls
back to the OpenAI default, never `if provider == ...`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from app.providers.quirks import anthropic, cloudflare, cohere, google

if TYPE_CHECKING:
    from app.providers.model_entries import Entry
    from app.providers.provider import Provider

# Provider id -> reads that provider's model list (its own shape, paging) into gateway entries.
MODEL_LISTS: Mapping[str, Callable[[Provider], list[Entry]]] = MappingProxyType({
    "anthropic": anthropic.list_models,
    "cloudflare": cloudflare.list_models,
    "cohere": cohere.list_models,
    "google": google.list_models,
})
