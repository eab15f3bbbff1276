"""Cloudflare Workers AI: its model catalog, searched page by page.

    GET /client/v4/accounts/{ACCOUNT_ID}/ai/models/search?per_page=100&page=1
    {"success": true, "result": [{"id": "f7a6...", "name": "@cf/meta/llama-3.1-8b-instruct",
      "description": "...", "task": {"name": "Text Generation"}, "created_at": "2024-07-23 00:00:00.000"}],
     "result_info": {"page": 1, "per_page": 100, "count": 100, "total_count": 123}}

A model is listed by its `name` (`cloudflare/@cf/meta/llama-3.1-8b-instruct`), the id a chat or
embeddings call uses, not by its `id` (a UUID no endpoint takes). Pages are followed while a full
page leaves more of `total_count`. `created_at` uses Go's "2006-01-02 15:04:05.999" layout, read
as UTC. A 200 with `"success": false` is a failure, not an empty list.
"""

from __future__ import annotations

from typing import Any

from app.errors import UpstreamError
from app.providers.model_entries import Entry, ModelSource, entry, items, pages, parse_timestamp

CREATED_AT = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")
PAGE_SIZE = 100


def list_models(provider: ModelSource) -> list[Entry]:
    def follow(page: dict[str, Any]) -> dict[str, Any] | None:
        info = page.get("result_info") if isinstance(page.get("result_info"), dict) else {}
        number, count, total = info.get("page"), info.get("count"), info.get("total_count")
        if not all(isinstance(value, int) for value in (number, count, total)):
            return None
        return {"per_page": PAGE_SIZE, "page": number + 1} if count >= PAGE_SIZE and number * PAGE_SIZE < total else None

    listed = []
    for page in pages(provider, {"per_page": PAGE_SIZE, "page": 1}, follow):
        if page.get("success") is False:
            raise UpstreamError(f"Provider {provider.id} reported that listing its models failed.")
        listed.extend(entry(provider.id, model["name"], created=parse_timestamp(model.get("created_at"), CREATED_AT),
                            owned_by="cloudflare")
                      for model in items(page, "result", provider) if isinstance(model.get("name"), str) and model["name"])
    return listed
