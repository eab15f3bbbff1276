"""Anthropic: its own model-list shape, paged with `has_more` / `after_id`.

    GET /v1/models?limit=1000
    {"data": [{"type": "model", "id": "claude-sonnet-4-20250514", "display_name": "Claude Sonnet 4",
               "created_at": "2025-05-22T00:00:00Z"}],
     "has_more": true, "first_id": "claude-sonnet-4-20250514", "last_id": "claude-3-5-haiku-20241022"}

Pages are followed with `after_id=<last_id>`; `created` is the Unix time of `created_at` (RFC 3339).
"""

from __future__ import annotations

from typing import Any

from app.providers.model_entries import Entry, ModelSource, entry, items, pages, parse_timestamp

PAGE_SIZE = 1000  # Anthropic's largest page


def list_models(provider: ModelSource) -> list[Entry]:
    def follow(page: dict[str, Any]) -> dict[str, Any] | None:
        last_id = page.get("last_id")
        return {"limit": PAGE_SIZE, "after_id": last_id} if page.get("has_more") and isinstance(last_id, str) else None

    return [entry(provider.id, model["id"], created=parse_timestamp(model.get("created_at")), owned_by="anthropic")
            for page in pages(provider, {"limit": PAGE_SIZE}, follow)
            for model in items(page, "data", provider) if isinstance(model.get("id"), str) and model["id"]]
