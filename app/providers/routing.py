"""Which provider and upstream model a request means, and whether that model is allowed.

`?provider=` wins; else the model's prefix up to the first `/` names the provider and is
stripped (`groq/meta-llama/llama-4` -> groq, `meta-llama/llama-4`). With `?provider=X`, a model
written `X/...` is stripped too; any other model goes upstream as written. No guessing from bare
names, except an endpoint's own rule, asked last (`Endpoint.bare_models`: on the Anthropic
Messages API a bare `claude-*` model is Anthropic's). Allow/deny lists are checked against the canonical id `provider/upstream-model`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.errors import InvalidRequest, PermissionDenied
from app.providers.provider import Provider, Providers


@dataclass(frozen=True)
class Route:
    provider: Provider
    model: str  # as the provider knows it

    @property
    def model_id(self) -> str:
        """The canonical gateway id, `provider/model`."""
        return f"{self.provider.id}/{self.model}"


def resolve(model: str, provider_param: str | None, providers: Providers, *, bare: str | None = None) -> Route:
    """Route a request; raises UnknownProvider / ProviderNotConfigured / InvalidRequest.

    `bare` is the provider a model named without `provider/` goes to on this endpoint (the
    endpoint's rule: a `claude-*` model on /v1/messages is Anthropic's), asked last."""
    if provider_param:
        provider = providers.lookup(provider_param.strip().lower())
        prefix, sep, rest = model.partition("/")
        upstream = rest if sep and prefix.lower() == provider.id and rest else model
    else:
        prefix, sep, rest = model.partition("/")
        if not sep and bare:
            provider = providers.lookup(bare)
            provider.require_configured()
            return Route(provider, model)
        if not sep or not rest:
            raise InvalidRequest(
                f"Cannot tell which provider serves model {model!r}: name it as provider/model "
                f"(e.g. openai/gpt-4o) or add ?provider=<id>.", code="unknown_provider")
        provider = providers.lookup(prefix.strip().lower())
        upstream = rest
    provider.require_configured()
    return Route(provider, upstream)


class ModelPolicy:
    """ALLOWED_MODELS / DISALLOWED_MODELS: entries match `provider/model` or the part after the first `/`."""

    def __init__(self, allowed: Iterable[str], disallowed: Iterable[str]):
        self.allowed = frozenset(e.strip().lower() for e in allowed if e.strip())
        self.disallowed = frozenset(e.strip().lower() for e in disallowed if e.strip())

    @staticmethod
    def _forms(model_id: str) -> set[str]:
        lowered = model_id.strip().lower()
        _, sep, rest = lowered.partition("/")
        return {lowered, rest} if sep else {lowered}

    def allows(self, model_id: str) -> bool:
        if self.allowed:
            return bool(self._forms(model_id) & self.allowed)
        return not (self._forms(model_id) & self.disallowed)

    def check(self, model_id: str) -> None:
        if not self.allows(model_id):
            raise PermissionDenied(f"Model {model_id} is not allowed on this gateway.", code="model_not_allowed")
