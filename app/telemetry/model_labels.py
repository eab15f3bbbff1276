"""The `model` label of the metrics, bounded: a client cannot create series by naming models.

    labels = ModelLabels(limit=50, known=settings.allowed_models)
    labels("openai", "gpt-4o")      # -> "gpt-4o", or "other" once the provider's quota is used up

The model a metric is labelled with comes from the client's request (as the provider knows it),
and a provider that accepts any name (a local server, a fake) would turn every made-up name into
new series: a histogram's worth each (`llm_time_to_first_token` has 20 buckets). So each worker
gives its own label to at most TELEMETRY_MAX_MODEL_LABELS distinct models per provider, in the
order they are first seen, plus every model named in ALLOWED_MODELS (with or without its
provider); any other model is counted under `other`. Across N workers a provider has at most N
times the limit. An empty model is `unknown`.
"""

from __future__ import annotations

from collections.abc import Iterable

OTHER = "other"
UNKNOWN = "unknown"


class ModelLabels:
    __slots__ = ("known", "limit", "seen")

    def __init__(self, limit: int, known: Iterable[str] = ()):
        self.limit = limit
        self.known = frozenset(entry.strip().lower() for entry in known if entry.strip())
        self.seen: dict[str, set[str]] = {}

    def __call__(self, provider: str, model: str | None) -> str:
        if not model:
            return UNKNOWN
        seen = self.seen.setdefault(provider, set())
        if model in seen:
            return model
        lowered = model.lower()
        if lowered in self.known or f"{provider}/{lowered}" in self.known:
            return model
        if len(seen) >= self.limit:
            return OTHER
        seen.add(model)
        return model
