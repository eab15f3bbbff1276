"""Google (Gemini's OpenAI-compatible API): ids arrive as `models/gemini-...`.

They are listed as `google/gemini-...`, the id a chat request uses; the rest is the OpenAI shape.
"""

from __future__ import annotations

from app.providers.model_entries import Entry, ModelSource, openai_models

_RESOURCE_PREFIX = "models/"


def model_name(upstream_id: str) -> str:
    return upstream_id.removeprefix(_RESOURCE_PREFIX) or upstream_id


def list_models(provider: ModelSource) -> list[Entry]:
    return openai_models(provider, model_name)
