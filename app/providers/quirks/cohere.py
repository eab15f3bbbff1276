"""Cohere: its own model-list shape, paged with `next_page_token`.

    GET /v1/models?page_size=1000
    {"models": [{"name": "command-a-03-2025", "endpoints": ["chat"], "finetuned": false,
                 "context_length": 256000, "tokenizer_url": "...", "default_endpoints": []}],
     "next_page_token": "..."}

Pages are followed with `page_token=<next_page_token>`. Cohere gives no creation time: `created` is 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.providers.model_entries import MAX_PAGES, Entry, entry, fetch_page, items, page_limit_reached

if TYPE_CHECKING:
    from app.providers.provider import Provider

PAGE_SIZE = 1000  # Cohere's largest page


def list_models(provider: Provider) -> list[Entry]:
    models: list[Entry] = []
    params: dict[str, Any] = {"page_size": PAGE_SIZE}
    for _ in range(MAX_PAGES):
        page = fetch_page(provider, provider.spec.models_endpoint, params)
        models += [entry(provider.id, model["name"], owned_by="cohere")
                   for model in items(page, "models", provider) if isinstance(model.get("name"), str) and model["name"]]
        token = page.get("next_page_token")
        if not token or not isinstance(token, str) or token == params.get("page_token"):
            return models
        params = {"page_size": PAGE_SIZE, "page_token": token}
    page_limit_reached(provider)
    return models
