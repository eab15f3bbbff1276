"""Cloudflare Workers AI: its own model-list shape (the account's public finetunes).

    GET /client/v4/accounts/{ACCOUNT_ID}/ai/finetunes/public?limit=1000
    {"success": true, "result": [{"id": "...", "name": "cf-public-cnn-summarization",
      "description": "...", "created_at": "2024-04-01 16:07:14.291", "modified_at": "...",
      "public": true, "model": "@cf/mistral/mistral-7b-instruct-v0.2-lora"}]}

`created_at` uses Go's "2006-01-02 15:04:05.999" layout, read as UTC. A 200 with
`"success": false` is a failure, not an empty list.
"""

from __future__ import annotations

from app.errors import UpstreamError
from app.providers.model_entries import Entry, ModelSource, entry, fetch_page, items, parse_timestamp

CREATED_AT = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")


def list_models(provider: ModelSource) -> list[Entry]:
    page = fetch_page(provider, provider.spec.models_endpoint)
    if page.get("success") is False:
        raise UpstreamError(f"Provider {provider.id} reported that listing its models failed.")
    return [entry(provider.id, model["id"], created=parse_timestamp(model.get("created_at"), CREATED_AT),
                  owned_by="cloudflare")
            for model in items(page, "result", provider) if isinstance(model.get("id"), str) and model["id"]]
