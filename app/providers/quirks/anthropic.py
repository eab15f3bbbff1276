"""Anthropic: its own model-list shape, paged with `has_more` / `after_id`.

    GET /v1/models?limit=1000
    {"data": [{"type": "model", "id": "claude-sonnet-4-20250514", "display_name": "Claude Sonnet 4",
               "created_at": "2025-05-22T00:00:00Z"}],
     "has_more": true, "first_id": "claude-sonnet-4-20250514", "last_id": "claude-3-5-haiku-20241022"}

Pages are followed with `after_id=<last_id>`; `created` is the Unix time of `created_at` (RFC 3339).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.providers.model_entries import MAX_PAGES, Entry, entry, fetch_page, items, page_limit_reached, parse_timestamp

if TYPE_CHECKING:
    from app.providers.provider import Provider

PAGE_SIZE = 1000  # Anthropic's largest page


def list_models(provider: Provider) -> list[Entry]:
    models: list[Entry] = []
    params: dict[str, Any] = {"limit": PAGE_SIZE}
    for _ in range(MAX_PAGES):
        page = fetch_page(provider, provider.spec.models_endpoint, params)
        models += [entry(provider.id, model["id"], created=parse_timestamp(model.get("created_at")),
                         owned_by="anthropic")
                   for model in items(page, "data", provider) if isinstance(model.get("id"), str) and model["id"]]
        last_id = page.get("last_id")
        if not page.get("has_more") or not isinstance(last_id, str) or last_id == params.get("after_id"):
            return models
        params = {"limit": PAGE_SIZE, "after_id": last_id}
    page_limit_reached(provider)
    return models
