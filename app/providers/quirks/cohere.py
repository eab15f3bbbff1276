"""Cohere: its own model-list shape, paged with `next_page_token`.

    GET /v1/models?page_size=1000
    {"models": [{"name": "command-a-03-2025", "endpoints": ["chat"], "finetuned": false,
                 "context_length": 256000, "tokenizer_url": "...", "default_endpoints": []}],
     "next_page_token": "..."}

Pages are followed with `page_token=<next_page_token>`. Cohere gives no creation time: `created` is 0.
"""

from __future__ import annotations

from typing import Any

from app.providers.model_entries import Entry, ModelSource, entry, items, pages

PAGE_SIZE = 1000  # Cohere's largest page


def list_models(provider: ModelSource) -> list[Entry]:
    def follow(page: dict[str, Any]) -> dict[str, Any] | None:
        token = page.get("next_page_token")
        return {"page_size": PAGE_SIZE, "page_token": token} if token and isinstance(token, str) else None

    return [entry(provider.id, model["name"], owned_by="cohere")
            for page in pages(provider, {"page_size": PAGE_SIZE}, follow)
            for model in items(page, "models", provider) if isinstance(model.get("name"), str) and model["name"]]
