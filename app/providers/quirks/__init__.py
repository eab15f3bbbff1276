"""One module per provider whose behaviour differs from plain OpenAI passthrough.

Registries below map a provider kind (its catalog id, `Provider.spec.id`) to its quirk; shared
code looks a provider up here and falls back to the OpenAI default, never `if provider == ...`.
Quirk modules never import `provider.py` (they take a `model_entries.ModelSource`), so
`provider.py` imports this package without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from app.providers.model_entries import Entry, ModelSource
from app.providers.quirks import anthropic, cloudflare, cohere, google

# Provider kind -> reads that provider's model list (its own shape, paging) into gateway entries.
MODEL_LISTS: Mapping[str, Callable[[ModelSource], list[Entry]]] = MappingProxyType({
    "anthropic": anthropic.list_models,
    "cloudflare": cloudflare.list_models,
    "cohere": cohere.list_models,
    "google": google.list_models,
})
